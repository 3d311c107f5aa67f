# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 at CPU size: the public checkpoint layout, its refusals, the registry, the CLI.

A small GR00T (GrootConfig.small(), random weights) is written in the released layout
(sharded safetensors + index, config.json, experiment_cfg/metadata.json) and loaded back.
The numerical equality with LeRobot at real widths is test_groot_equivalence.py.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.groot_checkpoint import (GrootCheckpointError, load_groot_checkpoint,
                                                save_groot_checkpoint)
from omegaq_ros.policy.groot_config import GrootConfig
from omegaq_ros.policy.groot_model import GrootModel
from omegaq_ros.policy.groot_processing import write_eagle_processor
from omegaq_ros.policy.groot_runtime import GrootPolicy
from omegaq_ros.policy.registry import load_policy, policy_family, UnknownPolicyError
from omegaq_ros.policy.runtime import ObservationError
import pytest
from safetensors.torch import load_file
import torch

INDEX = 'model.safetensors.index.json'
STATS = {'state': {'arms': {'min': [-1.0] * 12, 'max': [1.5] * 12},
                   'grippers': {'min': [0.0, 0.0], 'max': [1.0, 0.0]}},
         'action': {'arms': {'min': [-2.0] * 12, 'max': [2.0] * 12},
                    'grippers': {'min': [0.0, 0.0], 'max': [5.0, 0.0]}}}


def small_model(seed=0) -> GrootModel:
    """Return a small GR00T whose every weight is random (norm scales near 1)."""
    torch.manual_seed(seed)
    model = GrootModel(GrootConfig.small(embodiment='new_embodiment', embodiment_id=31))
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape) * (0.05 if param.ndim > 1 else 0.1))
            if name.endswith(('norm.weight', 'layernorm.weight', 'vlln.weight', 'norm1.weight',
                              'norm3.weight')):
                param.add_(1.0)
    return model.eval()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """Write a small GR00T checkpoint in many shards; return its path and model."""
    model = small_model()
    path = str(tmp_path_factory.mktemp('groot') / 'checkpoint')
    save_groot_checkpoint(model, path, STATS, shard_bytes=2 * 2 ** 20)
    return path, model


INSTRUCTIONS = ('lift the red cube', 'hand the cube over', 'put the cube in the bin')


def write_eagle_files(folder: str, config: GrootConfig):
    """Write small Eagle processor files for config (a BPE trained on INSTRUCTIONS)."""
    write_eagle_processor(folder, config.image_token_index, config.tokens_per_image,
                          config.vision.image_size, INSTRUCTIONS)


