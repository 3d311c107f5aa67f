# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Where a few-row W4A4 launch's time goes (CUDA only): the quantize and GEMM kernels taken apart.

At the expert's 10-50 rows a quantize launch takes ~10 us inside a CUDA graph whatever its
width (RESULTS 7e), twice a split-K GEMM's. Per shape, side by side in one run and each timed
as back-to-back launches inside one CUDA graph (us per launch): an empty Triton kernel and a
one-row torch add (the launch floor); quant_kernel as the backend runs it, then with one input
transform left out at a time (no rotation, the rotation on CUDA cores instead of tensor cores,
no permutation, nothing but the quantize), other rows per program and warps;
gemm_kernel on the backend's plan (its 64-groups rescaled one at a time, then in pairs), with
every K split, and with other tiles, warps and stages; the backend's quantize + GEMM with
plain launches and with programmatic dependent launches (PDL); below 64 rows also the same
int4 weights and activation codes scaled into bfloat16 operands on one fp32 accumulator (no
per-group rescale in the loop). Then the expert's attention
over the prefix cache and the prefix's own: written out (compiled, the cache concatenated) against
kernels/attention.py with several tilings and key splits, and torch's fused attention backends
with the padding mask and with every key visible. Last the prefix's permuted-input
gather (gather_kernel) with several tiles, for one input and for q/k/v's three permutations,
and the prefix's weight widening (widen_kernel) with several tiles at the language model's
q/k/v, gate/up and down shapes, each beside its traffic floor.

    PYTHONPATH=. python benchmarks/bench_w4a4_launch.py [--json out.json]
"""

import argparse
import json
import statistics

from omegaq_ros.kernels import act_modes
from omegaq_ros.kernels import triton_w4a4 as tw
from omegaq_ros.quant.linear import QuantLinear
from omegaq_ros.quant.packing import pack_int4
from omegaq_ros.quant.rotation import store_blocks
import torch

# (label, rows, in_features, out_features): the expert's layers at 10 and 50 tokens, one
# prefix-sized case for contrast.
SHAPES = [('ex_q', 10, 1024, 2048), ('ex_q', 50, 1024, 2048), ('ex_o', 50, 2048, 1024),
          ('ex_down', 50, 4096, 1024), ('lm_q', 816, 2048, 2048)]


def _layer(k, n):
    """Build a dynamic_group QuantLinear with every input transform and random weights, on CUDA."""
    layer = QuantLinear(k, n, name='bench', act_mode='dynamic_group', per_step=False,
                        has_bias=False, has_smooth=True, has_perm=True, has_rot_in=True,
                        has_rot_out=False).to('cuda')
    layer.smooth.copy_(torch.rand(k, device='cuda') + 0.5)
    layer.perm_in.copy_(torch.randperm(k, device='cuda'))
    codes, scale = store_blocks(torch.linalg.qr(torch.randn(k // 64, 64, 64, device='cuda'))[0])
    layer.rot_in.copy_(codes)
    layer.rot_in_scale.copy_(scale)
    layer.weight_packed.copy_(pack_int4(torch.randint(-8, 8, (n, k), dtype=torch.int8,
                                                      device='cuda')))
    layer.weight_scale.copy_(torch.rand(n, k // 128, device='cuda') * 0.02 + 1e-3)
    layer.backend = 'triton'
    return layer


def _graph_us(fn, launches=50, reps=30):
    """Capture `launches` calls of fn in one CUDA graph; median replay time per call (us)."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(launches):
            fn()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / launches)
    return statistics.median(times)


