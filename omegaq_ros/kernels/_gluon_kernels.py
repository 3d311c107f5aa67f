# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Gluon kernels of the W4A4 backend for sm_90 (Hopper), imported only when one first runs.

Triton 3.6 waits for every integer wgmma before the next K step (its software pipeliner
makes a tensor-core product asynchronous only with an fp32 accumulator; int8 products
accumulate in int32), so a GEMM that widens its int4 weights in the loop cannot overlap the
widening with the products, and the prefix widens every weight into memory first
(widen_kernel, RESULTS 7o). Gluon issues the wgmma itself: here the tensor cores multiply one
K step while the next step's weights are widened into shared memory (RESULTS 7q).
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared
from triton.experimental.gluon.language.nvidia.hopper import mbarrier
from triton.experimental.gluon.language.nvidia.hopper import tma
from triton.experimental.gluon.language.nvidia.hopper import warpgroup_mma
from triton.experimental.gluon.language.nvidia.hopper import warpgroup_mma_wait


@gluon.jit
def _grid_dependency(PDL: gl.constexpr, WAIT: gl.constexpr):
    # Programmatic dependent launch (_triton_kernels.after_predecessor / before_successor).
    if PDL:
        if WAIT:
            gl.inline_asm_elementwise('griddepcontrol.wait; // dummy $0', '=r', [],
                                      dtype=gl.int32, is_pure=False, pack=1)
        else:
            gl.inline_asm_elementwise('griddepcontrol.launch_dependents; // dummy $0', '=r', [],
                                      dtype=gl.int32, is_pure=False, pack=1)


@gluon.jit
def _unpack_times(wb, mb):
    # _triton_kernels._unpack_nibbles_times: packed int4 bytes wb times the rows' multiples
    # (mb: the multiple in every byte) as int8 (low nibbles, high nibbles).
    return gl.inline_asm_elementwise(
        asm="""
        {
        .reg .b32 t, m, c;
        and.b32 m, $3, 0xFF;
        shl.b32 c, $3, 3;
        sub.u32 c, 0x80808080, c;
        and.b32 t, $2, 0x0F0F0F0F;
        xor.b32 t, t, 0x08080808;
        mul.lo.u32 t, t, m;
        add.u32 t, t, c;
        xor.b32 $0, t, 0x80808080;
        shr.u32 t, $2, 4;
        and.b32 t, t, 0x0F0F0F0F;
        xor.b32 t, t, 0x08080808;
        mul.lo.u32 t, t, m;
        add.u32 t, t, c;
        xor.b32 $1, t, 0x80808080;
        }
        """,
        constraints='=r,=r,r,r', args=[wb, mb], dtype=(gl.int8, gl.int8), is_pure=True,
        pack=4)


