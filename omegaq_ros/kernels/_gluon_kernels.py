# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Gluon kernels of the W4A4 backend for sm_90 (Hopper), imported only when one first runs.

Triton 3.6 waits for every integer wgmma before the next K step: its software pipeliner
makes a tensor-core product asynchronous only when the accumulator is fp32, and int8
products accumulate in int32 (RESULTS 7q). Gluon issues the wgmma itself, so here the product
of K step i runs while the operands of step i + 1 are awaited and those of i + STAGES - 1
are loaded by the TMA: one product in flight behind each issue, as the floating-point GEMMs
get. Same operands and arithmetic as _triton_kernels.wide_gemm_kernel, so the outputs are
equal bit for bit.
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
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
def _load_step(a_desc, b_desc, a_row, off_n, k, bar, a_slot, b_slot, pred):
    mbarrier.expect(bar, a_desc.block_type.nbytes + b_desc.block_type.nbytes, pred=pred)
    tma.async_copy_global_to_shared(a_desc, [a_row, k], bar, a_slot, pred=pred)
    tma.async_copy_global_to_shared(b_desc, [off_n, k], bar, b_slot, pred=pred)


@gluon.jit
def wide_gemm_wgmma_kernel(a_desc, b_desc, xs_ptr, s_member_xs, wu_ptr, bias_ptr, y_ptr,
                           M, N, K, member_end1, member_end2, HAS_BIAS: gl.constexpr,
                           MEMBERS: gl.constexpr, STAGES: gl.constexpr,
                           WARPS_M: gl.constexpr, INSTR_N: gl.constexpr,
                           PDL: gl.constexpr = False):
    """
    wide_gemm_kernel on asynchronous wgmma: y = (codes . w^T) * unit * xs + bias.

    a_desc: TMA descriptor of the codes, int8 [members * M, K] (member p's rows from p * M;
    a tile reaching past a member's M rows reads the next member's, whose products are never
    stored), block [BM, BK]; b_desc: of widen_kernel's int8 weights [N, K], block [BN, BK].
    xs_ptr, s_member_xs, wu_ptr, bias_ptr, member ends: as wide_gemm_kernel's. WARPS_M x
    (num_warps / WARPS_M) warps tile the [BM, BN] product (each warpgroup's wgmma is 64
    rows by INSTR_N columns and K 32).
    """
    BM: gl.constexpr = a_desc.block_type.shape[0]
    BK: gl.constexpr = a_desc.block_type.shape[1]
    BN: gl.constexpr = b_desc.block_type.shape[0]
    WARPS: gl.constexpr = gl.num_warps()
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[WARPS_M, WARPS // WARPS_M], instr_shape=[16, INSTR_N, 32])
    off_m = gl.program_id(0) * BM
    off_n = gl.program_id(1) * BN
    member = 0
    if MEMBERS:
        member = (off_n >= member_end1).to(gl.int32) + (off_n >= member_end2).to(gl.int32)
    a_row = member * M + off_m
    a_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BM, BK], a_desc.layout)
    b_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BN, BK], b_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
    steps = gl.cdiv(K, BK)
    _grid_dependency(PDL, True)
    for s in gl.static_range(STAGES - 1):
        _load_step(a_desc, b_desc, a_row, off_n, s * BK, ready.index(s), a_smem.index(s),
                   b_smem.index(s), s < steps)
    acc = gl.zeros([BM, BN], gl.int32, acc_layout)
    for i in range(steps):
        slot = i % STAGES
        mbarrier.wait(ready.index(slot), (i // STAGES) & 1)
        acc = warpgroup_mma(a_smem.index(slot), b_smem.index(slot).permute((1, 0)), acc,
                            is_async=True)
        # At most this step's product in flight: step i - 1's slot is free to refill.
        acc, _, _ = warpgroup_mma_wait(num_outstanding=1,
                                       deps=(acc, a_smem.index(slot), b_smem.index(slot)))
        ahead = i + STAGES - 1
        refill = ahead % STAGES
        _load_step(a_desc, b_desc, a_row, off_n, ahead * BK, ready.index(refill),
                   a_smem.index(refill), b_smem.index(refill), ahead < steps)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
    for s in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(s))
    _grid_dependency(PDL, False)
    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, acc_layout))
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, acc_layout))
    m_mask = offs_m < M
    n_mask = offs_n < N
    units = gl.load(wu_ptr + offs_n, mask=n_mask, other=1.0).to(gl.float32)
    xsv = gl.load(xs_ptr + member * s_member_xs + offs_m, mask=m_mask, other=0.0).to(gl.float32)
    out = acc.to(gl.float32) * units[None, :] * xsv[:, None]
    if HAS_BIAS:
        out = out + gl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    gl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], out.to(y_ptr.dtype.element_ty),
             mask=m_mask[:, None] & n_mask[None, :])