def _quant_launcher(layer, x, codes, xs, bm=None, warps=4, **flag_overrides):
    """Return a call running quant_kernel once on x with the backend's arguments, some changed."""
    kern = tw._kernels()
    m, k = x.shape
    groups = k // 64
    transform, flags = tw._transform_args(layer, codes)
    flags.update(flag_overrides)
    bm = bm or 16
    grid = (-(-m // bm), groups, 1)

    def run():
        kern.quant_kernel[grid](
            x_ptr=x, up_ptr=x, stride_xm=k, s_member_x=0, **transform, **flags, srow_ptr=codes,
            codes_ptr=codes, xs_ptr=xs, gmax_ptr=xs, M=m, G=groups, s_member_k=k, s_member_srow=0,
            s_member_xs=m * groups, MODE=act_modes.DYNAMIC_GROUP, BM=bm, num_warps=warps)
    return run


def _empty_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def empty_kernel(out_ptr):
        tl.store(out_ptr + tl.program_id(0), 1)
    return empty_kernel


def bench_shape(label, m, k, n):
    """Time every variant at one shape; returns a dict of microseconds per launch."""
    layer = _layer(k, n)
    x = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    codes = torch.empty(m, k, dtype=torch.int8, device='cuda')
    xs = torch.empty(k // 64, m, dtype=torch.float32, device='cuda')
    # The backend's own quantize must equal the launcher's "as run" variant.
    ref_codes, ref_xs, s_m, s_g = tw.quantize_input(layer, x)
    _quant_launcher(layer, x, codes, xs)()
    torch.cuda.synchronize()
    if not (torch.equal(codes, ref_codes) and torch.equal(xs.t(), ref_xs)):
        raise AssertionError(f'{label}: the bench launcher does not quantize like the backend')
    flag = torch.zeros(1024, dtype=torch.int32, device='cuda')
    empty = _empty_kernel()
    row1 = torch.randn(1, k, device='cuda', dtype=torch.bfloat16)
    quant = {
        'empty triton kernel': lambda: empty[(k // 64,)](flag),
        'torch add, 1 row': lambda: row1.add_(1.0),
        'quant as run': _quant_launcher(layer, x, codes, xs),
        'quant, fp32 rotation on CUDA cores': _quant_launcher(layer, x, codes, xs, TC_ROT=False),
        'quant, no rotation': _quant_launcher(layer, x, codes, xs, HAS_ROT=False),
        'quant, no permutation': _quant_launcher(layer, x, codes, xs, HAS_PERM=False),
        'quant, no smooth': _quant_launcher(layer, x, codes, xs, HAS_SMOOTH=False),
        'quant only (no transform)': _quant_launcher(layer, x, codes, xs, HAS_ROT=False,
                                                     HAS_PERM=False, HAS_SMOOTH=False),
        'quant, 16 rows per program': _quant_launcher(layer, x, codes, xs, bm=16),
        'quant, 32 rows per program': _quant_launcher(layer, x, codes, xs, bm=32),
        'quant, 64 rows per program': _quant_launcher(layer, x, codes, xs, bm=64),
        'quant, 1 warp': _quant_launcher(layer, x, codes, xs, warps=1),
        'quant, 2 warps': _quant_launcher(layer, x, codes, xs, warps=2),
    }
    row = {'shape': label, 'M': m, 'K': k, 'N': n}
    for name, fn in quant.items():
        row[name] = _graph_us(fn)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    plan = tw.plan(m, n, k, sms, tuned=False)
    row['gemm plan'] = f"{'swapAB' if plan['swap'] else 'tiled'} {plan['bm']}x{plan['bn']} " \
                       f"split{plan['split']}"
    row['gemm as run'] = _graph_us(lambda: tw.scaled_matmul(layer, ref_codes, ref_xs, s_m, s_g,
                                                            torch.bfloat16))
    tw.set_paired_rescale(False)     # captured into the graph with the one-group loop
    row['gemm as run, 64-groups rescaled one at a time'] = _graph_us(
        lambda: tw.scaled_matmul(layer, ref_codes, ref_xs, s_m, s_g, torch.bfloat16))
    tw.set_paired_rescale(True)
    groups = k // 64
    for split in (1, 2, 4, 8, 16, 32):
        if groups % split or split > groups:
            continue
        p = dict(plan, split=split, gps=groups // split)
        row[f'gemm split {split}'] = _graph_us(
            lambda p=p: tw.scaled_matmul(layer, ref_codes, ref_xs, s_m, s_g, torch.bfloat16,
                                         plan_override=p))
    # The main loop's shape on the plan's split: weight rows per tile, warps, stages.
    for bn, warps, stages in ((32, 4, 4), (128, 4, 4), (64, 2, 4), (64, 8, 4), (64, 4, 2),
                              (64, 4, 3)):
        if plan['swap'] and not n % bn:
            p = dict(plan, bn=bn, num_warps=warps, num_stages=stages)
            row[f'gemm BN{bn} w{warps} s{stages}'] = _graph_us(
                lambda p=p: tw.scaled_matmul(layer, ref_codes, ref_xs, s_m, s_g,
                                             torch.bfloat16, plan_override=p))
    w = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
    row['cuBLAS bf16'] = _graph_us(lambda: torch.matmul(x, w.t()))
    if m <= 64:
        _bench_float_dot(row, layer, ref_codes, ref_xs, s_m, s_g, x, w)
    _bench_programmatic(row, layer, x)
    return row


def _float_dot_kernel():
    # Defined on first use (the script imports without Triton); a jit function resolves the
    # helpers it calls among its module's globals, hence the global import.
    global _weight_group
    import triton
    import triton.language as tl
    from omegaq_ros.kernels._triton_kernels import _weight_group

    @triton.jit
    def float_dot_kernel(codes_ptr, xs_ptr, s_xs_m, s_xs_g, wp_ptr, ws_ptr, s_ws_n, xb_ptr,
                         wb_ptr, y_ptr, M, N, G, DEQUANT: tl.constexpr, BM: tl.constexpr,
                         BN: tl.constexpr, ASM_UNPACK: tl.constexpr,
                         OPERAND: tl.constexpr = tl.bfloat16):
        # y = x w^T with the weight rows on the MMA's 64-row side (as gemm_kernel's swapAB),
        # no K split. DEQUANT: int4 weights and int8 activation codes scaled into bfloat16
        # operands in registers (per 128-group weight scale, per 64-group token scale), so
        # the loop is plain bf16 dots into one fp32 accumulator; else bf16 operands as loaded.
        offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
        offs_m = tl.arange(0, BM)
        n_mask = offs_n < N
        m_mask = offs_m < M
        K = G * 64
        cols = tl.arange(0, 64)
        acc = tl.zeros((BN, BM), dtype=tl.float32)
        for g in range(0, G):
            if DEQUANT:
                w = _weight_group(wp_ptr + offs_n[:, None] * (K // 2) + g * 32
                                  + tl.arange(0, 32)[None, :], n_mask, ASM_UNPACK, BN)
                wsv = tl.load(ws_ptr + offs_n * s_ws_n + g // 2, mask=n_mask, other=0.0)
                wf = (w.to(tl.float32) * wsv.to(tl.float32)[:, None]).to(OPERAND)
                x = tl.load(codes_ptr + offs_m[:, None] * K + g * 64 + cols[None, :],
                            mask=m_mask[:, None], other=0)
                xsv = tl.load(xs_ptr + offs_m * s_xs_m + g * s_xs_g, mask=m_mask, other=0.0)
                xf = (x.to(tl.float32) * xsv.to(tl.float32)[:, None]).to(OPERAND)
            else:
                wf = tl.load(wb_ptr + offs_n[:, None] * K + g * 64 + cols[None, :],
                             mask=n_mask[:, None], other=0.0)
                xf = tl.load(xb_ptr + offs_m[:, None] * K + g * 64 + cols[None, :],
                             mask=m_mask[:, None], other=0.0)
            acc = tl.dot(wf, tl.trans(xf), acc)
        tl.store(y_ptr + offs_m[None, :] * N + offs_n[:, None], acc.to(tl.bfloat16),
                 mask=m_mask[None, :] & n_mask[:, None])
    return float_dot_kernel


def _bench_float_dot(row, layer, codes, xs, s_m, s_g, x, w):
    # Is the few-row W4A4 GEMM's per-64-group rescale what keeps it above cuBLAS BF16? The
    # same int4 weights and 4-bit activations as bfloat16 operands on one fp32 accumulator,
    # against gemm_kernel at one K split (its 'gemm split 1' row) and against plain bf16
    # operands in the same loop.
    import triton
    kernel = _float_dot_kernel()
    m, k = codes.shape
    n = layer.weight_packed.shape[0]
    y = torch.empty(m, n, dtype=torch.bfloat16, device='cuda')
    bm = max(16, triton.next_power_of_2(m))
    want = tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.bfloat16).float()
    for bn, warps in ((64, 4), (32, 4), (128, 8)):
        for dequant in (True, False):
            def launch(bn=bn, warps=warps, dequant=dequant):
                kernel[(triton.cdiv(n, bn),)](
                    codes, xs, s_m, s_g, layer.weight_packed, layer.weight_scale,
                    layer.weight_scale.stride(0), x, w, y, m, n, k // 64, DEQUANT=dequant, BM=bm,
                    BN=bn, ASM_UNPACK=tw._asm_unpack(), num_warps=warps)
            launch()
            if dequant:
                err = ((y.float() - want).norm() / want.norm()).item()
                assert err < 1e-2, (bn, warps, err)
            name = 'W4A4 values as bf16 operands' if dequant else 'bf16 operands'
            row[f'{name}, one fp32 accumulator, BN{bn} w{warps} split 1'] = _graph_us(launch)


def _bench_programmatic(row, layer, x):
    # The backend's quantize then GEMM, captured with programmatic dependent launches (each
    # kernel may start while the one before runs, its weights prefetched) and without.
    def quantize_then_gemm():
        codes, xs, s_m, s_g = tw.quantize_input(layer, x)
        tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.bfloat16)
    for enabled, label in ((False, 'quant + gemm, plain launches'),
                           (True, 'quant + gemm, programmatic launches (PDL)')):
        tw.set_programmatic_launch(enabled)
        row[label] = _graph_us(quantize_then_gemm)
    tw.set_programmatic_launch(False)


# (label, batch, tokens, query heads, K/V heads, head dim, cached keys): pi0.5's expert over
# the prefix cache (a denoising step's attention) and the prefix's own.
ATTENTION_SHAPES = [('expert over the cache', 1, 50, 8, 1, 256, 816),
                    ('prefix', 1, 816, 8, 1, 256, 0)]
# The tiles that compile without spilling on sm_90 and sm_87 (16 rows; 32 or 64 keys; 4 warps
# only at 32 keys), at several key splits; then 64 and 128 rows over 8 warps, which sm_90 runs
# on wgmma with each warp owning whole rows (the 16-row tile splits its 32 keys over 8 warps,
# so every softmax reduction crosses warps), spilling 144-720 B outside the key loop: 2-7x
# slower over the cache, where their last split combines 4-14 partials (RESULTS 7t).
ATTENTION_PLANS = [None, {'splits': 1}, {'splits': 3}, {'splits': 8}, {'splits': 10},
                   {'splits': 14}, {'bn': 64}, {'bn': 64, 'splits': 7}, {'num_warps': 4},
                   {'bm': 64}, {'bm': 64, 'splits': 8}, {'bm': 64, 'bn': 64},
                   {'bm': 64, 'splits': 4}, {'bm': 128}, {'bm': 32, 'num_warps': 4}]


def bench_attention(label, b, lq, heads, kv_heads, d, cached):
    """Time the written-out attention (compiled, with the cache concatenated) and the kernel."""
    from omegaq_ros.kernels.attention import attention_plan, fused_attention
    from omegaq_ros.policy import pointwise
    from omegaq_ros.policy.pi05_model import attention_mask
    dev, dtype = 'cuda', torch.bfloat16
    q = torch.randn(b, lq, heads, d, device=dev, dtype=dtype)
    k, v = (torch.randn(b, lq, kv_heads, d, device=dev, dtype=dtype) for _ in range(2))
    past = tuple(torch.randn(b, cached, kv_heads, d, device=dev, dtype=dtype)
                 for _ in range(2)) if cached else None
    visible = torch.rand(b, 1, cached + lq, device=dev).expand(b, lq, cached + lq) > 0.1
    mask = attention_mask(visible, heads, kv_heads, dtype)
    written_out = torch.compile(pointwise.math_attention, fullgraph=True,
                                options={'pattern_matcher': False})
    row = {'shape': f'{label} ({lq} tokens x {heads} heads, {cached} + {lq} keys)',
           'written out (compiled, concatenated)':
               _graph_us(lambda: written_out(q, k, v, mask, past), launches=20)}
    ref = written_out(q, k, v, mask, past).float()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for plan in ATTENTION_PLANS:
        chosen = attention_plan(lq * heads // kv_heads, (cached, lq) if cached else (lq, 0),
                                b * kv_heads, sms, d, **(plan or {}))
        name = f'kernel, {plan or "default plan"}'
        err = (fused_attention(q, k, v, mask, past, plan).float() - ref).abs().max().item()
        us = _graph_us(lambda plan=plan: fused_attention(q, k, v, mask, past, plan),
                       launches=20)
        row[name] = (f"{us:.1f} ({chosen['bm']}x{chosen['bn']} w{chosen['num_warps']} "
                     f"split {chosen['splits']}; max err {err:.1e})")
    row.update(_sdpa_rows(q, k, v, past, visible))
    return row


def _sdpa_rows(q, k, v, past, visible):
    # torch's fused attention backends on the same inputs, with the padding mask and with
    # every key visible (what a prefix compacted to its visible tokens would run).
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from torch.nn.functional import scaled_dot_product_attention as sdpa
    if past is not None:
        k, v = torch.cat((past[0], k), 1), torch.cat((past[1], v), 1)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    rows = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.EFFICIENT_ATTENTION):
        for label, mask in (('padding mask', visible[:, None]), ('every key visible', None)):
            name = f'torch SDPA {backend.name.lower()}, {label}'

            def call(backend=backend, mask=mask):
                with sdpa_kernel(backend):
                    return sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
            try:
                call()
                rows[name] = _graph_us(call, launches=20)
            except RuntimeError as error:
                rows[name] = f'not run: {str(error).splitlines()[0][:60]}'
    return rows


# The prefix's permuted-input gather (gather_kernel, triton_w4a4._gathered): (rows per
# program, columns per step, warps); the backend runs the first.
GATHER_TILES = [(4, 512, 4), (2, 1024, 4), (8, 256, 4), (8, 512, 8), (16, 256, 8),
                (1, 2048, 4), (16, 512, 4)]


def bench_gather(m=816, k=2048, members=(1, 3)):
    """Time gather_kernel per tile for one input and for q/k/v's three permutations."""
    x = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    row = {'shape': f'{m} x {k}'}
    for count in members:
        perm = torch.stack([torch.randperm(k, device='cuda') for _ in range(count)]).int()
        want = torch.stack([x[:, p.long()] for p in perm])
        # Bytes read once and written once per member: the traffic floor.
        row[f'{count} member(s): traffic floor at 3 TB/s'] = (count + 1) * m * k * 2 / 3e6
        for bm, bk, warps in GATHER_TILES:
            got = tw._gathered(x, perm, count, bm, bk, warps)
            assert torch.equal(got, want), (bm, bk, warps)
            row[f'{count} member(s): {bm} rows x {bk} cols, {warps} warps'] = _graph_us(
                lambda: tw._gathered(x, perm, count, bm, bk, warps), launches=20)
    return row


WIDEN_TILES = [(128, 1, 4), (64, 2, 4), (64, 4, 4), (128, 2, 4), (128, 4, 8), (256, 1, 8),
               (32, 8, 4), (256, 2, 8)]


def _two_level_layer(k, n):
    """Build a QuantLinear on CUDA with random codes and two-level weight scales (1..16 units)."""
    layer = QuantLinear(k, n, name='bench', act_mode='dynamic_two_level', per_step=False,
                        has_bias=False, has_smooth=False, has_perm=False, has_rot_in=False,
                        has_rot_out=False, has_scale_unit=True).to('cuda')
    layer.weight_packed.copy_(pack_int4(torch.randint(-8, 8, (n, k), dtype=torch.int8,
                                                      device='cuda')))
    unit = (torch.randint(64, 128, (n,), device='cuda') * 2.0 ** -16).half()
    layer.weight_scale_unit.copy_(unit)
    layer.weight_scale.copy_(torch.randint(1, 17, (n, k // 128), device='cuda')
                             * unit.float()[:, None])
    return layer


def bench_widen(shapes=(('lm_qkv', 2048, 2560), ('lm_gate_up', 2048, 32768),
                        ('lm_down', 16384, 2048))):
    """Time widen_kernel per tile (weight rows, 64-groups per program, warps) per prefix shape."""
    rows = []
    for label, k, n in shapes:
        layer = _two_level_layer(k, n)
        after = layer.weight_packed
        want = tw._widen(layer, layer, after)
        # Half a byte read and one byte written per weight: the traffic floor.
        row = {'shape': f'{label} {n} x {k}', 'traffic floor at 3 TB/s': 1.5 * n * k / 3e6}
        for bn, groups, warps in WIDEN_TILES:
            got = tw._widen(layer, layer, after, bn, groups, warps)
            assert torch.equal(got, want), (bn, groups, warps)
            row[f'{bn} rows x {groups} groups, {warps} warps'] = _graph_us(
                lambda: tw._widen(layer, layer, after, bn, groups, warps), launches=10)
        rows.append(row)
    return rows


def main(argv=None):
    """Run the table; print it as markdown."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--json', default=None)
    args = ap.parse_args(argv)
    from omegaq_ros import kernels
    kernels.register()
    # Each launch is timed on its own (programmatic launches would overlap it with the one
    # before); the 'programmatic launches' rows turn them on.
    tw.set_programmatic_launch(False)
    torch.manual_seed(0)
    import triton
    props = torch.cuda.get_device_properties(0)
    print(f'# {props.name}, torch {torch.__version__}, triton {triton.__version__}; '
          'us per launch, 50 launches back to back in one CUDA graph, median of 30 replays')
    rows = [bench_shape(*shape) for shape in SHAPES]
    names = [key for key in rows[0] if key not in ('shape', 'M', 'K', 'N')]
    for r in rows[1:]:
        names += [key for key in r if key not in names and key not in ('shape', 'M', 'K', 'N')]
    heads = [f"{r['shape']} M{r['M']} K{r['K']} N{r['N']}" for r in rows]
    print('| variant | ' + ' | '.join(heads) + ' |')
    print('|---|' + '---|' * len(rows))
    for name in names:
        cells = [r.get(name, '') for r in rows]
        text = [f'{c:.1f}' if isinstance(c, float) else str(c) for c in cells]
        print(f'| {name} | ' + ' | '.join(text) + ' |')
    attention = [bench_attention(*shape) for shape in ATTENTION_SHAPES]
    print('\n| attention, us per launch | ' + ' | '.join(r['shape'] for r in attention) + ' |')
    print('|---|' + '---|' * len(attention))
    for name in [key for key in attention[0] if key != 'shape']:
        cells = [f'{r[name]:.1f}' if isinstance(r[name], float) else r[name] for r in attention]
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    gather = bench_gather()
    print('\n| gather, us per launch | ' + gather['shape'] + ' |\n|---|---|')
    for name in [key for key in gather if key != 'shape']:
        print(f'| {name} | {gather[name]:.1f} |')
    widen = bench_widen()
    print('\n| widen, us per launch | ' + ' | '.join(r['shape'] for r in widen) + ' |')
    print('|---|' + '---|' * len(widen))
    for name in [key for key in widen[0] if key != 'shape']:
        print(f'| {name} | ' + ' | '.join(f'{r[name]:.1f}' for r in widen) + ' |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'device': props.name, 'torch': torch.__version__,
                       'triton': triton.__version__, 'rows': rows, 'attention': attention,
                       'gather': gather, 'widen': widen}, f, indent=1)


if __name__ == '__main__':
    main()
