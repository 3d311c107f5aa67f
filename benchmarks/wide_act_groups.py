# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Task success of omega-dynamic with the language model's activation groups 128 wide, not 64.

    python benchmarks/wide_act_groups.py {64,128} [--policy CKPT] [--episodes N]
        [--method METHOD] [--device cpu|cuda] [--out DIR]

cuBLAS (12.9 and later) runs FP8 GEMMs with one float scale per 128-group of K on both
operands (1x128 block scaling, promoted in its main loop; bench_w4a4_gemm.py's block-scaled
column, not yet timed); its FP8 GEMM with row and column scales was 1.2-1.5x faster than BF16
at the prefix's large shapes on an H100 (RESULTS 7t). int4 codes are exact in e4m3 and the
weights already carry one scale per (row, 128-group); the activations' dynamic scales are
per 64-group. With the language model's activation scales per 128-group (one float per token
and 128 channels, no token-wide first pass), the prefix's W4A4 GEMMs could be those FP8 GEMMs
as they are. This runs `omegaq-eval --methods omega-dynamic` (reference backend) with the
language model's dynamic_group layers quantizing 128-wide groups (each 64-group of a pair
given the pair's scale, swapped in for this process) and prints its table: the open-loop
action error vs FP, and with --episodes N the closed loop too (N per task, omegaq-eval's
paired seeds and noise, so the 64 and 128 rows pair episode by episode), in this one process
(spawned workers would not see the swap). On the CPU an episode takes most of a minute: run
the closed loop on a GPU (--device cuda).
"""

import argparse
import sys

from omegaq_ros.quant import activations, linear
from omegaq_ros.sim import method_eval

_REFERENCE_INPUT = linear.reference_input


def wide_group_input(layer, x):
    """linear.reference_input with a language-model layer's 64-groups scaled in 128-wide pairs."""
    if layer.act_mode != 'dynamic_group' or 'language_model' not in layer.name:
        return _REFERENCE_INPUT(layer, x)
    x2 = layer.rotate_in(x.reshape(-1, x.shape[-1]).float())
    _, wide = activations.quantize_activations(x2, 'dynamic_group', group=128)
    wide = wide.repeat_interleave(2, dim=-1)
    per_channel = wide.repeat_interleave(activations.ACT_GROUP, dim=-1)
    codes = (x2 / per_channel).round().clamp(activations.INT4_MIN, activations.INT4_MAX)
    return codes, wide


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('group', choices=('64', '128'))
    parser.add_argument('--policy', default='models/pi05_small/checkpoint')
    parser.add_argument('--out', default='reports/wide_act_groups')
    parser.add_argument('--episodes', type=int, default=0)
    parser.add_argument('--method', default='omega-dynamic')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if args.group == '128':
        linear.reference_input = wide_group_input
    return method_eval.main(['--policy', args.policy, '--methods', args.method, '--episodes',
                             str(args.episodes), '--tasks', 'all', '--workers', '1',
                             '--device', args.device, '--out', f'{args.out}/{args.group}'])


if __name__ == '__main__':
    sys.exit(main())
