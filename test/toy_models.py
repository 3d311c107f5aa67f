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


class ToySharedInputs(nn.Module):
    """Attention and a gated MLP: q/k/v read one tensor, gate/up another (Gemma's layout)."""

    def __init__(self, width=128, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.q_proj = nn.Linear(width, 256, bias=False)
        self.k_proj = nn.Linear(width, 64, bias=False)
        self.v_proj = nn.Linear(width, 64, bias=False)
        self.o_proj = nn.Linear(256, width, bias=False)
        self.gate_proj = nn.Linear(width, 256, bias=False)
        self.up_proj = nn.Linear(width, 256, bias=False)
        self.down_proj = nn.Linear(256, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One pre-norm block on x [B, T, width] (single-head attention over T)."""
        h = nn.functional.rms_norm(x, x.shape[-1:])
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        scores = q[..., :64] @ k.transpose(-1, -2) / 8.0
        attended = torch.softmax(scores, -1) @ v
        x = x + self.o_proj(attended.repeat(1, 1, 4) + 0.1 * q)
        h = nn.functional.rms_norm(x, x.shape[-1:])
        return x + self.down_proj(nn.functional.gelu(self.gate_proj(h)) * self.up_proj(h))
