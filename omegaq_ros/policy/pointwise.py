# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The elementwise and row-wise work between a transformer layer's GEMMs, as plain functions.

Both families' layers call them (pi0.5's Gemma and SigLIP; GR00T's Qwen3, VL self-attention
and DiT). At batch 1 a chunk is mostly small kernels: Gemma's RMSNorm in eager PyTorch is
nine launches, RoPE five per tensor, the gated residual two. Written as functions of tensors only
(no modules, no Python state), each of them can be compiled once by torch.compile (Inductor)
into one or two fused kernels that every layer of the same shape reuses, while the GEMMs
between them (cuBLAS, or the W4A4 Triton kernels) stay as they are.

`EAGER` runs them as written (the CPU path and the reference); `compiled()` returns the same
functions through torch.compile. A model picks one with its `use_fused_pointwise` method; the
arithmetic is the same (fp32 statistics, the same casts), up to the order of float operations.
"""

import functools
from types import SimpleNamespace

import torch
from torch.nn import functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma RMSNorm: x * rsqrt(mean x^2 + eps) * (1 + w), statistics in fp32, x's dtype."""
    normed = x * torch.rsqrt(x.float().square().mean(-1, keepdim=True) + eps)
    return (normed * (1.0 + weight.float())).type_as(x)


def ada_rms_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """Apply the expert's adaRMSNorm: normalized x * (1 + scale) + shift (openpi RMSNorm)."""
    normed = x * torch.rsqrt(x.float().square().mean(-1, keepdim=True) + eps)
    return (normed * (1 + scale.float()) + shift.float()).to(x.dtype)


def gated_residual(x: torch.Tensor, out: torch.Tensor, gate) -> torch.Tensor:
    """Return x + out (gate None) or x + out * gate (the expert's adaRMS gate)."""
    return x + out if gate is None else x + out * gate.to(x.dtype)


def gated_residual_rms_norm(x: torch.Tensor, out: torch.Tensor, gate, weight: torch.Tensor,
                            eps: float):
    """Return (x + out [* gate], rms_norm of it): a residual add and the next norm together."""
    x = gated_residual(x, out, gate)
    return x, rms_norm(x, weight, eps)


def gated_residual_ada_rms_norm(x: torch.Tensor, out: torch.Tensor, gate, scale: torch.Tensor,
                                shift: torch.Tensor, eps: float):
    """Return (x + out [* gate], ada_rms_norm of it), as gated_residual_rms_norm."""
    x = gated_residual(x, out, gate)
    return x, ada_rms_norm(x, scale, shift, eps)


