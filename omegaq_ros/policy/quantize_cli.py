# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
omegaq-quantize: a pi0.5 or GR00T N1.5 checkpoint and rosbag2 episodes to a W4A4 artifact.

    omegaq-quantize --checkpoint CKPT --calibration DIR_OR_BAGS... --output ARTIFACT
                    [--recipe omega|PRESET+field=value|recipe.yaml] [--max-samples 256]
                    [--min-episodes 1] [--device cpu|cuda] [--embodiment TAG]

The work is calibration.quantize_from_bags (the quantizer node calls it too).
"""

import argparse
import sys

from omegaq_ros.policy.calibration import CalibrationError, quantize_from_bags


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the omegaq-quantize command line."""
    parser = argparse.ArgumentParser(
        prog='omegaq-quantize', description='Quantize a pi0.5 or GR00T N1.5 checkpoint to a '
        'W4A4 artifact with calibration episodes from rosbag2 (MCAP or sqlite3).')
    parser.add_argument('--checkpoint', default='', help='FP checkpoint ("" = bundled)')
    parser.add_argument('--calibration', nargs='+', required=True,
                        help='bag directories or directories of bags')
    parser.add_argument('--output', required=True, help='artifact directory to write')
    parser.add_argument('--recipe', default='omega',
                        help='method preset (PRESET+field=value changes fields) or recipe YAML')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument('--min-episodes', type=int, default=1)
    parser.add_argument('--max-samples', type=int, default=256)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sync-slop', type=float, default=0.02)
    parser.add_argument('--instruction', default='',
                        help='instruction for bags without /instruction')
    parser.add_argument('--embodiment', default='',
                        help='GR00T only: the embodiment tag of experiment_cfg/metadata.json '
                        '(default: its only one)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run omegaq-quantize; exit code 0 on success, 1 with one clear line on a refusal."""
    args = parse_args(argv)
    from tqdm import tqdm
    try:
        result = quantize_from_bags(
            args.checkpoint, args.calibration, args.output, args.recipe, args.overwrite,
            args.min_episodes, args.max_samples, args.device, args.seed,
            sync_slop=args.sync_slop, default_instruction=args.instruction,
            embodiment=args.embodiment,
            progress=lambda message: tqdm.write(f'omegaq-quantize: {message}'))
    except (CalibrationError, FileNotFoundError) as error:
        print(f'omegaq-quantize: error: {error}', file=sys.stderr, flush=True)
        return 1
    print(f"omegaq-quantize: {result['quantized_layers']} layers W4A4 from "
          f"{result['observations']} observations of {result['episodes']} episodes -> "
          f"{result['output']}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
