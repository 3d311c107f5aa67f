# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
omegaq-predict: one action chunk from one observation, for debugging and outside checks.

    omegaq-predict --policy PATH --observation OBS.npz --out CHUNK.npz [--device auto|cuda|cpu]
                   [--embodiment TAG]

PATH: a LeRobot pi05 checkpoint directory (config.json + model.safetensors), a GR00T N1.5
checkpoint directory (config.json with model_type gr00t_n1_5, sharded safetensors,
experiment_cfg/metadata.json; --embodiment picks the tag when it holds several) or an omegaq
artifact; the registry picks the runtime from its type. OBS.npz: `images` uint8
[n_cams, H, W, 3] in the checkpoint's camera order, `state` float32 [state_dim], and either
`tokens` int64 [L] + `token_mask` bool [L] or `instruction` (str; needs the checkpoint's
tokenizer: tokenizer.model for pi0.5, the eagle/ folder for GR00T); optional `noise` float32
[horizon, 32]. CHUNK.npz: `actions` [horizon, action_dim], unnormalized (or normalized, with
`normalized` = True, when the checkpoint has no action statistics).

Every refusal (a missing or unreadable file, a key or array that does not fit, NaN or inf,
an artifact or checkpoint that fails its checks) is one line on stderr and exit status 2.
"""

import argparse
import sys
import time

import numpy as np

from omegaq_ros.policy.registry import load_policy
from omegaq_ros.policy.runtime import BACKENDS, DTYPES, ObservationError, policy_options

KEYS = ('images', 'state', 'tokens', 'token_mask', 'instruction', 'noise')


def one_line(text) -> str:
    """Collapse a message onto one line."""
    return ' '.join(str(text).split())


def load_observation(path: str) -> dict:
    """
    Read an observation .npz (no pickles) into predict()'s arguments, or raise ObservationError.

    Checks what predict() cannot: that the file is an .npz, that its keys are known, that the
    images stack is uint8 [n_cams, H, W, 3] and the instruction one string. The arrays
    themselves are checked by Pi05Policy.check_observation.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ObservationError(f'{path}: no such file') from None
    except Exception as error:    # numpy's readers raise many kinds on arbitrary bytes
        raise ObservationError(f'{path}: not a readable .npz file ({type(error).__name__}: '
                               f'{error})') from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ObservationError(f'{path}: expected an .npz archive of named arrays, got a '
                               'single .npy array')
    arrays = {}
    with data:
        unknown = sorted(set(data.files) - set(KEYS))
        if unknown:
            raise ObservationError(f'{path}: unknown keys {unknown}; expected {list(KEYS)}')
        for key in data.files:
            try:
                arrays[key] = data[key]
            except Exception as error:    # object arrays (pickles), damaged members
                raise ObservationError(f"{path}: '{key}' cannot be read without pickle or is "
                                       f'damaged ({type(error).__name__}: {error})') from None
    images = arrays.get('images')
    if images is None or ('tokens' not in arrays and 'instruction' not in arrays):
        raise ObservationError(f'{path}: needs images and tokens (+token_mask) or instruction')
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ObservationError(f'{path}: expected images uint8 [n_cams, H, W, 3], got '
                               f'{images.dtype} {list(images.shape)}')
    instruction = arrays.get('instruction')
    if instruction is not None:
        if instruction.dtype.kind != 'U' or instruction.ndim != 0:
            raise ObservationError(f'{path}: expected instruction as one string, got '
                                   f'{instruction.dtype} {list(instruction.shape)}')
        instruction = str(instruction)
    return {'images': list(images), 'state': arrays.get('state'), 'instruction': instruction,
            'tokens': arrays.get('tokens'), 'token_mask': arrays.get('token_mask'),
            'noise': arrays.get('noise')}


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
    parser.add_argument('--embodiment', default=None,
                        help='GR00T only: the embodiment tag of experiment_cfg/metadata.json')
    args = parser.parse_args(argv)
    try:
        observation = load_observation(args.observation)
    except ObservationError as error:
        print(f'omegaq-predict: {one_line(error)}', file=sys.stderr)
        return 2
    try:
        options = policy_options(args.device, args.dtype, args.backend,
                                 cuda_graph=not args.eager, fused_pointwise=not args.eager)
        print(f"omegaq-predict: {options.pop('text')}", file=sys.stderr)
        policy = load_policy(args.policy, embodiment=args.embodiment, **options)
    except (ValueError, OSError, RuntimeError) as error:     # incl. checkpoint/artifact errors
        print(f'{args.policy}: {one_line(error)}', file=sys.stderr)
        return 2
    if policy.quantized:
        print(policy.backend_summary['text'], file=sys.stderr)
    started = time.perf_counter()
    normalized = False
    try:
        try:
            actions = policy.predict(**observation)
        except ObservationError as error:
            if 'no action normalization' not in str(error):
                raise
            normalized = True
            actions = policy.predict(**observation, normalized=True)
    except ObservationError as error:
        print(f'omegaq-predict: {one_line(error)}', file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    if not np.isfinite(actions).all():
        print('omegaq-predict: the policy returned NaN/inf actions (a broken checkpoint or '
              'artifact, or a device fault); nothing written', file=sys.stderr)
        return 3
    try:
        np.savez(args.out, actions=actions, normalized=normalized)
    except OSError as error:
        print(f'omegaq-predict: cannot write {args.out}: {one_line(error)}', file=sys.stderr)
        return 2
    print(f'{args.out}: actions {list(actions.shape)} in {elapsed * 1000:.0f} ms '
          f"({'W4A4 artifact' if policy.quantized else 'FP checkpoint'})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
