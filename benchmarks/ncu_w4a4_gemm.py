# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
One W4A4 quantize and GEMM launch per shape inside a profiler range, for Nsight Compute.

    ncu --profile-from-start off -k regex:'quant_kernel|gemm_kernel' --section ... \
        python benchmarks/ncu_w4a4_gemm.py [--mode dynamic_group] [--rows 816]

The shapes (the prefix's down and gate/up projections) autotune and warm up first, outside
the range, so the profile holds the chosen tiles' launches only.
"""

import argparse

# The script's folder is on sys.path when it runs as a script (as the benchmarks do).
from bench_w4a4_gemm import _layers
from omegaq_ros.kernels import triton_w4a4 as tw
import torch

SHAPES = {'lm_down': (16384, 2048), 'lm_gate_up': (2048, 16384), 'lm_q': (2048, 2048)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--mode', default='dynamic_group', choices=list(tw.INTEGER_MODES))
    ap.add_argument('--rows', type=int, default=816)
    ap.add_argument('--shapes', default='lm_down,lm_gate_up')
    args = ap.parse_args(argv)
    runs = []
    for name in args.shapes.split(','):
        k, n = SHAPES[name]
        layer = _layers(k, n, args.mode, 1, False)[0]
        x = torch.randn(args.rows, k, device='cuda', dtype=torch.bfloat16)
        codes, xs, s_m, s_g = tw.quantize_input(layer, x)
        for _ in range(3):
            tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32)
        runs.append((layer, x, codes, xs, s_m, s_g))
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for layer, x, codes, xs, s_m, s_g in runs:
        tw.quantize_input(layer, x)
        tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == '__main__':
    main()
