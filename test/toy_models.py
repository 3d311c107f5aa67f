# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Small models with the structure the quantizer must handle (built here, for tests)."""

from omegaq_ros.quant import denoising_step
import torch
from torch import nn


class ToyDenoiser(nn.Module):
    """
    A prefix MLP run once, then a head run for `steps` denoising steps.

    The head's input scale drifts strongly with the step (as flow-matching action heads'
    activations do), which is what per-step activation tables exist for.
    """

    def __init__(self, width=128, steps=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.steps = steps
        self.prefix = nn.Sequential(nn.Linear(width, 256), nn.GELU(), nn.Linear(256, width))
        self.head_in = nn.Linear(width, 256)
        self.head_out = nn.Linear(256, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map x [B, T, width] to [B, T, width]."""
        context = self.prefix(x)
        h = torch.zeros_like(x)
        for step in range(self.steps):
            with denoising_step(step, self.steps):
                scale = 0.05 * 8.0 ** step
                h = h + self.head_out(torch.relu(self.head_in(scale * (context + h)))) / scale
        return h


def toy_batches(count=6, width=128, seed=1):
    """Calibration inputs with a few strong channels, like real activations."""
    gen = torch.Generator().manual_seed(seed)
    gains = torch.ones(width)
    gains[[5, 77]] = 12.0
    return [(torch.randn(2, 16, width, generator=gen) * gains,) for _ in range(count)]
