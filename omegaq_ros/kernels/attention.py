# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Masked attention over a cached prefix in one Triton launch (the CUDA fast path's attention).

A denoising step's attention in the pi0.5 expert is 50 tokens x 8 query heads over the
prefix's ~816 cached keys and its own 50: written out (policy/pointwise.math_attention) it
took five launches per layer on an H100 (the two key/value concatenations, two GEMMs, one
softmax; 22.6 us, RESULTS 7e). Here one launch reads the cache and this call's keys where
they lie, folds the query heads that share a K/V head into one tile (every key is loaded
once per tile), and splits the keys over programs when the query tiles alone would leave
most of the GPU idle (the last split of a tile to finish combines the partial results).
The arithmetic is math_attention's: scores q k^T / sqrt(d) plus the additive mask, softmax
in fp32, probabilities rounded to v's dtype for the product, output in q's dtype.
"""

import functools
import math

from omegaq_ros.kernels.triton_w4a4 import (_arrival_counts, _interpreting, _sms,
                                            ARRIVAL_SLOTS, launch_options, triton_available)
import torch


def attention_available(q: torch.Tensor) -> bool:
    """Return True where the kernel runs for q: CUDA (or Triton's interpreter), d a power of 2."""
    d = q.shape[-1]
    return (triton_available() and (q.is_cuda or _interpreting())
            and 16 <= d <= 256 and d & (d - 1) == 0)


@functools.lru_cache(maxsize=None)
def _kernel():
    from omegaq_ros.kernels import _attention_kernel
    return _attention_kernel.attention_kernel


def attention_plan(rows: int, segments, tiles_per_row_block: int, sms: int, head_dim: int,
                   bm=None, bn=None, splits=None, num_warps=None) -> dict:
    """
    Choose the query tile (bm rows), key block (bn) and key splits for one launch.

    rows: query rows per K/V head (tokens x query heads per K/V head); segments: the key
    counts of the two segments; tiles_per_row_block: batch x K/V heads. Unless given, the
    keys are split until about one program per SM runs, each over at least two key blocks.
    """
    # 16 query rows x 32 keys over 8 warps: with head dim 256 the most compact on sm_90 and
    # sm_87 (128 registers, K/V pipelined into shared memory); 32 or 64 query rows spill
    # (the unrolled combination's partials), 4 warps take 196 registers
    # (scripts/inspect_kernels.py; timed in RESULTS 7i).
    bm = bm or 16
    bn = bn or 32
    row_tiles = -(-rows // bm) * tiles_per_row_block
    blocks = sum(-(-length // bn) for length in segments)
    if splits is None:
        splits = 1
        if row_tiles < sms // 2:
            splits = max(1, min(blocks // 2, sms // row_tiles))
    per_split = -(-blocks // splits)
    return {'bm': bm, 'bn': bn, 'splits': -(-blocks // per_split), 'blocks_per_split': per_split,
            'num_warps': num_warps or 8, 'num_stages': 2}


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                    past=None, plan=None, rope=None) -> torch.Tensor:
    """
    Attention of q [B, Lq, H, d] over past's keys (if any) then k, v [B, Lk, KV, d]; [B, Lq, H*d].

    past: (keys, values) [B, P, KV, d] of earlier tokens (the prefix cache) or None. mask:
    the additive mask over the P + Lk keys as pi05_model.attention_mask builds it ([B or 1,
    1, Lq * H, P + Lk] with one K/V head, the query heads folded into rows; else [B or 1, 1,
    Lq, P + Lk]) or None. plan: attention_plan's fields, to override (benchmarks). rope:
    (cos, sin) [B or 1, Lq, d] of these tokens (Lk = Lq): q and k are rotated on load, as
    pointwise.rope_qk would (no launch of its own, no rotated copy); past's keys are not.
    """
    b, lq, heads, d = q.shape
    kv_heads = k.shape[2]
    group = heads // kv_heads
    if past is None and rope is None:
        first_k, first_v, second_k, second_v = k, v, k, v
        s1, s2 = k.shape[1], 0
    else:
        # Rotated keys must be segment 2 (without a cache, after an empty segment 1).
        first_k, first_v = past if past is not None else (k, v)
        second_k, second_v = k, v
        s1, s2 = (past[0].shape[1] if past is not None else 0), k.shape[1]
    if rope is not None:
        cos, sin = rope
        if (s2 != lq or cos.dim() != 3 or cos.shape[0] not in (1, b)
                or cos.shape[1:] != (lq, d) or sin.shape != cos.shape):
            raise ValueError(f'attention: RoPE tables {tuple(cos.shape)} / {tuple(sin.shape)} '
                             f'for {lq} tokens of {s2} keys, head dim {d}')
        cos, sin = cos.contiguous(), sin.contiguous()    # one set of strides for both
        s_cb = cos.stride(0) if cos.shape[0] > 1 else 0
        s_cl = cos.stride(-2)
    else:
        cos = sin = q
        s_cb = s_cl = 0
    q, first_k, first_v, second_k, second_v = (
        t if t.stride(-1) == 1 else t.contiguous()
        for t in (q, first_k, first_v, second_k, second_v))
    out = torch.empty(b, lq, heads, d, dtype=q.dtype, device=q.device)
    has_mask = mask is not None
    if has_mask:
        if mask.stride(-1) != 1:
            mask = mask.contiguous()
        s_mb = mask.stride(0) if mask.shape[0] > 1 else 0
        if kv_heads == 1:
            s_ml, s_mh = heads * mask.stride(2), mask.stride(2)
        else:
            s_ml, s_mh = mask.stride(2), 0
    else:
        mask, s_mb, s_ml, s_mh = q, 0, 0, 0
    p = attention_plan(lq * group, (s1, s2), b * kv_heads, _sms(q), d,
                       **(plan or {}))
    row_tiles = -(-(lq * group) // p['bm'])
    split = p['splits'] > 1
    if split:
        padded = row_tiles * p['bm']
        part = torch.empty(p['splits'], b * kv_heads, padded, d, dtype=torch.float32,
                           device=q.device)
        stat = torch.empty(p['splits'], b * kv_heads, padded, 2, dtype=torch.float32,
                           device=q.device)
        if row_tiles * b * kv_heads > ARRIVAL_SLOTS:
            raise ValueError(f'attention: {row_tiles * b * kv_heads} split tiles exceed '
                             f'{ARRIVAL_SLOTS}')
    else:
        part = stat = out
    _kernel()[(row_tiles, b * kv_heads, p['splits'])](
        q, q.stride(0), q.stride(1), q.stride(2),
        first_k, *first_k.stride()[:3], first_v, *first_v.stride()[:3], s1,
        second_k, *second_k.stride()[:3], second_v, *second_v.stride()[:3], s2,
        mask, s_mb, s_ml, s_mh,
        cos, sin, s_cb, s_cl,
        out, out.stride(0), out.stride(1), out.stride(2),
        part, stat, _arrival_counts(q.device),
        lq, kv_heads, group, p['blocks_per_split'], 1.0 / math.sqrt(d),
        HAS_MASK=has_mask, SPLITS=p['splits'], D=d, BM=p['bm'], BN=p['bn'],
        ROPE=rope is not None,
        num_warps=p['num_warps'], num_stages=p['num_stages'], **launch_options(q))
    return out.reshape(b, lq, heads * d)
