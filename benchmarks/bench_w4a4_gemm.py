# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GEMM-level benchmark of the Triton W4A4 QuantLinear backend at pi0.5 shapes (CUDA only).

Per shape, side by side in one run: the reference backend (eager); the triton backend eager,
and per call inside one CUDA graph that cycles through enough weight sets (>= 160 MB, at most
512 sets) that L2 cannot hold them; the triton quantize prologue alone and the GEMM alone on
precomputed codes (graph); bf16 torch.matmul (eager and graph, same weight rotation); and the
W4 and bf16 weight-bytes floors at the measured device copy bandwidth.

    PYTHONPATH=. python benchmarks/bench_w4a4_gemm.py [--mode static_group] [--json out.json]
"""

import argparse
import json
import math
import statistics

from omegaq_ros import kernels
from omegaq_ros.kernels import triton_w4a4 as tw
from omegaq_ros.quant.linear import QuantLinear, reference_forward
from omegaq_ros.quant.packing import pack_int4
from omegaq_ros.quant.rotation import store_blocks
import torch

LM = [('lm_q/o', 2048, 2048), ('lm_k/v', 2048, 256), ('lm_gate/up', 2048, 16384),
      ('lm_down', 16384, 2048)]
EXPERT = [('ex_q', 1024, 2048), ('ex_k/v', 1024, 256), ('ex_o', 2048, 1024),
          ('ex_gate/up', 1024, 4096), ('ex_down', 4096, 1024)]
L2_FLUSH_BYTES = 160 << 20


def _layers(k, n, mode, count, rot_out, two_level=False):
    """
    Count QuantLinears sharing rotations/tables but with their own weights and scales.

    two_level: two-level weight scales (multiples 1..16 of a row unit, weights.scale_units).
    """
    dev = 'cuda'
    proto = QuantLinear(k, n, name='bench', act_mode=mode, per_step=False, has_bias=False,
                        has_smooth=True, has_perm=True, has_rot_in=True,
                        has_rot_out=rot_out).to(dev)
    proto.smooth.copy_(torch.rand(k, device=dev) + 0.5)
    proto.perm_in.copy_(torch.randperm(k, device=dev))
    codes, scale = store_blocks(torch.linalg.qr(torch.randn(k // 64, 64, 64, device=dev))[0])
    proto.rot_in.copy_(codes)
    proto.rot_in_scale.copy_(scale)
    if rot_out:
        codes, scale = store_blocks(torch.linalg.qr(torch.randn(n // 64, 64, 64,
                                                                device=dev))[0])
        proto.rot_out.copy_(codes)
        proto.rot_out_scale.copy_(scale)
    if proto.act_scale is not None:
        proto.act_scale.copy_(torch.rand_like(proto.act_scale) * 0.4 + 0.35)
    layers = []
    for _ in range(count):
        layer = QuantLinear(k, n, name='bench', act_mode=mode, per_step=False, has_bias=False,
                            has_smooth=True, has_perm=True, has_rot_in=True,
                            has_rot_out=rot_out, has_scale_unit=two_level).to(dev)
        for name in ('smooth', 'perm_in', 'rot_in', 'rot_in_scale', 'rot_out', 'rot_out_scale',
                     'act_scale'):
            setattr(layer, name, getattr(proto, name))
        codes = torch.randint(-8, 8, (n, k), dtype=torch.int8, device=dev)
        layer.weight_packed.copy_(pack_int4(codes))
        layer.weight_scale.copy_(torch.rand(n, k // 128, device=dev) * 0.02 + 1e-3)
        if two_level:
            unit = (torch.randint(64, 128, (n,), device=dev) * 2.0 ** -16).half()
            layer.weight_scale_unit.copy_(unit)
            multiples = torch.randint(1, 17, (n, k // 128), device=dev)
            layer.weight_scale.copy_(multiples * unit.float()[:, None])
        layer.backend = 'triton'
        layers.append(layer)
    return layers


def _median_us(fn, reps):
    """Median of per-call CUDA-event times (after warm-up), in microseconds."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    return statistics.median(times)


def _eager_us(fns, reps):
    """Median per-call time of fns called round-robin (eager launches)."""
    def run():
        for f in fns:
            f()
    return _median_us(run, reps) / len(fns)


