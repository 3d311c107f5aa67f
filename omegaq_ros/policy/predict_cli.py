# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
omegaq-predict: one action chunk from one observation, for debugging and outside checks.

    omegaq-predict --policy PATH --observation OBS.npz --out CHUNK.npz [--device cpu]

PATH: a LeRobot pi05 checkpoint directory (config.json + model.safetensors) or an omegaq
artifact. OBS.npz: `images` uint8 [n_cams, H, W, 3] in the checkpoint's camera order,
`state` float32 [state_dim], and either `tokens` int64 [L] + `token_mask` bool [L] or
`instruction` (str; needs the checkpoint's tokenizer.model); optional `noise` float32
[horizon, 32]. CHUNK.npz: `actions` [horizon, action_dim], unnormalized (or normalized, with
`normalized` = True, when the checkpoint has no action statistics).
"""

import argparse
import sys
import time

import numpy as np

from omegaq_ros.policy.runtime import (BACKENDS, DTYPES, ObservationError, Pi05Policy,
                                       policy_options)


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--policy', required=True)
    parser.add_argument('--observation', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--device', default='auto',
                        help='auto (cuda where available) | cuda | cpu')
    parser.add_argument('--dtype', default='auto', choices=['auto'] + list(DTYPES),
                        help='precision of the towers (quantized layers keep their format); '
                        'auto: bfloat16 on CUDA, float32 on the CPU')
    parser.add_argument('--backend', default='auto', choices=['auto'] + list(BACKENDS),
                        help='quantized-layer backend; auto: triton on CUDA')
    parser.add_argument('--eager', action='store_true',
                        help='on CUDA, no CUDA graphs and no compiled pointwise kernels')
    args = parser.parse_args(argv)
    try:
        options = policy_options(args.device, args.dtype, args.backend,
                                 cuda_graph=not args.eager, fused_pointwise=not args.eager)
        print(f"omegaq-predict: {options.pop('text')}", file=sys.stderr)
        policy = Pi05Policy.load(args.policy, **options)
    except (ValueError, OSError, RuntimeError) as error:     # incl. checkpoint/artifact errors
        print(f'{args.policy}: {error}', file=sys.stderr)
        return 2
    if policy.quantized:
        print(policy.backend_summary['text'], file=sys.stderr)
    with np.load(args.observation, allow_pickle=False) as data:
        observation = {key: data[key] for key in data.files}
    missing = [k for k in ('images',) if k not in observation]
    if missing or ('tokens' not in observation and 'instruction' not in observation):
        print(f'{args.observation}: needs images and tokens (+token_mask) or instruction',
              file=sys.stderr)
        return 2
    instruction = observation.get('instruction')
    instruction = str(instruction) if instruction is not None else None
    started = time.perf_counter()
    normalized = False
    try:
        try:
            actions = policy.predict(list(observation['images']), observation.get('state'),
                                     instruction, observation.get('tokens'),
                                     observation.get('token_mask'), observation.get('noise'))
        except ObservationError as error:
            if 'no action normalization' not in str(error):
                raise
            normalized = True
            actions = policy.predict(list(observation['images']), observation.get('state'),
                                     instruction, observation.get('tokens'),
                                     observation.get('token_mask'), observation.get('noise'),
                                     normalized=True)
    except ObservationError as error:
        print(f'omegaq-predict: {error}', file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    np.savez(args.out, actions=actions, normalized=normalized)
    print(f'{args.out}: actions {list(actions.shape)} in {elapsed * 1000:.0f} ms '
          f"({'W4A4 artifact' if policy.quantized else 'FP checkpoint'})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
