# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Training the small policies of both families.

Real expert rollouts in MuJoCo, a few flow-matching steps on the CPU, a checkpoint in the
family's layout that the registry loads and that predicts a chunk.
"""

import json
import os

import numpy as np
from omegaq_ros.policy import train
from omegaq_ros.policy.registry import load_policy, policy_family
from omegaq_ros.sim.env import BimanualEnv
import pytest

pytest.importorskip('mujoco')


@pytest.mark.parametrize('family', ['pi05', 'groot'])
def test_a_short_run_writes_a_checkpoint_the_runtime_loads(tmp_path, family):
    out = str(tmp_path / family)
    assert train.main(['--out', out, '--family', family, '--tasks', 'lift,handover',
                       '--episodes-per-task', '1', '--steps', '4', '--batch', '4',
                       '--device', 'cpu', '--workers', '1']) == 0
    record = json.load(open(os.path.join(out, 'training.json')))
    assert record['family'] == family and record['steps'] == 4
    assert np.isfinite(record['final_loss'])
    checkpoint = os.path.join(out, 'checkpoint')
    assert policy_family(checkpoint) == family
    policy = load_policy(checkpoint)
    with BimanualEnv('lift') as env:
        observation = env.reset(5, render=True)
    images = [observation.images[name] for name in policy.config.cameras]
    chunk = policy.predict(images, observation.state, observation.instruction)
    assert chunk.shape == (policy.config.horizon, policy.config.action_dim)
    assert np.isfinite(chunk).all()
    sizes = [os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(checkpoint) for name in names]
    assert max(sizes) <= 16 * 2 ** 20


def test_groot_training_lowers_the_loss_and_resumes(tmp_path):
    """The GR00T loss falls within 120 steps; --resume continues; --init starts from it."""
    out = str(tmp_path / 'groot')
    common = ['--out', out, '--family', 'groot', '--tasks', 'lift', '--episodes-per-task',
              '2', '--batch', '8', '--device', 'cpu', '--workers', '1', '--lr', '1e-3',
              '--warmup', '5']
    assert train.main(common + ['--steps', '40']) == 0
    first = json.load(open(os.path.join(out, 'training.json')))['final_loss']
    assert train.main(common + ['--steps', '120', '--resume']) == 0
    record = json.load(open(os.path.join(out, 'training.json')))
    assert record['steps'] == 120
    assert record['final_loss'] < 0.85 * first
    checkpoint = os.path.join(out, 'checkpoint')
    again = str(tmp_path / 'again')
    assert train.main(common[:1] + [again] + common[2:] + [
        '--steps', '1', '--lr', '0', '--init', checkpoint]) == 0
    policy, initialized = load_policy(checkpoint), load_policy(os.path.join(again, 'checkpoint'))
    with BimanualEnv('lift') as env:
        observation = env.reset(7, render=True)
    images = [observation.images[name] for name in policy.config.cameras]
    noise = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    np.testing.assert_array_equal(
        policy.predict(images, observation.state, observation.instruction, noise=noise),
        initialized.predict(images, observation.state, observation.instruction, noise=noise))


def test_dit_width_trains_a_wider_small_groot(tmp_path):
    """--dit-width widens every DiT linear; the checkpoint's config carries it to the runtime."""
    out = str(tmp_path / 'wide')
    assert train.main(['--out', out, '--family', 'groot', '--dit-width', '192', '--tasks',
                       'lift', '--episodes-per-task', '1', '--steps', '2', '--batch', '4',
                       '--device', 'cpu', '--workers', '1']) == 0
    policy = load_policy(os.path.join(out, 'checkpoint'))
    assert policy.config.dit.width == 192 and policy.config.input_embedding_dim == 192
    blocks = policy.model.action_head.model.transformer_blocks
    assert blocks[0].attn1.to_q.weight.shape == (192, 192)
    assert blocks[0].ff.net[2].weight.shape == (192, 4 * 192)
    for bad in (['--family', 'pi05', '--dit-width', '192'],
                ['--family', 'groot', '--dit-width', '100']):
        with pytest.raises(SystemExit):
            train.parse_args(['--out', out] + bad)
