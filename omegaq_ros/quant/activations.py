# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
4-bit round-to-nearest activation quantizers and their calibration.

Modes (codes in [-8, 7], x_hat = code * scale):
  static_channel  table [T, in]: one scale per (denoising step, input channel). Paper-faithful,
                  but a per-input-channel scale cannot be factored out of an integer GEMM.
  static_group    table [T, in/64]: one scale per (step, 64-channel group); integer-GEMM
                  compatible (each 64-wide K-group's int32 partial sum is scaled once).
  dynamic_group   no table: scale = max|x| / 7 per (token, 64-channel group) at run time.
  dynamic_group128
                  no table: scale = max|x| / 7 per (token, 128-channel group), given per
                  64-group (both halves of a 128-group share it). cuBLAS's FP8 GEMMs take
                  one float scale per 128-group of K on both operands (1x128 blocks), and
                  the weights' scales are per 128-group already.
  dynamic_token   no table: scale = max|x| / 7 per token (the naive W4A4 baseline).
  dynamic_two_level
                  no table: per 64-group the token's scale times m / SUBSCALES, m the
                  smallest of 1..SUBSCALES that holds the group's absmax / 7 (two-level
                  scales: a float per token, a 4-bit integer per group). A group's step is
                  under m / (m - 1) times its own absmax / 7 (the largest group's is
                  exactly that), and the kernels keep one scale per token, token /
                  SUBSCALES: code * m fits an int8 operand, so the GEMM rescales per weight
                  group, not per 64-group.
  none            activations stay in floating point (W4A16).
