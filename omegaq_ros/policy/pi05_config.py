# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
pi0.5 configuration: every hyper-parameter with its default in one place.

Full size follows openpi (`gemma.py: get_config`, `pi0_config.py`) and LeRobot's `pi05`:
SigLIP So400m/14 at 224 px, Gemma-2B language backbone, Gemma-300M action expert.
`Pi05Config.small()` is the same architecture at a size that trains and runs on a CPU.
"""

from dataclasses import dataclass, field, replace
from typing import ClassVar, Dict

from omegaq_ros.policy.model_config import DEFAULT_CAMERAS, ModelConfig, VisionSize


@dataclass(frozen=True)
class GemmaSize:
    """One Gemma tower (see openpi gemma.py: Config)."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


GEMMA_2B = GemmaSize(width=2048, depth=18, mlp_dim=16384, num_heads=8, num_kv_heads=1,
                     head_dim=256)
GEMMA_300M = GemmaSize(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1,
                       head_dim=256)


@dataclass(frozen=True)
class Pi05Config(ModelConfig):
    """All of pi0.5's shapes and constants."""

    FAMILY: ClassVar[str] = 'pi05'
    NESTED: ClassVar[Dict[str, type]] = {'vision': VisionSize, 'language': GemmaSize,
                                         'expert': GemmaSize}

    vision: VisionSize = field(default_factory=VisionSize)
    language: GemmaSize = GEMMA_2B
    expert: GemmaSize = GEMMA_300M
    vocab_size: int = 257152
    max_action_dim: int = 32
    max_state_dim: int = 32
    action_dim: int = 14                  # the robot's actions: the first action_dim of 32
    state_dim: int = 14
    horizon: int = 50                     # chunk_size
    num_steps: int = 10                   # Euler steps from t=1 (noise) to t=0
    min_period: float = 4e-3
    max_period: float = 4.0
    tokenizer_max_length: int = 200
    cameras: tuple = DEFAULT_CAMERAS
    rms_norm_eps: float = 1e-6
    layer_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    def __post_init__(self):
        """Check what the joint attention and the shapes require."""
        if (self.language.num_heads, self.language.num_kv_heads, self.language.head_dim) != (
                self.expert.num_heads, self.expert.num_kv_heads, self.expert.head_dim):
            raise ValueError('the language model and the expert must share num_heads, '
                             'num_kv_heads and head_dim (they attend jointly)')
        if self.language.depth != self.expert.depth:
            raise ValueError(f'language depth {self.language.depth} != expert depth '
                             f"{self.expert.depth}: the expert attends to every layer's K/V")
        self.check_shapes()

    @staticmethod
    def pi05(**overrides) -> 'Pi05Config':
        """Full-size pi0.5 (3.354 B parameters used)."""
        return replace(Pi05Config(), **overrides)

    @staticmethod
    def small(**overrides) -> 'Pi05Config':
        """Return the same architecture at CPU size (the bundled policy and the tests)."""
        base = Pi05Config(
            vision=VisionSize(width=192, depth=4, mlp_dim=384, num_heads=4, patch_size=16,
                              image_size=96),
            language=GemmaSize(width=256, depth=4, mlp_dim=1024, num_heads=4, num_kv_heads=1,
                               head_dim=64),
            expert=GemmaSize(width=128, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1,
                             head_dim=64),
            vocab_size=1024, horizon=20, num_steps=10, tokenizer_max_length=96)
        return replace(base, **overrides)