@gluon.jit
def _load_packed(wp_ptr, rows, n_mask, cols, step, K):
    # Step's two 64-groups of packed weight bytes, [BN, 32] each (32 bytes per group and row).
    ptrs = wp_ptr + rows[:, None] * (K // 2) + step * 64 + cols[None, :]
    return (gl.load(ptrs, mask=n_mask[:, None], other=0),
            gl.load(ptrs + 32, mask=n_mask[:, None], other=0))


@gluon.jit
def _stage_weights(w_smem, base, packed, ws_ptr, s_ws_n, per_unit, rows, n_mask, step):
    # Write one K step of weights as int8 codes times their multiples into four [BN, 32]
    # buffers, in the GEMM order of the codes: group 0's low nibbles, its high ones, then
    # group 1's. The rows' multiple m: ws = m * unit exactly (weights.scale_multiples).
    wsv = gl.load(ws_ptr + rows * s_ws_n + step, mask=n_mask, other=0.0).to(gl.float32)
    mult = (wsv * per_unit + 0.5).to(gl.int32).to(gl.uint8)
    mb = gl.broadcast(mult[:, None], packed[0])[0]
    for g in gl.static_range(2):
        lo, hi = _unpack_times(packed[g], mb)
        w_smem.index(base + 2 * g).store(lo)
        w_smem.index(base + 2 * g + 1).store(hi)


@gluon.jit
def packed_gemm_wgmma_kernel(a_desc, wp_ptr, ws_ptr, s_ws_n, xs_ptr, s_member_xs, wu_ptr,
                             bias_ptr, y_ptr, M, N, K, member_end1, member_end2,
                             HAS_BIAS: gl.constexpr, MEMBERS: gl.constexpr,
                             BN: gl.constexpr, STAGES: gl.constexpr,
                             WARPS_M: gl.constexpr, INSTR_N: gl.constexpr,
                             PDL: gl.constexpr = False):
    """
    Multiply many tokens by two-level packed weights: y = (codes . w^T) * unit * xs + bias.

    What widen_kernel + wide_gemm_kernel compute, without the int8 weights in memory: each K
    step's packed int4 rows (wp_ptr [N, K / 2], loaded into registers a step ahead) are
    widened to int8 codes times their multiples (ws_ptr, s_ws_n: the weight scales, one per
    128-group) into shared memory while the tensor cores multiply the step before; the codes
    (a_desc: TMA descriptor of int8 [members * M, K], block [BM, 128]; a tile reaching past a
    member's M rows reads the next member's, whose products are never stored) come by TMA
    STAGES - 1 steps ahead. Each step is four wgmma of K 32 (one per 32 widened columns).
    xs_ptr, s_member_xs, wu_ptr, bias_ptr, member ends: as wide_gemm_kernel's. WARPS_M x
    (num_warps / WARPS_M) warps tile [BM, BN] (wgmma 64 rows by INSTR_N columns).
    """
    BM: gl.constexpr = a_desc.block_type.shape[0]
    BK: gl.constexpr = a_desc.block_type.shape[1]
    WARPS: gl.constexpr = gl.num_warps()
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[WARPS_M, WARPS // WARPS_M], instr_shape=[16, INSTR_N, 32])
    packed_layout: gl.constexpr = gl.BlockedLayout(size_per_thread=[1, 16],
                                                   threads_per_warp=[16, 2],
                                                   warps_per_cta=[WARPS, 1], order=[1, 0])
    w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BN, 32], gl.int8)
    off_m = gl.program_id(0) * BM
    off_n = gl.program_id(1) * BN
    member = 0
    if MEMBERS:
        member = (off_n >= member_end1).to(gl.int32) + (off_n >= member_end2).to(gl.int32)
    a_row = member * M + off_m
    rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, packed_layout))
    cols = gl.arange(0, 32, layout=gl.SliceLayout(0, packed_layout))
    n_mask = rows < N
    per_unit = 1.0 / gl.load(wu_ptr + rows, mask=n_mask, other=1.0).to(gl.float32)
    a_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BM, BK], a_desc.layout)
    w_smem = gl.allocate_shared_memory(gl.int8, [8, BN, 32], w_layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
    steps = K // BK
    # Weights depend on no kernel: their first steps load before the wait.
    packed = _load_packed(wp_ptr, rows, n_mask, cols, 0, K)
    _stage_weights(w_smem, 0, packed, ws_ptr, s_ws_n, per_unit, rows, n_mask, 0)
    packed = _load_packed(wp_ptr, rows, n_mask & (steps > 1), cols, 1, K)
    fence_async_shared()
    gl.thread_barrier()
    _grid_dependency(PDL, True)
    for s in gl.static_range(STAGES - 1):
        pred = s < steps
        mbarrier.expect(ready.index(s), a_desc.block_type.nbytes, pred=pred)
        tma.async_copy_global_to_shared(a_desc, [a_row, s * BK], ready.index(s), a_smem.index(s),
                                        pred=pred)
    acc = gl.zeros([BM, BN], gl.int32, acc_layout)
    for i in range(steps):
        slot = i % STAGES
        base = (i % 2) * 4
        mbarrier.wait(ready.index(slot), (i // STAGES) & 1)
        for j in gl.static_range(4):
            acc = warpgroup_mma(a_smem.index(slot).slice(32 * j, 32, dim=1),
                                w_smem.index(base + j).permute((1, 0)), acc, is_async=True)
        # Step i's four products may still run; step i - 1's are done, so its code slot and
        # weight buffers are free.
        acc = warpgroup_mma_wait(num_outstanding=4, deps=(acc,))
        # Every warpgroup's, before either buffer is written again.
        gl.thread_barrier()
        ahead = i + STAGES - 1
        refill = ahead % STAGES
        mbarrier.expect(ready.index(refill), a_desc.block_type.nbytes, pred=ahead < steps)
        tma.async_copy_global_to_shared(a_desc, [a_row, ahead * BK], ready.index(refill),
                                        a_smem.index(refill), pred=ahead < steps)
        if i + 1 < steps:
            _stage_weights(w_smem, 4 - base, packed, ws_ptr, s_ws_n, per_unit, rows, n_mask,
                           i + 1)
            fence_async_shared()
            gl.thread_barrier()
            packed = _load_packed(wp_ptr, rows, n_mask & (i + 2 < steps), cols, i + 2, K)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(s))
    _grid_dependency(PDL, False)
    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, acc_layout))
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, acc_layout))
    m_mask = offs_m < M
    out_mask = offs_n < N
    units = gl.load(wu_ptr + offs_n, mask=out_mask, other=1.0).to(gl.float32)
    xsv = gl.load(xs_ptr + member * s_member_xs + offs_m, mask=m_mask, other=0.0).to(gl.float32)
    out = acc.to(gl.float32) * units[None, :] * xsv[:, None]
    if HAS_BIAS:
        out = out + gl.load(bias_ptr + offs_n, mask=out_mask, other=0.0)[None, :]
    gl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], out.to(y_ptr.dtype.element_ty),
             mask=m_mask[:, None] & out_mask[None, :])
