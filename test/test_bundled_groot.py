# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The bundled small GR00T N1.5 and its W4A4 artifact: found by family, real, and it acts."""

import os

import numpy as np
from omegaq_ros.policy.bundled import bundled_model
from omegaq_ros.policy.groot_runtime import GrootPolicy
from omegaq_ros.policy.registry import load_policy
from omegaq_ros.quant import QuantLinear
import omegaq_ros.sim  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from omegaq_ros.sim.env import BimanualEnv
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'groot_small', 'checkpoint')
ARTIFACT = os.path.join(ROOT, 'models', 'groot_small_w4a4')


@pytest.fixture(scope='module')
def policies():
    return load_policy(CHECKPOINT), load_policy(ARTIFACT)


def test_found_by_family_and_never_the_default():
    assert bundled_model('checkpoint', 'groot') == CHECKPOINT
    assert bundled_model('artifact', 'groot') == ARTIFACT
    assert 'pi05_small' in bundled_model('artifact')        # the nodes' default stays pi0.5


def test_every_bundled_file_is_small_enough_to_commit():
    for folder in (os.path.dirname(CHECKPOINT), ARTIFACT):
        for root, _, names in os.walk(folder):
            for name in names:
                assert os.path.getsize(os.path.join(root, name)) <= 16 * 2 ** 20, name


def test_the_artifact_is_real_w4a4_of_the_checkpoint_for_the_fast_path(policies):
    fp, w4a4 = policies
    assert isinstance(fp, GrootPolicy) and isinstance(w4a4, GrootPolicy)
    assert not fp.quantized and w4a4.quantized and w4a4.config == fp.config
    layers = [m for m in w4a4.model.modules() if isinstance(m, QuantLinear)]
    c = fp.config
    assert len(layers) == 7 * c.language.depth + 6 * c.vl_self_attention.depth + 6 * c.dit.depth
    # omega-dynamic: every layer has an integer GEMM on the GPU (no per-channel tables).
    assert {m.act_mode for m in layers} == {'dynamic_group'}
    assert fp.processor is not None and w4a4.processor is not None


@pytest.mark.parametrize('task', ['lift', 'handover'])
def test_the_bundled_w4a4_policy_moves_the_arms_in_the_sim(policies, task):
    fp, w4a4 = policies
    with BimanualEnv(task) as env:
        observation = env.reset(100000, render=True)
        start = observation.state.copy()
        for chunk_index in range(2):
            images = [observation.images[name] for name in w4a4.config.cameras]
            noise = np.random.default_rng([7, chunk_index]).standard_normal(
                (w4a4.config.horizon, w4a4.config.max_action_dim)).astype(np.float32)
            chunk = w4a4.predict(images, observation.state, observation.instruction,
                                 noise=noise)
            reference = fp.predict(images, observation.state, observation.instruction,
                                   noise=noise)
            assert chunk.shape == (w4a4.config.horizon, 14) and np.isfinite(chunk).all()
            # Quantization moves the actions a little, not to somewhere else.
            assert np.abs(chunk - reference).mean() < 0.05 * np.abs(reference).mean() + 0.005
            for k in range(8):
                observation = env.step(chunk[k], render=k == 7)
        assert np.abs(observation.state - start).max() > 0.01      # the arms moved


def test_fused_pointwise_gives_the_eager_chunk(policies):
    """GR00T's norms, RoPE, gated MLPs and residuals compiled: the same chunk as eager."""
    fp, w4a4 = policies
    fused = load_policy(CHECKPOINT, fused_pointwise=True)
    assert fused.model.fused_pointwise and not fp.model.fused_pointwise
    with BimanualEnv('bin') as env:
        observation = env.reset(100001, render=True)
    images = [observation.images[name] for name in fp.config.cameras]
    noise = np.random.default_rng(3).standard_normal(
        (fp.config.horizon, fp.config.max_action_dim)).astype(np.float32)
    eager = fp.predict(images, observation.state, observation.instruction, noise=noise)
    compiled = fused.predict(images, observation.state, observation.instruction, noise=noise)
    assert np.abs(compiled - eager).max() < 1e-4
