# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Symmetric int4 weight quantization with group scales: MSE-searched RTN and GPTQ.

Format: codes q in [-8, 7], one fp16 scale per (output row, group of `group` input columns);
w_hat = q * scale. The scale of a group is alpha * max|w| / 7, rounded to fp16 (the stored
precision, so codes are chosen for the scale the kernels read), with alpha chosen from a grid
to minimize the group's squared reconstruction error (a clip search).

Two-level scales (scale_units): each output row has a unit u (fp16 with at most 7 significant
bits) and each group's scale is an integer multiple m * u, m in 1..WEIGHT_MULTIPLES, chosen the
same way among those 16 values. The stored group scales are then exactly m * u (fp16 holds the
product), so every reader of the group scales gets the same weights; a GEMM can instead scale
the codes by m in the integer domain (|q m| <= 128 fits int8) and sum a row's products over all
of K before one float rescale by u (QServe's progressive group scales, Lin et al. 2024).
"""

import math

from omegaq_ros.quant.packing import FP16_MIN_NORMAL, fp16_scale, INT4_MAX, INT4_MIN
import torch

CLIP_GRID = tuple(1.0 - 0.025 * i for i in range(21))   # alpha from 1.0 down to 0.5
# Two-level scales: a group's scale is m * unit with m in 1..WEIGHT_MULTIPLES (q * m in int8).
WEIGHT_MULTIPLES = 16
# Significant bits of a unit: m * unit (m <= 16) then has at most 11, exact in fp16.
_UNIT_BITS = 7


def quantize_codes(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Round to nearest int4 code for the given broadcastable scale."""
    return torch.clamp(torch.round(w / scale), INT4_MIN, INT4_MAX)


def storable_scale(scale: torch.Tensor) -> torch.Tensor:
    """Round scales to the fp16 values they are stored as (same dtype as the input)."""
    return fp16_scale(scale).to(scale.dtype)


def mse_scales(w: torch.Tensor, grid=CLIP_GRID, unit=None, multiples=None) -> torch.Tensor:
    """
    Per-row symmetric scale for w [rows, cols] that minimizes sum (w - q*s)^2 over the grid.

    unit [rows, 1] (two-level scales): the candidates are m * unit, m in multiples (default
    1..WEIGHT_MULTIPLES), instead of the clip grid.
    """
    absmax = w.abs().amax(dim=1, keepdim=True)
    if unit is None:
        candidates = [storable_scale(alpha * absmax / INT4_MAX) for alpha in grid]
    else:
        candidates = [m * unit.to(w.dtype)
                      for m in multiples or range(1, WEIGHT_MULTIPLES + 1)]
    best_scale = candidates[0]
    best_err = torch.full_like(best_scale, math.inf)
    for scale in candidates:
        err = (w - quantize_codes(w, scale) * scale).pow(2).sum(dim=1, keepdim=True)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
    return best_scale


def scale_units(weight: torch.Tensor, group: int = 128) -> torch.Tensor:
    """
    Per-row units of two-level scales for weight [out, in]: fp32 [out], exact fp16 values.

    A row's unit is its largest MSE group scale / WEIGHT_MULTIPLES, rounded up to _UNIT_BITS
    significant bits (so that group can still take m = 16) and to the normal fp16 range.
    """
    out_features, in_features = weight.shape
    _check_group(in_features, group)
    w = weight.detach().float().reshape(out_features * (in_features // group), group)
    top = mse_scales(w).float().reshape(out_features, -1).amax(dim=1) / WEIGHT_MULTIPLES
    mantissa, exponent = torch.frexp(top)
    step = 2.0 ** _UNIT_BITS
    unit = torch.ldexp(torch.ceil(mantissa * step) / step, exponent)
    # Below 2^11, m * unit stays under fp16's largest value.
    return unit.clamp(FP16_MIN_NORMAL, 2.0 ** 11)


def scale_multiples(scale: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """
    Return the multiples m = scale / unit (int [out, groups]) of two-level group scales.

    Raises ValueError unless every group scale is exactly m * unit with m in 1..16.
    """
    ratio = scale.float() / unit.float().reshape(-1, 1)
    multiples = ratio.round()
    if not (torch.equal(multiples * unit.float().reshape(-1, 1), scale.float())
            and bool(((multiples >= 1) & (multiples <= WEIGHT_MULTIPLES)).all())):
        raise ValueError('group scales are not multiples 1..'
                         f'{WEIGHT_MULTIPLES} of their row units')
    return multiples.to(torch.int32)


def _row_units(unit, rows: int, group_count: int):
    # unit [out] -> [out * groups, 1], one per reshaped group row (None stays None).
    if unit is None:
        return None
    return unit.float().repeat_interleave(group_count).reshape(rows, 1)


def _check_group(in_features: int, group: int):
    if in_features % group:
        raise ValueError(f'in_features {in_features} is not a multiple of the weight group '
                         f'{group}')


def rtn_quantize(weight: torch.Tensor, group: int = 128, unit=None):
    """
    Round to nearest with per-group MSE scales (multiples of unit [out] where given).

    Returns (codes int8 [out, in], scales fp16 [out, in/group]).
    """
    out_features, in_features = weight.shape
    _check_group(in_features, group)
    groups = in_features // group
    w = weight.detach().float().reshape(out_features * groups, group)
    scales = mse_scales(w, unit=_row_units(unit, out_features * groups, groups))
    codes = quantize_codes(w, scales)
    return (codes.reshape(out_features, in_features).to(torch.int8),
            scales.reshape(out_features, in_features // group).half())


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, group: int = 128,
                  damp: float = 0.01, block: int = 128, act_order: bool = False, unit=None):
    """
    GPTQ (Frantar et al. 2022; see IST-DASLab/gptq gptq.py fasterquant) with int4 groups.

    hessian is H = 2/n sum x x^T over calibration inputs, taken in the same (rotated) basis as
    `weight`. Columns are quantized one at a time; each column's error, scaled by the upper
    Cholesky factor of H^-1, is propagated to the columns not yet quantized: inside a block of
    `block` columns immediately, and to all later blocks in one matrix product when the block
    ends (the error does cross block boundaries). A group's scale is searched (MSE clip grid)
    on the error-updated weights when the first column of the group is reached. With
    act_order the columns are visited by decreasing H diagonal, and the group scales are fixed
    beforehand from the original weights so groups stay contiguous in the stored layout.
    unit [out]: two-level scales, every group scale a multiple of its row's unit.
    Returns (codes int8 [out, in], scales fp16 [out, in/group]).
    """
    out_features, in_features = weight.shape
    _check_group(in_features, group)
    if block % group:
        raise ValueError(f'GPTQ block {block} must be a multiple of the weight group {group}')
    w = weight.detach().double().clone()
    h = hessian.detach().double().clone()
    if h.shape != (in_features, in_features):
        raise ValueError(f'hessian must be [{in_features}, {in_features}], got {tuple(h.shape)}')

    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0

    scales = torch.zeros(out_features, in_features // group, dtype=torch.float64,
                         device=w.device)
    unit = None if unit is None else unit.to(device=w.device, dtype=w.dtype).reshape(-1, 1)
    if act_order:
        for g in range(in_features // group):
            scales[:, g:g + 1] = mse_scales(w[:, g * group:(g + 1) * group], unit=unit)
        order = torch.argsort(torch.diag(h), descending=True)
    else:
        order = torch.arange(in_features, device=w.device)
    w = w[:, order]
    h = h[order][:, order]

    h += damp * torch.mean(torch.diag(h)) * torch.eye(in_features, dtype=torch.float64,
                                                      device=h.device)
    h_inv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    h_inv = torch.linalg.cholesky(h_inv, upper=True)

    codes = torch.zeros_like(w)
    order_host = order.tolist()
    for start in range(0, in_features, block):
        end = min(start + block, in_features)
        w_block = w[:, start:end].clone()
        err_block = torch.zeros_like(w_block)
        h_inv_block = h_inv[start:end, start:end]
        for i in range(end - start):
            column = start + i
            original = order_host[column]
            g = original // group
            if not act_order and original % group == 0:
                group_end = min(i + group, end - start)
                # Groups align with blocks when block % group == 0, so the whole group is here.
                scales[:, g:g + 1] = mse_scales(w_block[:, i:group_end], unit=unit)
            scale = scales[:, g]
            q = quantize_codes(w_block[:, i], scale)
            codes[:, column] = q
            err = (w_block[:, i] - q * scale) / h_inv_block[i, i]
            w_block[:, i:] -= err.unsqueeze(1) * h_inv_block[i, i:].unsqueeze(0)
            err_block[:, i] = err
        w[:, end:] -= err_block @ h_inv[start:end, end:]

    inverse = torch.argsort(order)
    return codes[:, inverse].to(torch.int8), scales.half()