def small_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Return x @ weight^T + bias for a small fp32 projection (pi0.5's action head in/out)."""
    return F.linear(x, weight, bias)


def _small_linear_reduced(x: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor) -> torch.Tensor:
    # small_linear as one broadcast product and sum, which Inductor makes a single reduction
    # kernel: cuBLAS ran the action head's [50, 1024] x [1024, 32] fp32 product as a split-K
    # GEMM plus a scaling and a bias kernel, about 18 us per denoising step on an H100.
    return (x.unsqueeze(-2) * weight).sum(-1) + bias


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    # (-second half, first half) of the last dimension: RoPE's pairs (i, i + d/2).
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + d/2) of x [B, L, heads, d] by the angles cos/sin [B, L, d]."""
    return x * cos[:, :, None] + _rotate_half(x) * sin[:, :, None]


def rope_qk(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """
    Apply RoPE to queries and keys [B, L, heads, d]; return them as views of one tensor.

    Rotating their concatenation over the heads makes one kernel of it when compiled (two
    for two outputs of different shapes).
    """
    qk = rope(torch.cat((q, k), dim=2), cos, sin)
    return qk[:, :, :q.shape[2]], qk[:, :, q.shape[2]:]


def gelu_gate(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """GeGLU: gelu_tanh(gate) * up."""
    return F.gelu(gate, approximate='tanh') * up


def _with_past(k: torch.Tensor, v: torch.Tensor, past):
    # The keys and values of earlier tokens (a prefix cache), then these tokens'.
    if past is None:
        return k, v
    return torch.cat((past[0], k), dim=1), torch.cat((past[1], v), dim=1)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: torch.Tensor, past=None) -> torch.Tensor:
    """
    Attention of q [B, Lq, H, d] over past's then k, v [B, S, KV, d] (MQA/GQA); additive mask.

    One fused kernel (scaled_dot_product_attention). With one K/V head the H query heads
    become H rows per token of a single-head attention (mask from pi05_model.attention_mask),
    so no K/V head is repeated. past: (keys, values) of earlier tokens or None. Returns
    [B, Lq, H * d].
    """
    k, v = _with_past(k, v, past)
    b, lq, heads, d = q.shape
    kv_heads = k.shape[2]
    with sdpa_kernel(_MASKED_SDPA if q.is_cuda else _CPU_SDPA):
        if kv_heads == 1:
            out = F.scaled_dot_product_attention(q.reshape(b, 1, lq * heads, d),
                                                 k.transpose(1, 2), v.transpose(1, 2),
                                                 attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                 v.transpose(1, 2), attn_mask=mask,
                                                 enable_gqa=heads != kv_heads).transpose(1, 2)
    return out.reshape(b, lq, heads * d)


# With an additive mask on an H200, cuDNN's fused attention took 80 us for the expert's 400
# query rows (the whole denoising step is ~1 ms): the memory-efficient kernel is preferred.
_MASKED_SDPA = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]
_CPU_SDPA = [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]


def rope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, mask: torch.Tensor, past=None) -> torch.Tensor:
    """
    Return the attention of RoPE'd q over past's keys and RoPE'd k (the rotated keys dropped).

    For layers that keep none of their own keys (the pi0.5 expert's steps over the prefix
    cache): compiled on a GPU, the rotation happens inside the attention launch.
    """
    q, k = rope_qk(q, k, cos, sin)
    return sdpa_attention(q, k, v, mask, past)


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: torch.Tensor, past=None) -> torch.Tensor:
    """
    Compute the same attention written out: softmax(q k^T / sqrt(d) + mask) in fp32, times v.

    Compiled, this is two GEMMs and one fused scale-mask-softmax kernel (plus the past's
    concatenation). With a mask, the SDPA kernels ran the pi0.5 expert's 400 x 866 attention
    in 54-80 us on an H200 (13 thread blocks for 132 SMs); this is a few GEMM-sized launches.
    """
    k, v = _with_past(k, v, past)
    b, lq, heads, d = q.shape
    kv_heads = k.shape[2]
    keys, values = k.transpose(1, 2), v.transpose(1, 2)
    if kv_heads == 1:
        queries = q.reshape(b, 1, lq * heads, d)
    else:
        queries = q.transpose(1, 2)
        keys = keys.repeat_interleave(heads // kv_heads, dim=1)
        values = values.repeat_interleave(heads // kv_heads, dim=1)
    scores = (queries @ keys.transpose(2, 3)) * d ** -0.5 + mask
    out = scores.softmax(-1, dtype=torch.float32).to(q.dtype) @ values
    if kv_heads != 1:
        out = out.transpose(1, 2)
    return out.reshape(b, lq, heads * d)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float) -> torch.Tensor:
    """Apply LayerNorm over the last dimension (SigLIP)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation (GR00T DiT's MLP)."""
    return F.gelu(x, approximate='tanh')


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GELU (tanh approximation) of x @ weight^T + bias: SigLIP's first MLP projection."""
    return F.gelu(F.linear(x, weight, bias), approximate='tanh')


def _linear_gelu_epilogue(x: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor) -> torch.Tensor:
    # linear_gelu as one cuBLASLt GEMM whose epilogue adds the bias and applies GELU(tanh),
    # instead of a GEMM and a GELU launch per vision layer; elsewhere the same two steps.
    if not x.is_cuda:
        return linear_gelu(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1])
    out = torch._addmm_activation(bias, x2, weight.t(), use_gelu=True)
    return out.view(*x.shape[:-1], weight.shape[0])


