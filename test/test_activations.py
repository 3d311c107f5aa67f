# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Static activation tables: percentile and least-squared-error clipping."""

from omegaq_ros.quant import Recipe
from omegaq_ros.quant.activations import quantize_activations, scales_from_samples
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