def _graph_us(fns, reps):
    """Capture fns back to back in one CUDA graph; median replay time per call."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for f in fns:
            f()
    return _median_us(graph.replay, reps) / len(fns)


def copy_bandwidth():
    """Device-to-device copy bandwidth in bytes/s (bytes read + written, 1 GiB fp32)."""
    src = torch.randn(1 << 28, device='cuda')
    dst = torch.empty_like(src)
    us = _median_us(lambda: dst.copy_(src), 20)
    return 2 * src.numel() * 4 / (us * 1e-6)


def bench_shape(label, k, n, m, mode, rot_out, reps, bw, reference=True, two_level=False):
    """
    Time one M x K x N shape; returns a dict of microsecond columns.

    two_level: two-level weight scales (from TUNED_MIN_ROWS tokens their GEMMs widen the
    weights to int8 first), and the GEMM alone also with its weights unpacked in registers
    (set_widened_weights(False); the same kernel below TUNED_MIN_ROWS tokens), and beside it
    cuBLASLt's int8 GEMM of the same shape (torch._int_mm, int32 out: no scales, no epilogue)
    and its FP8 one with a scale per token and per weight row (torch._scaled_mm), and with a
    scale per 128-group of K on both operands (1x128 block scaling).
    """
    w4_bytes = n * k // 2 + n * (k // 128) * 4
    sets = max(2, min(512, math.ceil(L2_FLUSH_BYTES / w4_bytes)))
    bf16_sets = max(2, min(512, math.ceil(L2_FLUSH_BYTES / (n * k * 2))))
    layers = _layers(k, n, mode, sets, rot_out, two_level)
    x = torch.randn(m, k, device='cuda')
    xb = x.to(torch.bfloat16)
    weights = [torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
               for _ in range(bf16_sets)]
    codes, xs, s_m, s_g = tw.quantize_input(layers[0], x)
    ref_fns = [lambda: reference_forward(layers[0], x)]
    tri_fns = [(lambda lay=lay: lay(x)) for lay in layers]
    gemm_fns = [(lambda lay=lay: tw.scaled_matmul(lay, codes, xs, s_m, s_g, torch.float32))
                for lay in layers]
    quant_fns = [lambda: tw.quantize_input(layers[0], x)]
    bf16_fns = [(lambda w=w: torch.matmul(xb, w.t())) for w in weights]
    p = tw.plan(m, n, k, torch.cuda.get_device_properties(0).multi_processor_count)
    row = {
        'shape': label, 'M': m, 'K': k, 'N': n, 'weight_sets': f'{sets}/{bf16_sets}',
        'reference_eager_us': (_eager_us(ref_fns, max(10, reps // 10)) if reference
                               else float('nan')),
        'triton_eager_us': _eager_us(tri_fns, reps // 4),
        'triton_graph_us': _graph_us(tri_fns, reps),
        'triton_quant_graph_us': _graph_us(quant_fns, reps),
        'triton_gemm_graph_us': _graph_us(gemm_fns, reps),
        'bf16_eager_us': _eager_us(bf16_fns, reps // 4),
        'bf16_graph_us': _graph_us(bf16_fns, reps),
        'w4_floor_us': w4_bytes / bw * 1e6,
        'bf16_floor_us': n * k * 2 / bw * 1e6,
    }
    if two_level and m > 16:
        # What the widened GEMM computes, on cuBLASLt's int8 kernels: int32 out, no epilogue.
        a8 = torch.randint(-120, 120, (m, k), dtype=torch.int8, device='cuda')
        w8 = [torch.randint(-120, 120, (n, k), dtype=torch.int8, device='cuda')
              for _ in range(bf16_sets)]
        try:
            row['cublas_int8_graph_us'] = _graph_us(
                [(lambda w=w: torch._int_mm(a8, w.t())) for w in w8], reps)
        except RuntimeError as error:       # a torch build without it for this layout
            print(f'# cuBLAS int8 at {m}x{k}x{n}: {error}')
            row['cublas_int8_graph_us'] = float('nan')
        # And on its FP8 kernels with one scale per token and per weight row, bf16 out: what
        # a W4A4 GEMM could run on if every operand were exact in e4m3 (int4 codes are; codes
        # times integer multiples are only for powers of two).
        a_f8 = a8.clamp(-8, 7).to(torch.float8_e4m3fn)
        w_f8 = [w.clamp(-8, 7).to(torch.float8_e4m3fn) for w in w8]
        row_scale = torch.rand(m, 1, device='cuda') + 0.5
        col_scale = torch.rand(1, n, device='cuda') + 0.5
        try:
            row['cublas_fp8_graph_us'] = _graph_us(
                [(lambda w=w: torch._scaled_mm(a_f8, w.t(), scale_a=row_scale,
                                               scale_b=col_scale, out_dtype=torch.bfloat16))
                 for w in w_f8], reps)
        except RuntimeError as error:
            print(f'# cuBLAS fp8 at {m}x{k}x{n}: {error}')
            row['cublas_fp8_graph_us'] = float('nan')
        # With a scale per token and per 128-group of K on both operands (cuBLAS 12.9's 1x128
        # block scaling, promoted in the main loop): int4 codes exact in e4m3 with the weights'
        # own per-row 128-group scales, were the activations' groups 128 wide (they are 64).
        # Block scales are outer-dim-major: [M, K/128] and [N, K/128] with stride 1 along M, N.
        a_block = (torch.rand(k // 128, m, device='cuda') + 0.5).t()
        b_block = (torch.rand(k // 128, n, device='cuda') + 0.5).t()
        try:
            row['cublas_fp8_block_graph_us'] = _graph_us(
                [(lambda w=w: torch._scaled_mm(a_f8, w.t(), scale_a=a_block, scale_b=b_block.t(),
                                               out_dtype=torch.bfloat16))
                 for w in w_f8], reps)
        except RuntimeError as error:
            print(f'# cuBLAS fp8 1x128 blocks at {m}x{k}x{n}: {error}')
            row['cublas_fp8_block_graph_us'] = float('nan')
    if two_level:
        widened = tw.WIDENED_WEIGHTS['enabled']
        tw.set_widened_weights(False)
        row['triton_gemm_registers_graph_us'] = _graph_us(gemm_fns, reps)
        tw.set_widened_weights(widened)
    row['plan'] = _plan_text(p, m, n, k)
    return row


def _plan_text(p, m, n, k):
    """Return the tiles that ran: the fixed plan, or the autotuner's pick for this shape."""
    if not p.get('tuned'):
        return f"{'swapAB' if p['swap'] else 'tiled'} {p['bm']}x{p['bn']} split{p['split']}"
    picks = []
    for key, config in tw._tuned_wide_gemm().cache.items():
        if tuple(key[:4]) == (m, n, k, n):
            kw = config.kwargs
            picks.append(f"widened {kw['BM']}x{kw['BN']}x{kw['BK']} w{config.num_warps} "
                         f's{config.num_stages}')
    for key, config in tw._tuned_gemm().cache.items():
        if tuple(key[:4]) == (m, n, k // 64, n):
            kw = config.kwargs
            picks.append(f"tuned {'swapAB' if kw['SWAP'] else 'tiled'} {kw['BM']}x{kw['BN']} "
                         f'w{config.num_warps} s{config.num_stages}'
                         f"{' paired' if kw['PAIRS'] else ''}")
    return ', '.join(picks) or 'tuned ?'


def main(argv=None):
    """Run the table; print it as markdown."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--mode', default='static_group', choices=list(tw.INTEGER_MODES))
    ap.add_argument('--rot-out', action='store_true', help='layers with an output rotation')
    ap.add_argument('--reps', type=int, default=200)
    ap.add_argument('--json', default=None, help='also write the rows here')
    ap.add_argument('--one-group', action='store_true',
                    help='rescale 64-groups one at a time, not in pairs (set_paired_rescale)')
    ap.add_argument('--prefix-rows', default='968',
                    help='comma-separated M of the language-model shapes (prefix tokens)')
    ap.add_argument('--two-level-weights', action='store_true',
                    help='two-level weight scales (many-token GEMMs on widened weights); '
                         'adds the GEMM with weights unpacked in registers (use with --mode '
                         'dynamic_two_level or dynamic_token)')
    ap.add_argument('--no-reference', action='store_true',
                    help='skip the (slow) eager reference-backend column')
    args = ap.parse_args(argv)
    kernels.register()
    tw.set_paired_rescale(not args.one_group)
    # Each GEMM is timed on its own, not overlapped with the one before (PDL).
    tw.set_programmatic_launch(False)
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    bw = copy_bandwidth()
    import triton
    print(f'# {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}, '
          f'triton {triton.__version__}, CUDA {torch.version.cuda}')
    print(f'# act_mode={args.mode}, perm+smooth+rot_in, rot_out={args.rot_out}, no bias, '
          f'paired rescale {not args.one_group}; '
          f'copy bandwidth {bw / 1e12:.2f} TB/s; times in us (median)')
    rows = []
    prefix_rows = [int(v) for v in args.prefix_rows.split(',') if v]
    cases = ([(lab, k, n, m) for lab, k, n in LM for m in [1] + prefix_rows]
             + [(lab, k, n, m) for lab, k, n in EXPERT for m in (10, 50)])
    for lab, k, n, m in cases:
        rows.append(bench_shape(lab, k, n, m, args.mode, args.rot_out, args.reps, bw,
                                reference=not args.no_reference,
                                two_level=args.two_level_weights))
    cols = [('shape', 'shape'), ('M', 'M'), ('K', 'K'), ('N', 'N'), ('plan', 'plan'),
            ('weight_sets', 'sets W4/bf16'),
            ('reference_eager_us', 'ref eager'), ('triton_eager_us', 'triton eager'),
            ('triton_graph_us', 'triton graph'), ('triton_quant_graph_us', 'quant only'),
            ('triton_gemm_graph_us', 'gemm only'),
            ('triton_gemm_registers_graph_us', 'gemm, weights unpacked in registers'),
            ('cublas_int8_graph_us', 'cuBLAS int8 (int32 out)'),
            ('cublas_fp8_graph_us', 'cuBLAS fp8, row/col scales (bf16 out)'),
            ('cublas_fp8_block_graph_us', 'cuBLAS fp8, 1x128 block scales (bf16 out)'),
            ('bf16_eager_us', 'bf16 eager'),
            ('bf16_graph_us', 'bf16 graph'), ('w4_floor_us', 'W4 floor'),
            ('bf16_floor_us', 'bf16 floor')]
    print('| ' + ' | '.join(c[1] for c in cols) + ' |')
    print('|' + '---|' * len(cols))
    for r in rows:
        cells = [f'{r[c]:.1f}' if isinstance(r.get(c), float) else str(r.get(c, '-'))
                 for c, _ in cols]
        print('| ' + ' | '.join(cells) + ' |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'device': props.name, 'torch': torch.__version__,
                       'triton': triton.__version__, 'copy_bw': bw, 'mode': args.mode,
                       'rot_out': args.rot_out, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
    main()