def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Residual add."""
    return x + y


def scaled_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3 RMSNorm: weight * (x * rsqrt(mean x^2 + eps)), statistics in fp32, x's dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight.to(x.dtype) * h.to(x.dtype)


def norm_rope_qk(q: torch.Tensor, k: torch.Tensor, q_weight: torch.Tensor,
                 k_weight: torch.Tensor, eps: float, cos: torch.Tensor, sin: torch.Tensor):
    """Qwen3's per-head RMSNorm, then RoPE, on q and k [B, heads, L, d] (cos/sin [B, 1, L, d])."""
    q, k = scaled_rms_norm(q, q_weight, eps), scaled_rms_norm(k, k_weight, eps)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def silu_gate(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU: silu(gate) * up."""
    return F.silu(gate) * up


def ada_layer_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                   eps: float) -> torch.Tensor:
    """Normalize without affine, then x * (1 + scale) + shift (GR00T's AdaLayerNorm)."""
    return F.layer_norm(x, x.shape[-1:], eps=eps) * (1 + scale) + shift


_FUNCTIONS = ('rms_norm', 'ada_rms_norm', 'gated_residual_rms_norm',
              'gated_residual_ada_rms_norm', 'small_linear', 'rope_qk', 'gelu_gate',
              'layer_norm', 'gelu', 'linear_gelu', 'add', 'scaled_rms_norm', 'norm_rope_qk',
              'silu_gate', 'ada_layer_norm')
EAGER = SimpleNamespace(**{name: globals()[name] for name in _FUNCTIONS},
                        attention=sdpa_attention, rope_attention=rope_attention, fused=False)


@functools.lru_cache(maxsize=None)
def compiled() -> SimpleNamespace:
    """
    Return the functions above through torch.compile (built once per process).

    A function compiles for the shapes it first sees and every layer of that shape reuses
    it; when a second shape arrives (another prompt length) torch.compile recompiles it once
    with dynamic shapes, so a new instruction length costs no further compilation.
    """
    import torch._dynamo
    from omegaq_ros.kernels.attention import attention_available, fused_attention
    # One entry per shape and dtype seen (vision, prefix, expert, calibration batches).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    # Inductor would turn the written-out attention back into the fused kernel it matches.
    written_out = torch.compile(math_attention, fullgraph=True,
                                options={'pattern_matcher': False})

    def attention(q, k, v, mask, past=None):
        # Over a cached prefix (the denoising steps), one Triton launch on a GPU
        # (kernels/attention.py: the cache read in place, the query heads of a K/V head in one
        # tile); else, and for the prefix itself (thousands of query rows, where the GEMMs'
        # large tiles pay), the written-out attention.
        if past is not None and attention_available(q):
            return fused_attention(q, k, v, mask, past)
        return written_out(q, k, v, mask, past)

    functions = dict(globals(), small_linear=_small_linear_reduced)
    # linear_gelu is a cuBLASLt call already (no pointwise work left for Inductor to fuse).
    ops = SimpleNamespace(**{name: torch.compile(functions[name], fullgraph=True)
                             for name in _FUNCTIONS if name != 'linear_gelu'},
                          linear_gelu=_linear_gelu_epilogue, attention=attention, fused=True)

    def rope_attention_fused(q, k, v, cos, sin, mask, past=None):
        # Over the cache, RoPE inside the attention launch (one launch fewer per layer).
        if past is not None and attention_available(q):
            return fused_attention(q, k, v, mask, past, rope=(cos, sin))
        q, k = ops.rope_qk(q, k, cos, sin)
        return attention(q, k, v, mask, past)
    ops.rope_attention = rope_attention_fused
    return ops
