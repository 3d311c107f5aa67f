# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 configuration: every hyper-parameter with its default in one place.

Defaults are the released N1.5 checkpoint (`nvidia/GR00T-N1.5-3B` config.json, Isaac-GR00T's
`gr00t/model/gr00t_n1.py`, LeRobot 0.4.4's `policies/groot/`): Eagle 2.5 backbone (SigLIP
So400m/14 at 224 px, one Linear `mlp1`, Qwen3-1.7B cut to its first `select_layer` layers),
the flow-matching action head (vlln + 4-layer VL self-attention, 16-block DiT of width 1536,
embodiment-specific MLPs), 4 Euler steps.
"""

from dataclasses import dataclass, field, replace
from typing import ClassVar, Dict

from omegaq_ros.policy.model_config import ModelConfig, VisionSize


@dataclass(frozen=True)
class Qwen3Size:
    """The kept part of the Qwen3 language model (depth = select_layer)."""

    width: int = 2048
    depth: int = 12
    mlp_dim: int = 6144
    num_heads: int = 16
    num_kv_heads: int = 8
    head_dim: int = 128
    vocab_size: int = 151680
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6


@dataclass(frozen=True)
class DiTSize:
    """The action head's transformer (diffusion_model_cfg) or its VL self-attention."""

    depth: int = 16
    num_heads: int = 32
    head_dim: int = 48
    # The DiT's output width (its proj_out_2) and the decoder's input.
    output_dim: int = 1024

    @property
    def width(self) -> int:
        """Inner width num_heads * head_dim."""
        return self.num_heads * self.head_dim


@dataclass(frozen=True)
class GrootConfig(ModelConfig):
    """All of GR00T N1.5's shapes and constants."""

    FAMILY: ClassVar[str] = 'groot'
    NESTED: ClassVar[Dict[str, type]] = {'vision': VisionSize, 'language': Qwen3Size,
                                         'dit': DiTSize, 'vl_self_attention': DiTSize}

    vision: VisionSize = field(default_factory=VisionSize)
    language: Qwen3Size = field(default_factory=Qwen3Size)
    dit: DiTSize = field(default_factory=DiTSize)
    vl_self_attention: DiTSize = field(
        default_factory=lambda: DiTSize(depth=4, num_heads=32, head_dim=64, output_dim=0))
    # Rows of a sinusoidal table added in the VL self-attention (diffusers'
    # SinusoidalPositionalEmbedding, its default 512); the released configs set
    # positional_embeddings null (0 here), as they must with 2+ cameras (>512 VL tokens).
    vl_max_positions: int = 0
    image_token_index: int = 151669
    tokens_per_image: int = 256
    hidden_size: int = 1024               # the embodiment MLPs' hidden width
    input_embedding_dim: int = 1536       # DiT token width
    max_state_dim: int = 64
    max_action_dim: int = 32
    action_dim: int = 14                  # the robot's actions: the first action_dim of 32
    state_dim: int = 14
    horizon: int = 16                     # action_horizon
    num_steps: int = 4                    # Euler steps from t=0 (noise) to t=1
    num_timestep_buckets: int = 1000
    num_future_tokens: int = 32           # num_target_vision_tokens
    max_seq_len: int = 1024               # rows of the action position embedding
    max_num_embodiments: int = 32
    embodiment: str = 'new_embodiment'
    embodiment_id: int = 31
    use_vlln: bool = True
    cameras: tuple = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
    layer_norm_eps: float = 1e-6          # SigLIP

    def __post_init__(self):
        """Check what the shapes require."""
        if self.dit.width != self.input_embedding_dim:
            raise ValueError(f'DiT width {self.dit.width} != input_embedding_dim '
                             f'{self.input_embedding_dim}')
        if self.use_vlln and self.vl_self_attention.width != self.language.width:
            raise ValueError(f'VL self-attention width {self.vl_self_attention.width} != '
                             f'language width {self.language.width}')
        if self.dit.output_dim != self.hidden_size:
            raise ValueError(f'DiT output_dim {self.dit.output_dim} != hidden_size '
                             f'{self.hidden_size} (the action decoder reads it)')
        self.check_shapes()
        if not 0 <= self.embodiment_id < self.max_num_embodiments:
            raise ValueError(f'embodiment_id {self.embodiment_id} outside '
                             f'0..{self.max_num_embodiments - 1}')
        patches = (self.vision.image_size // self.vision.patch_size) ** 2
        if patches != self.tokens_per_image:
            raise ValueError(f'{patches} patches per image != tokens_per_image '
                             f'{self.tokens_per_image} (N1.5 uses no pixel shuffle)')

    @staticmethod
    def n1_5(**overrides) -> 'GrootConfig':
        """Full-size GR00T N1.5 (2.40 B parameters with one embodiment slice used)."""
        return replace(GrootConfig(), **overrides)

    @staticmethod
    def small(**overrides) -> 'GrootConfig':
        """Return the same architecture at CPU size (tests, the bundled policy)."""
        base = GrootConfig(
            vision=VisionSize(width=192, depth=2, mlp_dim=384, num_heads=4, patch_size=16,
                              image_size=96),
            language=Qwen3Size(width=256, depth=2, mlp_dim=512, num_heads=4, num_kv_heads=2,
                               head_dim=64, vocab_size=1024),
            dit=DiTSize(depth=4, num_heads=4, head_dim=32, output_dim=128),
            vl_self_attention=DiTSize(depth=2, num_heads=4, head_dim=64, output_dim=0),
            image_token_index=1000, tokens_per_image=36, hidden_size=128,
            input_embedding_dim=128, max_num_embodiments=32)
        return replace(base, **overrides)
