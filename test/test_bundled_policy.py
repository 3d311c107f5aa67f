# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The bundled policy: it loads through the public APIs, drives the sim, and refuses damage."""

import os
import shutil

import numpy as np
from omegaq_ros.policy.checkpoint import CheckpointError, load_lerobot_checkpoint
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.quant import ArtifactError, QuantLinear
import omegaq_ros.sim  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from omegaq_ros.sim.env import BimanualEnv
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'pi05_small', 'checkpoint')
ARTIFACT = os.path.join(ROOT, 'models', 'pi05_small_w4a4')


@pytest.fixture(scope='module')
def policies():
    return Pi05Policy.load(CHECKPOINT), Pi05Policy.load(ARTIFACT)


def test_the_cli_defaults_find_the_bundled_checkpoint_and_artifact():
    from omegaq_ros.policy.bundled import bundled_model
    assert bundled_model('checkpoint') == CHECKPOINT
    assert bundled_model('artifact') == ARTIFACT
    with pytest.raises(FileNotFoundError, match='no bundled missing artifact'):
        bundled_model('artifact', 'missing')    # never another family's model


def test_bundled_files_are_small_enough_to_commit():
    for folder in (CHECKPOINT, ARTIFACT):
        for name in os.listdir(folder):
            assert os.path.getsize(os.path.join(folder, name)) <= 16 * 2 ** 20, name


def test_bundled_artifact_is_real_w4a4_of_the_bundled_checkpoint(policies):
    fp, w4a4 = policies
    assert not fp.quantized and w4a4.quantized
    layers = [m for m in w4a4.model.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 7 * (fp.config.language.depth + fp.config.expert.depth)
    assert w4a4.config == fp.config
    expert = [m for m in layers if 'gemma_expert' in m.name]
    assert all(m.per_step and m.input_owner.act_scale.shape[0] == fp.config.num_steps
               for m in expert)
    # The bundled recipe keeps one rotation per linear (share_input_rotation: false).
    assert all(m.input_from is None and m.rot_in.dtype == torch.int8 for m in layers)


def test_backend_summary_says_what_runs_on_integer_kernels():
    """The bundled omega artifact has per-channel tables: the triton backend says it is slow."""
    from omegaq_ros.policy.runtime import set_backend
    w4a4 = Pi05Policy.load(ARTIFACT)
    layers = w4a4.backend_summary['quantized_layers']
    assert w4a4.backend_summary['backend'] == 'reference' and layers > 0
    summary = set_backend(w4a4.model, 'triton')
    assert summary['integer_kernels'] == 0 and summary['reference_arithmetic'] == layers
    assert summary['fused_sets'] == 0 and summary['unfused_sets'] > 0
    assert 'static_channel' in summary['text'] and 'omega-dynamic' in summary['text']
    set_backend(w4a4.model, 'reference')
    assert all(m.backend == 'reference' for m in w4a4.model.modules()
               if isinstance(m, QuantLinear))


@pytest.mark.parametrize('task', ['lift', 'bin', 'handover'])
def test_short_closed_loop_episode_with_the_bundled_w4a4_policy(policies, task):
    _, policy = policies
    with BimanualEnv(task) as env:
        observation = env.reset(100000, render=True)
        start = observation.state.copy()
        for chunk_index in range(2):
            images = [observation.images[name] for name in policy.config.cameras]
            noise = np.random.default_rng([7, chunk_index]).standard_normal(
                (policy.config.horizon, 32)).astype(np.float32)
            chunk = policy.predict(images, observation.state, observation.instruction,
                                   noise=noise)
            assert chunk.shape == (policy.config.horizon, 14) and np.isfinite(chunk).all()
            for k in range(10):
                observation = env.step(chunk[k], render=k == 9)
        assert np.abs(observation.state - start).max() > 0.01      # the arms moved


def test_damaged_copies_are_refused(tmp_path):
    artifact = tmp_path / 'artifact'
    shutil.copytree(ARTIFACT, artifact)
    with open(artifact / 'quantized.safetensors', 'r+b') as stream:
        stream.seek(-100, os.SEEK_END)
        stream.write(b'\xff' * 4)
    with pytest.raises(ArtifactError, match='sha256'):
        Pi05Policy.load(str(artifact))
    checkpoint = tmp_path / 'checkpoint'
    shutil.copytree(CHECKPOINT, checkpoint)
    weights = checkpoint / 'model.safetensors'
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match='not a readable safetensors file'):
        load_lerobot_checkpoint(str(checkpoint))


