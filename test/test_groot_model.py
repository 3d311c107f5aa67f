# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""GR00T N1.5 model facts: full-size parameter counts (models.md 1.3), steps, config checks."""

from omegaq_ros.policy.groot_config import DiTSize, GrootConfig
from omegaq_ros.policy.groot_model import GrootModel
import pytest
import torch


def test_full_size_parameter_counts_match_the_reference():
    with torch.device('meta'):
        model = GrootModel(GrootConfig.n1_5())
    counts = model.parameter_counts()
    # Counted by instantiating LeRobot 0.4.4's action head and Eagle's parts (models.md 1.3).
    assert counts['action_head'] == 1_068_806_144
    assert (counts['dit'], counts['action_encoder'], counts['vl_self_attention'],
            counts['state_encoder'], counts['action_decoder'], counts['position_embedding'],
            counts['future_tokens'], counts['vlln']) == (
        550_386_688, 228_212_736, 201_433_088, 52_510_720, 34_636_800, 1_572_864, 49_152, 4_096)
    assert counts['vision_tower'] == 412_442_352 and counts['mlp1'] == 2_361_344
    assert counts['language_kept'] == 914_674_688
    assert counts['total'] == 2_398_284_528
    blocks = model.action_head.model.transformer_blocks
    cross = sum(p.numel() for p in blocks[0].parameters())
    self_attention = sum(p.numel() for p in blocks[1].parameters())
    assert (cross, self_attention) == (34_619_904, 33_047_040)


def test_steps_and_buckets():
    model = GrootModel(GrootConfig.small())
    assert model.step_buckets(4) == [0, 250, 500, 750]
    assert model.step_buckets(3) == [0, 333, 666]


def test_config_round_trip_and_checks():
    config = GrootConfig.small(embodiment='so100', embodiment_id=2)
    assert GrootConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown groot config keys'):
        GrootConfig.from_dict({**config.to_dict(), 'depth': 3})
    with pytest.raises(ValueError, match='DiT width 64 != input_embedding_dim 128'):
        GrootConfig.small(dit=DiTSize(depth=2, num_heads=2, head_dim=32, output_dim=128))
    with pytest.raises(ValueError, match='embodiment_id 32 outside 0..31'):
        GrootConfig.small(embodiment_id=32)


def test_full_size_quantized_scope():
    from omegaq_ros.policy.recipes import load_recipe
    from omegaq_ros.quant.memory import scope_fp16_bytes
    with torch.device('meta'):
        model = GrootModel(GrootConfig.n1_5())
    recipe = load_recipe('omega', 'groot')
    # FP16 bytes of what groot_recipe.yaml quantizes: Qwen3 12 layers 1.208 GB, VL
    # self-attention 0.403 GB, DiT 0.932 GB (the paper quotes 1.99 GB for its own scope).
    assert scope_fp16_bytes(model, recipe) == 2_542_338_048
    selected = [n for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and recipe.selects(n)]
    assert len(selected) == 12 * 7 + 4 * 6 + 16 * 6
    assert not any('norm1.linear' in n or 'proj_out' in n or 'vision_model' in n
                   for n in selected)
