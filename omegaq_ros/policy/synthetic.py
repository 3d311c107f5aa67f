# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Random-weight pi0.5 models and random observations, for benchmarks at any size."""

from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
import torch


def random_model(config: Pi05Config, seed: int = 0) -> Pi05Model:
    """Pi0.5 with random weights scaled like trained ones (unit-variance activations)."""
    torch.manual_seed(seed)
    model = Pi05Model(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and 'embed' not in name:
                parameter.normal_(std=parameter.shape[1] ** -0.5)
    return model


def random_inputs(config: Pi05Config, device='cpu', seed: int = 0, prompt: int = 48) -> dict:
    """One model call: images in [-1, 1] per camera, a `prompt`-token prompt, noise."""
    gen = torch.Generator().manual_seed(seed)
    size = config.vision.image_size
    return {
        'images': [(torch.rand(1, 3, size, size, generator=gen) * 2 - 1).to(device)
                   for _ in config.cameras],
        'image_masks': [torch.ones(1, dtype=torch.bool, device=device)
                        for _ in config.cameras],
        'tokens': torch.randint(0, 1000, (1, prompt), generator=gen).to(device),
        'token_masks': torch.ones(1, prompt, dtype=torch.bool, device=device),
        'noise': torch.randn(1, config.horizon, config.max_action_dim, generator=gen).to(device),
    }
