# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""pi0.5 architecture: full-size parameter counts, config round trip, loader refusals."""

import json
import os

from omegaq_ros.policy.checkpoint import (CheckpointError, load_lerobot_checkpoint,
                                          save_lerobot_checkpoint)
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
import pytest
from safetensors.torch import load_file, save_file
import torch


def test_full_size_parameter_counts_match_pi05():
    with torch.device('meta'):
        model = Pi05Model(Pi05Config.pi05())
    counts = model.parameter_counts()
    # LeRobot 0.6.1 PI05 measured, without lm_heads.
    assert counts['vision_tower'] == 412_442_352
    assert counts['projector'] == 2_361_344
    assert counts['embed_tokens'] == 526_647_296
    assert counts['language_layers'] == 1_981_882_368 + 2048           # + final norm
    assert counts['expert'] == 427_932_672
    assert counts['projections'] == 2 * 1_049_600 + 33_792 + 32_800
    assert counts['total'] == 4_143_404_816 - 526_647_296 - 263_323_648   # 3.354 B


def test_config_round_trip_and_checks():
    config = Pi05Config.small()
    assert Pi05Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match='share num_heads'):
        Pi05Config.small(expert=Pi05Config.pi05().expert)
    with pytest.raises(ValueError, match='unknown pi05 config keys'):
        Pi05Config.from_dict({'widht': 3})


@pytest.fixture()
def small_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = Pi05Model(Pi05Config.small())
    return save_lerobot_checkpoint(model, str(tmp_path / 'ckpt')), model


def test_small_checkpoint_round_trip(small_checkpoint):
    path, model = small_checkpoint
    loaded, config, _, _ = load_lerobot_checkpoint(path)
    assert config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_loader_lists_missing_unexpected_and_misshapen_keys(small_checkpoint):
    path, _ = small_checkpoint
    weights = os.path.join(path, 'model.safetensors')
    state = load_file(weights)
    del state['model.action_out_proj.bias']
    state['model.extra_head.weight'] = torch.zeros(2)
    state['model.time_mlp_in.weight'] = torch.zeros(3, 3)
    save_file(state, weights)
    with pytest.raises(CheckpointError) as error:
        load_lerobot_checkpoint(path)
    message = str(error.value)
    assert 'action_out_proj.bias' in message and 'extra_head.weight' in message
    assert 'time_mlp_in.weight: checkpoint (3, 3)' in message


def test_loader_refuses_integer_weights_and_foreign_configs(small_checkpoint):
    path, _ = small_checkpoint
    weights = os.path.join(path, 'model.safetensors')
    state = load_file(weights)
    state['model.time_mlp_in.bias'] = state['model.time_mlp_in.bias'].to(torch.int32)
    save_file(state, weights)
    with pytest.raises(CheckpointError, match='time_mlp_in.bias has dtype torch.int32'):
        load_lerobot_checkpoint(path)
    config_path = os.path.join(path, 'config.json')
    config = json.load(open(config_path))
    config['type'] = 'pi0'
    json.dump(config, open(config_path, 'w'))
    with pytest.raises(CheckpointError, match="type is 'pi0'"):
        load_lerobot_checkpoint(path)
    with pytest.raises(CheckpointError, match='config.json is missing'):
        load_lerobot_checkpoint(os.path.dirname(path))


def test_prefix_skips_the_last_layers_unused_outputs_except_in_calibration():
    """
    The expert reads only the last prefix layer's keys and values.

    Outside calibration its attention output and MLP are not run (their outputs never reach
    an action) and the cache is the full layer's; inside calibration() every linear runs.
    """
    from omegaq_ros.policy.synthetic import random_inputs, random_model
    from omegaq_ros.quant.step_context import calibration
    config = Pi05Config.small()
    model = random_model(config, seed=3)
    inputs = random_inputs(config, seed=4, prompt=8)
    prefix = [inputs[name] for name in ('images', 'image_masks', 'tokens', 'token_masks')]
    last = model.vlm.language_model.layers[-1]
    unused = [last.self_attn.o_proj, last.mlp.gate_proj, last.mlp.up_proj, last.mlp.down_proj]
    calls = []
    hooks = [linear.register_forward_pre_hook(lambda *_, linear=linear: calls.append(linear))
             for linear in unused + [last.self_attn.k_proj]]
    try:
        with torch.no_grad():
            cache, pad = model.prefix_context(*prefix)
            assert calls == [last.self_attn.k_proj]
            calls.clear()
            with calibration():
                full, full_pad = model.prefix_context(*prefix)
            assert set(map(id, calls)) == set(map(id, unused + [last.self_attn.k_proj]))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(cache) == len(full) == config.language.depth
    assert torch.equal(pad, full_pad)
    for (k, v), (k_full, v_full) in zip(cache, full):
        assert torch.equal(k, k_full) and torch.equal(v, v_full)


def test_joined_vision_projections_give_the_separate_ones(tmp_path):
    """
    The fused pipeline's vision q/k/v in one GEMM: the same attention, no second weight copy.

    Joined, the projections' parameters are views into one tensor (the weights' bytes do not
    grow); cast afterwards, the layer notices and projects separately; unjoined, each
    parameter has its own storage again; a state dict of the joined layer holds copies, which
    safetensors writes.
    """
    from omegaq_ros.policy.model_config import VisionSize
    from omegaq_ros.policy.pi05_model import SiglipAttention
    torch.manual_seed(0)
    attention = SiglipAttention(VisionSize(width=64, depth=1, num_heads=4, mlp_dim=128,
                                           image_size=32, patch_size=16))
    x = torch.randn(2, 9, 64)
    separate = attention(x)
    counted = sum(p.numel() for p in attention.parameters())
    attention.join_projections(True)
    assert attention._joined_parameters() is not None
    assert attention.k_proj.weight.data_ptr() == attention._joined[0][64].data_ptr()
    assert sum(p.numel() for p in attention.parameters()) == counted
    assert torch.allclose(attention(x), separate, atol=1e-6)
    state = attention.state_dict()
    assert state['k_proj.weight'].data_ptr() != attention.k_proj.weight.data_ptr()
    save_file(state, str(tmp_path / 'joined.safetensors'))
    assert torch.equal(load_file(str(tmp_path / 'joined.safetensors'))['v_proj.bias'],
                       attention.v_proj.bias)
    attention.double()
    assert attention._joined_parameters() is None
    assert torch.allclose(attention(x.double()), separate.double(), atol=1e-6)
    attention.float().join_projections(True)
    attention.join_projections(False)
    assert attention._joined is None
    pointers = {p.data_ptr() for name, p in attention.named_parameters() if 'out_proj' not in name}
    assert len(pointers) == 6
    assert torch.allclose(attention(x), separate, atol=1e-6)
