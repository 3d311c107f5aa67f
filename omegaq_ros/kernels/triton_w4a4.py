# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Triton W4A4 QuantLinear backend: fused rotate+quantize prologue and an int8 tensor-core GEMM.

Per call (act modes static_group, dynamic_group, dynamic_token):
  1. _quant_kernel: x -> smooth -> perm -> 64x64 block rotation (int8 block x fp16 column
     scale, dequantized in registers; fp32 IEEE dot) -> int4 codes held in int8, plus the
     per-(token, 64-group) scale where the mode computes one. Run once per input tensor for a
     group of layers that share their input (QuantLinear.shared_input).
  2. _gemm_kernel: per 64-wide K-group an exact int32 tl.dot(int8, int8) against the packed int4
     weights unpacked in registers, scaled in fp32 by act scale x weight scale (weight groups
     are weight_group/64 act groups). Tokens <= 64 swap operands (the weight fills the 64-row
     MMA side); split-K spreads small N*M over the SMs.
  3. _finish_kernel (only with split-K or rot_out): sum of the split-K partials, output block
     rotation, bias, cast.
static_channel and none cannot use the integer GEMM (per-channel scales do not factor out of
an integer dot product); they run the reference backend (torch fp32).
Triton is imported lazily so this module imports on machines without triton or CUDA.
"""

import functools
import os

import torch

ACT_BLOCK = 64
_MODE_IDS = {'static_group': 0, 'dynamic_group': 1, 'dynamic_token': 2}
INTEGER_MODES = tuple(_MODE_IDS)


def triton_available() -> bool:
    """Return True when triton imports and either CUDA or the Triton interpreter is usable."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or _interpreting()


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


