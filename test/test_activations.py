# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Activation scales: static tables (percentile and least-squared-error clipping), two-level."""

from omegaq_ros.quant import Recipe
from omegaq_ros.quant.activations import quantize_activations, scales_from_samples, SUBSCALES
import pytest
import torch


def _rounding_error(x, mode, row):
    codes, scale = quantize_activations(x, mode, row.float())
    per_channel = scale if mode == 'static_channel' else scale.repeat_interleave(64, dim=-1)
    return (codes * per_channel - x).square().sum().item()


@pytest.mark.parametrize('mode', ['static_group', 'static_channel'])
def test_mse_clip_rounds_heavy_tailed_samples_better_than_the_percentile(mode):
    """Rotated activations are heavy-tailed: clipping the rare large ones pays off in MSE."""
    torch.manual_seed(0)
    x = torch.distributions.StudentT(3.0).sample((4096, 256)) * (torch.rand(256) + 0.1)
    percentile = scales_from_samples(x.abs(), mode, 99.9)
    mse = scales_from_samples(x.abs(), mode, 99.9, clip='mse')
    assert mse.shape == percentile.shape == ((4,) if mode == 'static_group' else (256,))
    assert mse.dtype == torch.float16 and bool((mse > 0).all())
    assert _rounding_error(x, mode, mse) < 0.9 * _rounding_error(x, mode, percentile)


def test_mse_clip_keeps_the_full_range_when_nothing_is_an_outlier():
    """Uniform samples have no tail: the least-error clip is (nearly) their maximum."""
    x = torch.rand(4096, 128) * 3.5
    mse = scales_from_samples(x, 'static_group', 99.9, clip='mse').float()
    assert torch.allclose(mse * 7, torch.full((2,), 3.5), rtol=0.15)


def test_unknown_clip_is_refused():
    with pytest.raises(ValueError, match='activation clip'):
        scales_from_samples(torch.rand(10, 64), 'static_group', 99.9, clip='max')
    with pytest.raises(ValueError, match="'act_clip'"):
        Recipe.preset('omega-group', act_clip='max')


def test_two_level_scales_sit_between_the_group_and_the_token_scales():
    """
    dynamic_two_level: each group's step is m / SUBSCALES of its token's, the least that fits.

    Groups 1, 1/2, 1/4 ... of the token's largest: the largest keeps the token's scale, the
    others the smallest sixteenth of it that holds them; the rounding error lies between one
    scale per 64-group and one per token, nearer the first.
    """
    torch.manual_seed(1)
    spread = (2.0 ** -torch.arange(8, dtype=torch.float32)).repeat_interleave(64)
    x = torch.randn(32, 512) * spread
    codes, scale = quantize_activations(x, 'dynamic_two_level')
    _, group = quantize_activations(x, 'dynamic_group')
    _, token = quantize_activations(x, 'dynamic_token')
    m = scale * SUBSCALES / token
    assert torch.allclose(m, m.round(), rtol=0, atol=1e-5)
    m = m.round()
    assert int(m.min()) == 1 and int(m.max()) == SUBSCALES
    assert bool((scale >= group).all())
    assert bool((scale < group * m / (m - 1))[m > 1].all())
    assert int(codes.abs().max()) <= 7
    errors = [(c * s.repeat_interleave(64, dim=-1) - x).square().sum().item()
              for c, s in (quantize_activations(x, mode) for mode in
                           ('dynamic_group', 'dynamic_two_level', 'dynamic_token'))]
    assert errors[0] < errors[1] < errors[2]
    assert errors[1] - errors[0] < 0.2 * (errors[2] - errors[0])


def test_wide_group_scales_hold_each_128_channels_and_are_given_per_64_group():
    """
    dynamic_group128: one scale per (token, 128 channels), both 64-halves carry it.

    A half holding the smaller values rounds on its partner's coarser step, so the error
    lies between one scale per 64-group and one per token; every code stays in int4.
    """
    torch.manual_seed(2)
    spread = (2.0 ** -torch.arange(8, dtype=torch.float32)).repeat_interleave(64)
    x = torch.randn(32, 512) * spread
    codes, scale = quantize_activations(x, 'dynamic_group128')
    assert scale.shape == (32, 8)
    assert torch.equal(scale[:, 0::2], scale[:, 1::2])
    wide = x.reshape(32, 4, 128).abs().amax(-1) / 7
    assert torch.equal(scale[:, 0::2], wide)
    assert int(codes.abs().max()) <= 7 and torch.equal(codes, codes.round())
    errors = [(c * s.repeat_interleave(64, dim=-1) - x).square().sum().item()
              for c, s in (quantize_activations(x, mode) for mode in
                           ('dynamic_group', 'dynamic_group128', 'dynamic_token'))]
    assert errors[0] < errors[1] < errors[2]
    with pytest.raises(ValueError, match='multiple of 128'):
        quantize_activations(torch.randn(4, 192), 'dynamic_group128')
