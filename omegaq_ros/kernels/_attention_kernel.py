# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The Triton attention kernel (imported only when it first runs): see kernels/attention.py.

Online softmax over key blocks (flash attention) with an additive mask, keys and values in
two segments (a cached prefix and this call's tokens, never concatenated), query heads that
share a K/V head folded into one tile's rows, and the keys optionally split over programs
whose partial results the last to finish combines (no second launch).
"""

from omegaq_ros.kernels._triton_kernels import after_predecessor, before_successor
import triton
import triton.language as tl

# Below any additive mask value (pi05_model.MASK_VALUE is -2.38e38): rows start here, so a
# fully masked row averages its keys as softmax does, and no exp sees -inf - -inf.
START = tl.constexpr(-3.0e38)


@triton.jit
def _roped(x, row_ptrs, cos_rows, sin_rows, mask, D: tl.constexpr):
    # RoPE of rows x [R, D] (at row_ptrs, unit column stride) by their angles (cos_rows,
    # sin_rows: each row's table at column 0): x * cos + rotate_half(x) * sin, where
    # rotate_half(x) = (-second half, first half), in fp32 and rounded once to x's dtype (as
    # the compiled pointwise.rope_qk does).
    offs_d = tl.arange(0, D)
    swapped = tl.load(row_ptrs + ((offs_d + D // 2) % D)[None, :], mask=mask,
                      other=0.0).to(tl.float32)
    cos = tl.load(cos_rows + offs_d[None, :], mask=mask, other=0.0).to(tl.float32)
    sin = tl.load(sin_rows + offs_d[None, :], mask=mask, other=0.0).to(tl.float32)
    sign = tl.where(offs_d < D // 2, -1.0, 1.0)
    return (x.to(tl.float32) * cos + swapped * sign[None, :] * sin).to(x.dtype)


@triton.jit
def _attend(q, m_i, l_i, acc, k_ptr, v_ptr, s_ks, s_vs, first, S, mask_ptrs, col0, r_mask,
            scale, cos_ptr, sin_ptr, s_cl, HAS_MASK: tl.constexpr, BN: tl.constexpr,
            D: tl.constexpr, ROPE: tl.constexpr = False):
    # One block of BN keys (first..first+BN of a segment of S) into the running max m_i,
    # sum l_i and unnormalized output acc of the tile's rows. k_ptr, v_ptr: the segment's
    # first key of this batch and K/V head; mask_ptrs: the tile rows' mask at column 0.
    # ROPE: the keys get RoPE first, key n by row n of cos_ptr / sin_ptr (stride s_cl).
    offs_n = first + tl.arange(0, BN)
    n_mask = offs_n < S
    if ROPE:
        k_rows = k_ptr + offs_n[:, None] * s_ks
        k = tl.load(k_rows + tl.arange(0, D)[None, :], mask=n_mask[:, None], other=0.0)
        k = _roped(k, k_rows, cos_ptr + offs_n[:, None] * s_cl, sin_ptr + offs_n[:, None] * s_cl,
                   n_mask[:, None], D)
    else:
        # Block pointers: a [BN, D] tile of per-element addresses would take most registers.
        k = tl.load(tl.make_block_ptr(k_ptr, (S, D), (s_ks, 1), (first, 0), (BN, D), (1, 0)),
                    boundary_check=(0,), padding_option='zero')
    s = tl.dot(q, tl.trans(k)) * scale
    if HAS_MASK:
        s += tl.load(mask_ptrs + (col0 + offs_n)[None, :],
                     mask=r_mask[:, None] & n_mask[None, :], other=0.0).to(tl.float32)
    s = tl.where(n_mask[None, :], s, float('-inf'))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    alpha = tl.exp(m_i - m_new)
    p = tl.exp(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    v = tl.load(tl.make_block_ptr(v_ptr, (S, D), (s_vs, 1), (first, 0), (BN, D), (1, 0)),
                boundary_check=(0,), padding_option='zero')
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return m_new, l_i, acc


@triton.jit
def attention_kernel(q_ptr, s_qb, s_ql, s_qh,
                     k1_ptr, s_k1b, s_k1s, s_k1h, v1_ptr, s_v1b, s_v1s, s_v1h, S1,
                     k2_ptr, s_k2b, s_k2s, s_k2h, v2_ptr, s_v2b, s_v2s, s_v2h, S2,
                     mask_ptr, s_mb, s_ml, s_mh,
                     cos_ptr, sin_ptr, s_cb, s_cl,
                     out_ptr, s_ob, s_ol, s_oh,
                     part_ptr, stat_ptr, arrivals_ptr,
                     L, KV, GROUP, BLOCKS_PER_SPLIT, scale,
                     HAS_MASK: tl.constexpr, SPLITS: tl.constexpr, D: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, PDL: tl.constexpr = False,
                     ROPE: tl.constexpr = False):
    """
    softmax(q k^T * scale + mask) v for one tile of query rows, one K/V head, one key split.

    q [B, L, H, D] and the output [B, L, H, D] by strides (s_qb, s_ql, s_qh, unit last);
    keys and values of segment j [B, Sj, KV, D] by strides (s_kjb, s_kjs, s_kjh) and
    (s_vjb, s_vjs, s_vjh), unit last (a view into a fused q/k/v output is read in place);
    segment 2 follows segment 1 in the key order (S2 may be 0). A tile's rows are
    (token l, query head h) pairs of the K/V head's GROUP query heads, row r = l * GROUP +
    h % GROUP. mask: additive, element (b, l, h, key) at b * s_mb + l * s_ml + h * s_mh +
    key (unit key stride). Grid (row tiles, B * KV, SPLITS); split s attends to key blocks
    s * BLOCKS_PER_SPLIT onwards (segment 1's blocks, then segment 2's). With SPLITS > 1, each
    writes its running max, sum and unnormalized output to stat_ptr / part_ptr [splits,
    B * KV, row tiles * BM, (2 | D)] and the last of a tile's splits to arrive (counter
    arrivals_ptr[tile], reset after: the split-K GEMM's counters) combines them into the
    output (its loads unrolled over the SPLITS partials, so they are in flight together).
    PDL: launched as a programmatic dependent launch (after_predecessor, before_successor).
    ROPE: q and segment 2's keys (this call's tokens, key n = token n) get RoPE on load, token
    l's angles at cos_ptr / sin_ptr + b * s_cb + l * s_cl (unit last stride, [B, L, D]);
    segment 1 (a cache) holds keys that had theirs.
    """
    after_predecessor(PDL)
    pid_r = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // KV
    kvh = pid_bh % KV
    rows = pid_r * BM + tl.arange(0, BM)
    r_mask = rows < L * GROUP
    token = rows // GROUP
    head = kvh * GROUP + rows % GROUP
    offs_d = tl.arange(0, D)
    q_rows = q_ptr + b * s_qb + token[:, None] * s_ql + head[:, None] * s_qh
    q = tl.load(q_rows + offs_d[None, :], mask=r_mask[:, None], other=0.0)
    cos_ptr += b * s_cb
    sin_ptr += b * s_cb
    if ROPE:
        q = _roped(q, q_rows, cos_ptr + token[:, None] * s_cl, sin_ptr + token[:, None] * s_cl,
                   r_mask[:, None], D)
    mask_ptrs = mask_ptr + b * s_mb + token[:, None] * s_ml + head[:, None] * s_mh
    m_i = tl.zeros([BM], dtype=tl.float32) + START
    l_i = tl.zeros([BM], dtype=tl.float32)
    acc = tl.zeros([BM, D], dtype=tl.float32)
    n1 = tl.cdiv(S1, BN)
    start = pid_s * BLOCKS_PER_SPLIT
    end = tl.minimum(start + BLOCKS_PER_SPLIT, n1 + tl.cdiv(S2, BN))
    k1 = k1_ptr + b * s_k1b + kvh * s_k1h
    v1 = v1_ptr + b * s_v1b + kvh * s_v1h
    for i in range(start, tl.minimum(end, n1)):
        m_i, l_i, acc = _attend(q, m_i, l_i, acc, k1, v1, s_k1s, s_v1s, i * BN, S1, mask_ptrs,
                                0, r_mask, scale, cos_ptr, sin_ptr, s_cl, HAS_MASK, BN, D)
    k2 = k2_ptr + b * s_k2b + kvh * s_k2h
    v2 = v2_ptr + b * s_v2b + kvh * s_v2h
    for i in range(tl.maximum(start, n1), end):
        m_i, l_i, acc = _attend(q, m_i, l_i, acc, k2, v2, s_k2s, s_v2s, (i - n1) * BN, S2,
                                mask_ptrs, S1, r_mask, scale, cos_ptr, sin_ptr, s_cl, HAS_MASK,
                                BN, D, ROPE)
    out_ptrs = (out_ptr + b * s_ob + token[:, None] * s_ol + head[:, None] * s_oh
                + offs_d[None, :])
    before_successor(PDL)
    if SPLITS > 1:
        row_tiles = tl.num_programs(0)
        padded = row_tiles * BM
        here = (pid_s * tl.num_programs(1) + pid_bh) * padded + rows
        tl.store(part_ptr + here[:, None] * D + offs_d[None, :], acc)
        tl.store(stat_ptr + here * 2, m_i)
        tl.store(stat_ptr + here * 2 + 1, l_i)
        # As the split-K GEMM's _reduce_splits: stores released before the count, the last
        # arrival acquires them; the combination runs in split order whoever arrives last.
        tl.debug_barrier()
        arrival_ptr = arrivals_ptr + pid_bh * row_tiles + pid_r
        arrived = tl.atomic_add(arrival_ptr, 1, sem='acq_rel', scope='gpu')
        if arrived == SPLITS - 1:
            m_all = tl.zeros([BM], dtype=tl.float32) + START
            l_all = tl.zeros([BM], dtype=tl.float32)
            o_all = tl.zeros([BM, D], dtype=tl.float32)
            for s in tl.static_range(SPLITS):
                there = (s * tl.num_programs(1) + pid_bh) * padded + rows
                m_s = tl.load(stat_ptr + there * 2, cache_modifier='.cg')
                l_s = tl.load(stat_ptr + there * 2 + 1, cache_modifier='.cg')
                o_s = tl.load(part_ptr + there[:, None] * D + offs_d[None, :],
                              cache_modifier='.cg')
                m_new = tl.maximum(m_all, m_s)
                a = tl.exp(m_all - m_new)
                w = tl.exp(m_s - m_new)
                l_all = l_all * a + l_s * w
                o_all = o_all * a[:, None] + o_s * w[:, None]
                m_all = m_new
            tl.store(out_ptrs, (o_all / l_all[:, None]).to(out_ptr.dtype.element_ty),
                     mask=r_mask[:, None])
            tl.atomic_xchg(arrival_ptr, 0, sem='relaxed', scope='gpu')
    else:
        tl.store(out_ptrs, (acc / l_i[:, None]).to(out_ptr.dtype.element_ty),
                 mask=r_mask[:, None])
