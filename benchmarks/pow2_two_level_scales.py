# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Open-loop error of omega-fast with power-of-two two-level multiples (operands exact in FP8).

    python benchmarks/pow2_two_level_scales.py {none,weights,acts,both} [--policy CKPT]
        [--episodes N] [--method METHOD]

Two-level scales make a group's scale an integer multiple m (1..16) of its row's unit
(weights) or of its token's scale / 16 (activations), so q * m is an int8 operand. With m a
power of two, q * m is also exact in float8 e4m3 (at most four significant bits), and the
prefix's GEMMs could run on FP8 tensor cores with one scale per token and per weight row
(RESULTS 7r). This runs `omegaq-eval --methods omega-fast --episodes 0` on the CPU with the
weights', the activations' or both multiples restricted to 1, 2, 4, 8, 16 (the quantizer's
MSE search and the activations' smallest holding multiple, swapped in for this process) and
prints its table (--method: another omegaq-eval method than omega-fast): the open-loop action
error vs FP on held-out expert frames, and with
--episodes N the closed loop too (N per task, omegaq-eval's paired seeds and noise, in this
one process so that the restriction holds while the episodes run).
"""

import argparse
import sys

from omegaq_ros.quant import activations, weights
from omegaq_ros.sim import method_eval
import torch

POWERS = (1, 2, 4, 8, 16)
_MSE_SCALES = weights.mse_scales


def power_of_two_mse_scales(w, grid=weights.CLIP_GRID, unit=None):
    """weights.mse_scales with two-level candidates m * unit, m a power of two."""
    return _MSE_SCALES(w, grid, unit, multiples=POWERS)


def power_of_two_subscales(token, wanted):
    """activations.group_subscales with m the smallest power of two that holds the group."""
    m = torch.full_like(wanted, float(POWERS[-1]))
    for p in reversed(POWERS[:-1]):
        m = torch.where(token * (p / activations.SUBSCALES) >= wanted, torch.full_like(m, p), m)
    return m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('restrict', choices=('none', 'weights', 'acts', 'both'))
    parser.add_argument('--policy', default='models/pi05_small/checkpoint')
    parser.add_argument('--out', default='reports/pow2_two_level')
    parser.add_argument('--episodes', type=int, default=0)
    parser.add_argument('--method', default='omega-fast')
    args = parser.parse_args(argv)
    if args.restrict in ('weights', 'both'):
        weights.mse_scales = power_of_two_mse_scales
    if args.restrict in ('acts', 'both'):
        activations.group_subscales = power_of_two_subscales
    return method_eval.main(['--policy', args.policy, '--methods', args.method, '--episodes',
                             str(args.episodes), '--tasks', 'all', '--workers', '1',
                             '--device', 'cpu', '--out', f'{args.out}/{args.restrict}'])


if __name__ == '__main__':
    sys.exit(main())