def test_edited_normalization_and_unlisted_tokenizer_are_refused(tmp_path):
    """Edited statistics in omegaq.json once gave actions up to 845,235; now the load fails."""
    import json
    artifact = tmp_path / 'artifact'
    shutil.copytree(ARTIFACT, artifact)
    manifest_path = artifact / 'omegaq.json'
    original = manifest_path.read_text()
    manifest = json.loads(original)
    manifest['extra']['normalization']['action']['stats']['q99'][0] = 1e6
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    with pytest.raises(ArtifactError, match='manifest_sha256 does not match the manifest'):
        Pi05Policy.load(str(artifact))
    manifest = json.loads(original)
    del manifest['files']['tokenizer.model']
    from omegaq_ros.quant.artifact import manifest_sha256
    manifest['manifest_sha256'] = manifest_sha256(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    with pytest.raises(ArtifactError, match='tokenizer.model is not listed in the manifest'):
        Pi05Policy.load(str(artifact))


def test_relative_action_checkpoints_are_refused_with_the_reason(tmp_path):
    """Refuse them: LeRobot adds the state back to such actions, we do not (up to 1.26 off)."""
    import json
    checkpoint = tmp_path / 'checkpoint'
    shutil.copytree(CHECKPOINT, checkpoint)
    config = json.loads((checkpoint / 'config.json').read_text())
    step = {'registry_name': 'absolute_actions_processor',
            'config': {'enabled': False, 'exclude_joints': ['gripper']}}
    (checkpoint / 'policy_postprocessor.json').write_text(json.dumps({'steps': [step]}))
    load_lerobot_checkpoint(str(checkpoint))           # a disabled step: absolute actions
    step['config']['enabled'] = True
    (checkpoint / 'policy_postprocessor.json').write_text(json.dumps({'steps': [step]}))
    with pytest.raises(CheckpointError, match='enabled absolute_actions_processor step.*'
                       r"joints matching \['gripper'\] stay absolute.*refused"):
        load_lerobot_checkpoint(str(checkpoint))
    os.remove(checkpoint / 'policy_postprocessor.json')
    config.update(use_relative_actions=True, relative_exclude_joints=['left_gripper'])
    (checkpoint / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r'use_relative_actions=true.*\[\'left_gripper'):
        Pi05Policy.load(str(checkpoint))


@pytest.mark.parametrize('name', ['pi05_small_w4a4', 'groot_small_w4a4'])
def test_folding_the_down_projections_permutations_changes_no_action(name):
    """The fast backend's contiguous-input rewrite is exact: the chunk is bit-identical."""
    from omegaq_ros.policy.registry import load_policy
    from omegaq_ros.quant.linear import fold_input_permutations
    path = os.path.join(ROOT, 'models', name)
    plain, folded = load_policy(path), load_policy(path)
    chains = folded.model.ELEMENTWISE_CHAINS
    consumers = [m for m in folded.model.modules()
                 if isinstance(m, QuantLinear) and m.name.endswith(('down_proj', 'net.2'))]
    assert consumers and all(m.perm_in is not None for m in consumers)
    assert fold_input_permutations(folded.model, chains) == len(consumers)
    assert all(m.perm_in is None for m in consumers)
    assert fold_input_permutations(folded.model, chains) == 0          # idempotent
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in plain.config.cameras]
    state = rng.uniform(-0.3, 0.3, 14).astype(np.float32)
    noise = rng.standard_normal((plain.config.horizon, 32)).astype(np.float32)
    chunks = [p.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
              for p in (plain, folded)]
    assert np.array_equal(chunks[0], chunks[1])