T is the number of denoising steps for layers calibrated inside the step context, or 1.
Static scales are percentile(|x|, 99.9) / 7 over calibration tokens (or, with the recipe's
act_clip: mse, the least-squared-error clip per channel or group), floored at 2^-14 (the
smallest normal fp16: tables are stored in fp16); dynamic scales are floored at 1e-8.
"""

from omegaq_ros.quant.packing import FP16_MIN_NORMAL, fp16_scale, INT4_MAX, INT4_MIN
import torch

ACT_MODES = ('none', 'static_channel', 'static_group', 'dynamic_group', 'dynamic_group128',
             'dynamic_token', 'dynamic_two_level')
# Modes with a calibrated table (one row per denoising step where per_step).
STATIC_MODES = ('static_channel', 'static_group')
ACT_GROUP = 64
# dynamic_group128's group: the K-block of cuBLAS's 1x128 block-scaled FP8 GEMMs.
WIDE_ACT_GROUP = 128
# Floor of run-time (dynamic) scales, so an all-zero group quantizes to zeros (the GPU
# kernels use the same value).
DYNAMIC_MIN_SCALE = 1e-8
# dynamic_two_level: a group's scale is m / SUBSCALES of its token's, m in 1..SUBSCALES
# (7 * 16 = 112 still fits the int8 operand the kernels multiply).
SUBSCALES = 16


def table_width(mode: str, in_features: int) -> int:
    """Return the width of a mode's activation table row (0: the mode has no table)."""
    return {'static_channel': in_features, 'static_group': in_features // ACT_GROUP}.get(mode, 0)


def quantize_activations(x: torch.Tensor, mode: str, table_row=None, group: int = ACT_GROUP):
    """
    Split x [..., in] into (codes [..., in] float, scale [..., G]) with G = in/group.

    The scale is per 64-channel group for every mode except static_channel, whose scale is
    per channel ([in]); callers broadcast it. For `none` returns (x, None).
    """
    if mode == 'none':
        return x, None
    if mode == 'static_channel':
        scale = table_row
    elif mode == 'static_group':
        scale = table_row.expand(*x.shape[:-1], table_row.shape[-1])
    elif mode == 'dynamic_group':
        grouped = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
        scale = (grouped.abs().amax(-1) / INT4_MAX).clamp_min(DYNAMIC_MIN_SCALE)
    elif mode == 'dynamic_group128':
        if x.shape[-1] % WIDE_ACT_GROUP:
            raise ValueError(f'dynamic_group128 needs a multiple of {WIDE_ACT_GROUP} input '
                             f'features, got {x.shape[-1]}')
        wide = x.reshape(*x.shape[:-1], x.shape[-1] // WIDE_ACT_GROUP, WIDE_ACT_GROUP)
        scale = (wide.abs().amax(-1) / INT4_MAX).clamp_min(DYNAMIC_MIN_SCALE)
        scale = scale.repeat_interleave(WIDE_ACT_GROUP // group, dim=-1)
    elif mode == 'dynamic_token':
        token = (x.abs().amax(-1, keepdim=True) / INT4_MAX).clamp_min(DYNAMIC_MIN_SCALE)
        scale = token.expand(*x.shape[:-1], x.shape[-1] // group)
    elif mode == 'dynamic_two_level':
        token = (x.abs().amax(-1, keepdim=True) / INT4_MAX).clamp_min(DYNAMIC_MIN_SCALE)
        grouped = x.reshape(*x.shape[:-1], x.shape[-1] // group, group)
        subscales = group_subscales(token, grouped.abs().amax(-1) / INT4_MAX)
        scale = token * subscales * (1 / SUBSCALES)
    else:
        raise ValueError(f"activation mode must be one of {'|'.join(ACT_MODES)}, got '{mode}'")
    per_channel = scale if mode == 'static_channel' else scale.repeat_interleave(group, dim=-1)
    codes = torch.clamp(torch.round(x / per_channel), INT4_MIN, INT4_MAX)
    return codes, scale


def group_subscales(token: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """
    Return m per group (float), the smallest of 1..SUBSCALES with token * m / SUBSCALES >= wanted.

    token [..., 1], wanted [..., G] (each group's absmax / 7). Counted by comparisons of
    rounded products, as the quantize kernel counts them, so both pick the same m.
    """
    return 1 + sum((token * (i / SUBSCALES) < wanted).float() for i in range(1, SUBSCALES))


ACT_CLIPS = ('percentile', 'mse')


def scales_from_samples(abs_samples: torch.Tensor, mode: str, percentile: float,
                        group: int = ACT_GROUP, clip: str = 'percentile') -> torch.Tensor:
    """
    One table row from |x| samples [tokens, in] of one step: [in] or [in/group].

    clip 'percentile': the percentile of |x| per channel (the group's largest for
    static_group) over 7. clip 'mse': per channel or group, the clip in [1e-3, 1] x max|x|
    (log grid) whose 4-bit rounding of the samples has the least squared error.
    """
    if clip == 'mse':
        return _mse_scales(abs_samples, group if mode == 'static_group' else 1)
    if clip != 'percentile':
        raise ValueError(f"activation clip must be one of {'|'.join(ACT_CLIPS)}, got '{clip}'")
    # Nearest-rank percentile via kthvalue: torch.quantile refuses inputs over 2^24 elements.
    n = abs_samples.shape[0]
    k = min(n, max(1, int(round(percentile / 100.0 * (n - 1))) + 1))
    q = abs_samples.float().kthvalue(k, dim=0).values
    if mode == 'static_group':
        q = q.reshape(-1, group).amax(-1)
    return fp16_scale(q / INT4_MAX)


def _mse_scales(abs_samples: torch.Tensor, width: int, steps: int = 48) -> torch.Tensor:
    """Per unit of `width` channels: the scale (from a grid of clips) of least rounding error."""
    a = abs_samples.float()
    a = a.reshape(a.shape[0], -1, width)                               # [tokens, units, width]
    top = a.amax(dim=(0, 2))
    best_scale = (top / INT4_MAX).clamp_min(FP16_MIN_NORMAL)
    best_error = torch.full_like(top, float('inf'))
    # Clips from max / 1000 to max on a log grid: heavy tails put the best clip far below max.
    for fraction in torch.logspace(-3, 0, steps).tolist():
        scale = fp16_scale(top * fraction / INT4_MAX).float()
        rounded = torch.clamp(torch.round(a / scale[None, :, None]), 0, INT4_MAX) * \
            scale[None, :, None]
        error = (a - rounded).square().sum(dim=(0, 2))
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        best_scale = torch.where(better, scale, best_scale)
    return fp16_scale(best_scale)