def observation(config, seed=1):
    """Images, state, a prompt of token ids with every image's context tokens, noise."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in config.cameras]
    text = rng.integers(0, 900, 12)
    image_tokens = np.full(config.tokens_per_image * len(config.cameras),
                           config.image_token_index)
    tokens = np.concatenate([text[:5], image_tokens, text[5:]]).astype(np.int64)
    state = rng.uniform(-1, 1.5, config.state_dim).astype(np.float32)
    noise = rng.standard_normal((config.horizon, config.max_action_dim)).astype(np.float32)
    return {'images': images, 'state': state, 'tokens': tokens, 'noise': noise}


def test_sharded_round_trip_gives_the_same_chunk(checkpoint):
    path, model = checkpoint
    shards = sorted(f for f in os.listdir(path) if f.endswith('.safetensors'))
    assert len(shards) >= 3 and shards[0] == f'model-00001-of-{len(shards):05d}.safetensors'
    loaded, config, normalizers, processor = load_groot_checkpoint(path)
    assert processor is None and config.embodiment == 'new_embodiment'
    assert (config.state_dim, config.action_dim, config.cameras) == (14, 14, model.config.cameras)
    # Only the embodiment's slot (31 of 32) is kept.
    assert config.to_dict() == {**model.config.to_dict(), 'max_num_embodiments': 1,
                                'embodiment_id': 0}
    table = loaded.action_head.action_encoder.W2.W
    assert table.shape[0] == 1 and torch.equal(table[0], model.action_head.action_encoder.W2.W[31])
    policy = GrootPolicy(loaded, normalizers)
    obs = observation(config)
    chunk = policy.predict(**obs)
    assert chunk.shape == (config.horizon, 14) and np.isfinite(chunk).all()
    reference = GrootPolicy(model, normalizers).predict(**obs)
    # Same weights, same arithmetic; only the order of float sums may differ (memory layout).
    np.testing.assert_allclose(chunk, reference, atol=1e-5, rtol=0)
    # The constant joints (min == max) come back at their min whatever the model says.
    assert (chunk[:, 13] == 0.0).all()
    normalized = policy.predict(**obs, normalized=True)
    np.testing.assert_allclose(normalizers['action'].unnormalize(normalized), chunk)


def test_embodiment_slot_changes_the_chunk(checkpoint):
    path, _ = checkpoint
    meta_path = os.path.join(path, 'experiment_cfg', 'metadata.json')
    original = open(meta_path).read()
    try:
        meta = json.loads(original)
        meta['so100'] = meta['new_embodiment']
        with open(meta_path, 'w') as stream:
            json.dump(meta, stream)
        with pytest.raises(GrootCheckpointError, match=r"holds embodiments \['new_embodiment', "
                                                       r"'so100'\]; choose one by name"):
            load_groot_checkpoint(path)
        slot2 = GrootPolicy.load(path, embodiment='so100')
        slot31 = GrootPolicy.load(path, embodiment='new_embodiment')
        obs = observation(slot2.config)
        assert slot2.config.embodiment == 'so100'
        np.testing.assert_array_equal(
            slot2.model.action_head.action_decoder.layer2.b[0].detach().numpy(),
            load_file(shards_with('action_decoder.layer2.b', path))[
                'action_head.action_decoder.layer2.b'][2].numpy())
        assert np.abs(slot2.predict(**obs) - slot31.predict(**obs)).max() > 1e-3
    finally:
        with open(meta_path, 'w') as stream:
            stream.write(original)


def shards_with(key_part: str, path: str) -> str:
    """Return the shard file that holds the tensor whose name contains key_part."""
    index = json.load(open(os.path.join(path, INDEX)))['weight_map']
    return os.path.join(path, next(f for k, f in index.items() if key_part in k))


def copy_of(path, tmp_path):
    """Return a copy of the checkpoint to damage."""
    target = tmp_path / 'copy'
    shutil.copytree(path, target)
    return str(target)


def test_missing_shard_is_refused(checkpoint, tmp_path):
    path = copy_of(checkpoint[0], tmp_path)
    shards = sorted(f for f in os.listdir(path) if f.endswith('.safetensors'))
    os.remove(os.path.join(path, shards[1]))
    with pytest.raises(GrootCheckpointError, match=r'shards listed in model.safetensors.index'
                                                   rf".json are missing: \['{shards[1]}'\] "
                                                   rf'\(1 of {len(shards)}\)'):
        load_groot_checkpoint(path)


def test_mismatched_index_is_refused(checkpoint, tmp_path):
    path = copy_of(checkpoint[0], tmp_path)
    index_path = os.path.join(path, 'model.safetensors.index.json')
    index = json.load(open(index_path))
    key = 'action_head.future_tokens.weight'
    shard = index['weight_map'][key]
    target = min(s for s in index['weight_map'].values() if s != shard)
    index['weight_map'][key] = target
    json.dump(index, open(index_path, 'w'))
    # Shards are checked in name order: the first of the two tells (absent or unlisted).
    wrong = 'listed but absent' if target < shard else 'present but unlisted'
    with pytest.raises(GrootCheckpointError, match=rf'{INDEX} does not match '
                                                   rf'{min(shard, target)}: .*{wrong} '
                                                   rf"\['{key}'\] \(1\)"):
        load_groot_checkpoint(path)


def test_wrong_embodiment_name_and_type_are_refused(checkpoint, tmp_path):
    with pytest.raises(GrootCheckpointError, match=r"embodiment 'gr1' is not in experiment_cfg"
                                                   r"/metadata.json; it has \['new_embodiment'\]"):
        load_groot_checkpoint(checkpoint[0], embodiment='gr1')
    path = copy_of(checkpoint[0], tmp_path)
    data = json.load(open(os.path.join(path, 'config.json')))
    data['action_head_cfg']['diffusion_model_cfg']['num_layers'] = 6
    json.dump(data, open(os.path.join(path, 'config.json'), 'w'))
    with pytest.raises(GrootCheckpointError, match=r'missing \[.action_head.model.transformer_'
                                                   r'blocks.4'):
        load_groot_checkpoint(path)
    data['model_type'] = 'gr00t_n1'
    json.dump(data, open(os.path.join(path, 'config.json'), 'w'))
    with pytest.raises(GrootCheckpointError, match="model_type is 'gr00t_n1', expected"):
        load_groot_checkpoint(path)
    with pytest.raises(UnknownPolicyError, match='is neither a LeRobot pi05 nor a GR00T'):
        policy_family(path)


def test_observation_checks(checkpoint):
    policy = GrootPolicy.load(checkpoint[0])
    obs = observation(policy.config)
    with pytest.raises(ObservationError, match='GR00T needs the state'):
        policy.predict(**{**obs, 'state': None})
    with pytest.raises(ObservationError, match=r'expected 3 cameras'):
        policy.predict(**{**obs, 'images': obs['images'][:2]})
    with pytest.raises(ObservationError, match='must be present'):
        policy.predict(**obs, present=[True, False, True])
    with pytest.raises(ObservationError,
                       match=r'holds 77 image tokens \(id 1000\); 3 cameras need 108'):
        policy.predict(**{**obs, 'tokens': obs['tokens'][36:]})
    with pytest.raises(ObservationError, match='no eagle/ processor files; give tokens'):
        policy.predict(**{**obs, 'tokens': None}, instruction='lift')


def test_registry_and_predict_cli(checkpoint, tmp_path):
    path, model = checkpoint
    assert policy_family(path) == 'groot'
    policy = load_policy(path, embodiment='new_embodiment')
    assert isinstance(policy, GrootPolicy)
    obs = observation(policy.config)
    observation_file = tmp_path / 'obs.npz'
    np.savez(observation_file, images=np.stack(obs['images']), state=obs['state'],
             tokens=obs['tokens'], noise=obs['noise'])
    out = tmp_path / 'chunk.npz'
    done = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                           path, '--observation', str(observation_file), '--out', str(out),
                           '--device', 'cpu'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    chunk = np.load(out)
    assert not bool(chunk['normalized'])
    np.testing.assert_allclose(chunk['actions'], policy.predict(**obs), atol=1e-6)
    done = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                           path, '--observation', str(observation_file), '--out', str(out),
                           '--device', 'cpu', '--embodiment', 'gr1'], capture_output=True,
                          text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "embodiment 'gr1' is not in experiment_cfg/metadata.json" in lines[-1]


def test_instruction_prompt_from_eagle_files(checkpoint, tmp_path):
    path = copy_of(checkpoint[0], tmp_path)
    config = checkpoint[1].config
    write_eagle_files(os.path.join(path, 'eagle'), config)
    policy = GrootPolicy.load(path)
    assert policy.processor is not None
    obs = observation(config)
    text = policy.processor.prompt_text('lift the red cube', 3)
    assert text.count('<IMG_CONTEXT>') == 3 * config.tokens_per_image
    assert '<image 3><img><IMG_CONTEXT>' in text and "['lift the red cube']" in text
    call = policy.model_call(obs['images'], obs['state'], 'lift the red cube', noise=obs['noise'])
    ids = call['input_ids'][0].numpy()
    assert (ids == config.image_token_index).sum() == 3 * config.tokens_per_image
    chunk = policy.predict(obs['images'], obs['state'], 'lift the red cube', noise=obs['noise'])
    other = policy.predict(obs['images'], obs['state'], 'hand the cube over', noise=obs['noise'])
    assert np.isfinite(chunk).all() and np.abs(chunk - other).max() > 1e-4


def test_bfloat16_towers_stay_close_to_float32(checkpoint):
    fp32 = GrootPolicy.load(checkpoint[0])
    bf16 = GrootPolicy.load(checkpoint[0], dtype='bfloat16')
    assert bf16.model.eagle.language_model.model.layers[0].mlp.up_proj.weight.dtype == \
        torch.bfloat16
    assert bf16.model.action_head.state_encoder.layer1.W.dtype == torch.float32
    obs = observation(fp32.config)
    reference = fp32.predict(**obs, normalized=True)
    error = np.abs(bf16.predict(**obs, normalized=True) - reference).max()
    assert 0 < error < 0.05 * np.abs(reference).max()


def test_metadata_without_min_max_is_refused(checkpoint, tmp_path):
    path = copy_of(checkpoint[0], tmp_path)
    meta_path = os.path.join(path, 'experiment_cfg', 'metadata.json')
    meta = json.load(open(meta_path))
    for part in meta['new_embodiment']['statistics']['action'].values():
        del part['min']
    json.dump(meta, open(meta_path, 'w'))
    with pytest.raises(GrootCheckpointError, match=r"metadata.json 'new_embodiment': min-max "
                                                   r"normalization needs statistics \['min'\]"):
        load_groot_checkpoint(path)


def test_vl_positional_table_is_read_from_the_weights(tmp_path):
    # diffusers' default for the VL self-attention (positional_embeddings 'sinusoidal'): the
    # table is a saved buffer; the loader sees it in the weights.
    torch.manual_seed(3)
    config = GrootConfig.small(vl_max_positions=512, embodiment='new_embodiment',
                               embodiment_id=31)
    model = GrootModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.05)
    path = save_groot_checkpoint(model, str(tmp_path / 'checkpoint'), STATS)
    loaded, loaded_config, normalizers, _ = load_groot_checkpoint(path)
    assert loaded_config.vl_max_positions == 512
    pe = loaded.action_head.vl_self_attention.transformer_blocks[1].pos_embed.pe
    assert torch.equal(pe, model.action_head.vl_self_attention.transformer_blocks[1].pos_embed.pe)
    obs = observation(config)
    np.testing.assert_allclose(GrootPolicy(loaded, normalizers).predict(**obs),
                               GrootPolicy(model, normalizers).predict(**obs), atol=1e-5, rtol=0)