@functools.lru_cache(maxsize=None)
def _kernels():
    """Import the Triton kernels on first use, so importing this module needs no triton."""
    from omegaq_ros.kernels import _triton_kernels as k
    return k.quant_kernel, k.gemm_kernel, k.finish_kernel


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    if not torch.cuda.is_available():
        return 132
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def plan(m: int, n: int, k: int, sms: int = 132) -> dict:
    """
    Choose tiles for an M x K x N W4A4 GEMM.

    Returns swap (weight as the MMA's 64-row side, for M <= 64), bm, bn, split (K splits,
    equal runs of whole 64-groups), groups_per_split, num_warps, num_stages.
    """
    groups = k // ACT_BLOCK
    if m <= 64:
        swap, bn, num_warps = True, 64, 4
        bm = max(16, triton_next_pow2(m))
    else:
        swap, bm, bn, num_warps = False, 128, 128, 8
        if n % bn:
            bn = 64
    tiles = -(-n // bn) * -(-m // bm)
    split = 1
    target = 2 * sms
    if tiles < sms:
        want = max(1, min(groups // 2, target // tiles))
        # The largest divisor of the group count not above `want`: equal runs of K-groups.
        split = max(d for d in range(1, want + 1) if groups % d == 0)
    gps = groups // split
    return {'swap': swap, 'bm': bm, 'bn': bn, 'split': split, 'gps': gps,
            'num_warps': num_warps, 'num_stages': 4 if swap else 3}


def triton_next_pow2(v: int) -> int:
    """Return the smallest power of two >= v (v >= 1)."""
    return 1 << max(0, (int(v) - 1).bit_length())


def _check_device(t: torch.Tensor):
    if not (t.is_cuda or _interpreting()):
        raise RuntimeError('the triton QuantLinear backend needs CUDA tensors '
                           '(or TRITON_INTERPRET=1 for CPU tensors)')


def quantize_input(layer, x2: torch.Tensor, table_row=None, codes_out=None):
    """
    Run the fused prologue on x2 [M, in]: int8 codes [M, in] and the scale tensor the GEMM reads.

    Returns (codes, xs, s_xs_m, s_xs_g): the act scale of (row m, group g) is
    xs[m * s_xs_m + g * s_xs_g] (a strided view of layer's table row for static_group).
    codes_out: optional int8 [M, in] buffer to write the codes into.
    """
    quant_kernel, _, _ = _kernels()
    _check_device(x2)
    mode = _MODE_IDS[layer.act_mode]
    m, k = x2.shape
    groups = k // ACT_BLOCK
    dev = x2.device
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    codes = codes_out if codes_out is not None else torch.empty(m, k, dtype=torch.int8,
                                                                device=dev)
    if mode == 0:
        srow = table_row.float().contiguous()
        xs, s_m, s_g = srow, 0, 1
    elif mode == 1:
        srow = None
        xs, s_m, s_g = torch.empty(m, groups, dtype=torch.float32, device=dev), groups, 1
    else:
        srow = None
        xs, s_m, s_g = torch.empty(m, dtype=torch.float32, device=dev), 1, 0
    dummy = codes
    owner = layer.input_owner
    perm, smooth, rot, rscale = owner.perm_in, owner.smooth, owner.rot_in, owner.rot_in_scale
    bm = 16 if m <= 16 else 32
    grid = (triton.cdiv(m, bm), 1 if mode == 2 else groups)
    quant_kernel[grid](
        x2, x2.stride(0),
        perm if perm is not None else dummy,
        smooth if smooth is not None else dummy,
        rot if rot is not None else dummy,
        rscale if rscale is not None else dummy,
        srow if srow is not None else dummy,
        codes, xs if mode != 0 else dummy, m, groups,
        MODE=mode, HAS_PERM=perm is not None, HAS_SMOOTH=smooth is not None,
        HAS_ROT=rot is not None, BM=bm, num_warps=4)
    return codes, xs, s_m, s_g


def int_matmul(codes: torch.Tensor, weight_packed: torch.Tensor) -> torch.Tensor:
    """Exact int32 product codes [M, K] int8 x unpack(weight_packed [N, K/2])^T via the GEMM."""
    _, gemm_kernel, _ = _kernels()
    _check_device(codes)
    m, k = codes.shape
    n = weight_packed.shape[0]
    p = plan(m, n, k, _sms(codes))
    out = torch.empty(p['split'], m, n, dtype=torch.int32, device=codes.device)
    grid = (triton.cdiv(n, p['bn']), triton.cdiv(m, p['bm']), p['split'])
    gemm_kernel[grid](
        codes.contiguous(), codes, 0, 0, weight_packed, codes, 0, codes, out, m * n,
        m, n, k // ACT_BLOCK, p['gps'], WG_RATIO=1, BM=p['bm'], BN=p['bn'], SWAP=p['swap'],
        FINAL=False, HAS_BIAS=False, INT_OUT=True, num_warps=p['num_warps'],
        num_stages=p['num_stages'])
    return out.sum(0, dtype=torch.int32)


def _sms(t: torch.Tensor) -> int:
    return _sm_count(t.device.index or 0) if t.is_cuda else 132


def scaled_matmul(layer, codes, xs, s_xs_m, s_xs_g, out_dtype, out=None, plan_override=None):
    """Run GEMM (+ finish) for precomputed codes: y [M, out_features] in out_dtype (or out)."""
    _, gemm_kernel, finish_kernel = _kernels()
    m, k = codes.shape
    n = layer.out_features
    dev = codes.device
    p = plan_override or plan(m, n, k, _sms(codes))
    wg_ratio = layer.weight_group // ACT_BLOCK
    bias, rot, rscale = layer.bias, layer.rot_out, layer.rot_out_scale
    final = p['split'] == 1 and rot is None
    y = out if out is not None else torch.empty(m, n, dtype=out_dtype, device=dev)
    part = y if final else torch.empty(p['split'], m, n, dtype=torch.float32, device=dev)
    grid = (triton.cdiv(n, p['bn']), triton.cdiv(m, p['bm']), p['split'])
    ws = layer.weight_scale
    gemm_kernel[grid](
        codes, xs, s_xs_m, s_xs_g, layer.weight_packed, ws, ws.stride(0),
        bias if bias is not None else ws, part, m * n, m, n, k // ACT_BLOCK, p['gps'],
        WG_RATIO=wg_ratio, BM=p['bm'], BN=p['bn'], SWAP=p['swap'], FINAL=final,
        HAS_BIAS=bias is not None, INT_OUT=False, num_warps=p['num_warps'],
        num_stages=p['num_stages'])
    if not final:
        bm = 16 if m <= 16 else 32
        finish_kernel[(triton.cdiv(m, bm), n // ACT_BLOCK)](
            part, m * n, p['split'], rot if rot is not None else part,
            rscale if rscale is not None else part, bias if bias is not None else part, y, m, n,
            HAS_ROT=rot is not None, HAS_BIAS=bias is not None, BM=bm, num_warps=4)
    return y


def triton_forward(layer, x: torch.Tensor) -> torch.Tensor:
    """Run QuantLinear forward through the Triton kernels (static_channel, none: reference)."""
    from omegaq_ros.quant.linear import reference_forward
    if layer.act_mode not in _MODE_IDS:
        return reference_forward(layer, x)
    _check_layer(layer)
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    table_row = layer.table_row() if layer.act_mode == 'static_group' else None
    codes, xs, s_m, s_g = layer.shared_input(
        x, lambda _: quantize_input(layer, x2, table_row))
    out_dtype = x.dtype if x.dtype in (torch.float32, torch.float16, torch.bfloat16) \
        else torch.float32
    y = scaled_matmul(layer, codes, xs, s_m, s_g, out_dtype)
    return y.reshape(*shape[:-1], layer.out_features).to(x.dtype)


def _check_layer(layer):
    if layer.in_features % ACT_BLOCK or layer.out_features % ACT_BLOCK:
        raise ValueError(f"triton backend: layer '{layer.name}' needs in/out features "
                         f'divisible by {ACT_BLOCK}, got {layer.in_features}x'
                         f'{layer.out_features}')
    if layer.weight_group % ACT_BLOCK:
        raise ValueError(f"triton backend: layer '{layer.name}' weight_group "
                         f'{layer.weight_group} is not a multiple of {ACT_BLOCK}')
    owner = layer.input_owner
    stored = {'weight_scale': (layer, torch.float16), 'bias': (layer, torch.float32),
              'rot_out': (layer, torch.int8), 'rot_out_scale': (layer, torch.float16),
              'smooth': (owner, torch.float32), 'perm_in': (owner, torch.int32),
              'rot_in': (owner, torch.int8), 'rot_in_scale': (owner, torch.float16),
              'act_scale': (owner, torch.float16)}
    for name, (holder, dtype) in stored.items():
        t = getattr(holder, name)
        if t is not None and (t.dtype != dtype or not t.is_contiguous()):
            raise ValueError(f"triton backend: layer '{holder.name}' buffer {name} must be "
                             f'contiguous {dtype}, got {t.dtype}')


class _LazyTriton:
    """Module proxy so `triton.cdiv` resolves only when a kernel is launched."""

    def __getattr__(self, item):
        import triton as _triton
        return getattr(_triton, item)


triton = _LazyTriton()
