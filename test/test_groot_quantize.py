# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 at W4A4 (small size): the recipe's scope, per-step tables, the artifact, the CLI.

The small GR00T of test_groot_checkpoint.py is quantized with the GR00T scope
(groot_recipe.yaml) on a few model calls made by GrootPolicy.model_call, written as an
artifact with quantize_policy (what omegaq-quantize does), and loaded back through the
registry. omegaq-quantize does the same from rosbag2 episodes of the sim.
"""

import json
import os
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.calibration import quantize_policy
from omegaq_ros.policy.graphed import StaticChunkSampler
from omegaq_ros.policy.groot_checkpoint import save_groot_checkpoint
from omegaq_ros.policy.groot_runtime import GrootPolicy
from omegaq_ros.policy.recipes import load_recipe
from omegaq_ros.policy.registry import load_policy, policy_family
from omegaq_ros.quant import ArtifactError, QuantLinear
from omegaq_ros.quant.step_context import StepContextError
import pytest
from test_groot_checkpoint import observation, small_model, STATS, write_eagle_files
import torch


@pytest.fixture(scope='module')
def quantized(tmp_path_factory):
    """Quantize the small GR00T with 'omega' (per-step tables) and write its artifact."""
    root = tmp_path_factory.mktemp('groot_w4a4')
    checkpoint = save_groot_checkpoint(small_model(), str(root / 'checkpoint'), STATS)
    policy = GrootPolicy.load(checkpoint)
    batches = []
    for seed in range(3):
        obs = observation(policy.config, seed=10 + seed)
        batches.append(policy.model_call(obs['images'], obs['state'], tokens=obs['tokens'],
                                         noise=obs['noise']))
    fp = GrootPolicy.load(checkpoint)
    summary, _ = quantize_policy(policy, batches, load_recipe('omega', 'groot'),
                                 str(root / 'w4a4'))
    return fp, policy, str(root / 'w4a4'), summary


def test_scope_and_step_tables(quantized):
    _, policy, _, summary = quantized
    c = policy.config
    names = [n for n, m in policy.model.named_modules() if isinstance(m, QuantLinear)]
    # Qwen3: q/k/v/o + gate/up/down; VL self-attention and DiT: to_q/k/v/out + 2 MLP linears.
    assert len(names) == 7 * c.language.depth + 6 * c.vl_self_attention.depth + 6 * c.dit.depth
    assert sorted(summary['layers']) == sorted(names)
    kept_fp = ('vision_model', 'mlp1', 'state_encoder', 'action_encoder', 'action_decoder',
               'timestep_encoder', 'norm1.linear', 'proj_out')
    assert not any(part in n for n in names for part in kept_fp)
    blocks = policy.model.action_head.model.transformer_blocks
    cross, self_attention = blocks[0].attn1, blocks[1].attn1
    assert cross.to_k.in_features == c.language.width and isinstance(cross.to_k, QuantLinear)
    for layer in (cross.to_q, self_attention.to_k, self_attention.to_v, blocks[3].ff.net[2]):
        assert layer.per_step and layer.input_owner.act_scale.shape[0] == c.num_steps == 4
    # The cross-attention K/V read the VL features, the same at every step: one static table.
    assert not cross.to_k.per_step and not cross.to_v.per_step
    language = policy.model.eagle.language_model.model.layers[0]
    vl = policy.model.action_head.vl_self_attention.transformer_blocks[0]
    assert not language.self_attn.q_proj.per_step and not vl.attn1.to_q.per_step


def test_artifact_round_trip_and_step_mismatch(quantized, tmp_path):
    fp, policy, artifact, _ = quantized
    assert policy_family(artifact) == 'groot'
    loaded = load_policy(artifact)
    assert isinstance(loaded, GrootPolicy) and loaded.quantized
    obs = observation(policy.config, seed=99)
    w4a4 = loaded.predict(**obs)
    np.testing.assert_allclose(w4a4, policy.predict(**obs), atol=1e-5, rtol=0)
    reference = fp.predict(**obs)
    error = np.abs(w4a4 - reference).mean() / np.abs(reference).mean()
    print(f'small GR00T W4A4 omega: relative mean abs action error vs FP {error:.3f}')
    assert 0 < error < 0.5
    call = loaded.model_call(**obs)
    with torch.no_grad(), pytest.raises(StepContextError,
                                        match='calibrated for 4 denoising steps, the sampler '
                                              'runs 8'):
        loaded.model.sample_actions(*call.values(), num_steps=8)
    with pytest.raises(ArtifactError, match="holds embodiment 'new_embodiment', not 'so100'"):
        load_policy(artifact, embodiment='so100')
    observation_file = tmp_path / 'obs.npz'
    np.savez(observation_file, images=np.stack(obs['images']), state=obs['state'],
             tokens=obs['tokens'], noise=obs['noise'])
    out = tmp_path / 'chunk.npz'
    done = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                           artifact, '--observation', str(observation_file), '--out', str(out),
                           '--device', 'cpu'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'W4A4 artifact' in done.stdout
    np.testing.assert_allclose(np.load(out)['actions'], w4a4, atol=1e-5, rtol=0)


def test_omegaq_quantize_writes_a_groot_artifact_from_bags(tmp_path):
    from omegaq_ros.sim.bag import EpisodeBagWriter
    from omegaq_ros.sim.env import BimanualEnv
    from omegaq_ros.sim.expert import ScriptedExpert
    bags = tmp_path / 'bags'
    bags.mkdir()
    with BimanualEnv('lift') as env:
        for seed in (0, 1):
            sample = env.reset(seed, render=True)
            expert = ScriptedExpert(env)
            expert.reset()
            with EpisodeBagWriter(bags / f'lift_seed{seed:06d}') as bag:
                bag.write_instruction(env.instruction, stamp_ns=0)
                for _ in range(4):
                    action = expert.act()
                    bag.write_tick(sample.stamp_ns, sample.images, sample.state, action)
                    sample = env.step(action, render=True)
    model = small_model()
    checkpoint = save_groot_checkpoint(model, str(tmp_path / 'checkpoint'), STATS)
    write_eagle_files(os.path.join(checkpoint, 'eagle'), model.config)
    output = str(tmp_path / 'w4a4')
    command = [sys.executable, '-m', 'omegaq_ros.policy.quantize_cli', '--checkpoint',
               checkpoint, '--calibration', str(bags), '--output', output, '--max-samples',
               '4', '--recipe', 'omega-dynamic', '--embodiment']
    refused = subprocess.run(command + ['gr1'], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and not os.path.exists(output)
    assert len(refused.stderr.strip().splitlines()) == 1 and "'gr1'" in refused.stderr
    done = subprocess.run(command + ['new_embodiment'], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    manifest = json.load(open(os.path.join(output, 'omegaq.json')))
    assert manifest['extra']['model_family'] == 'groot'
    assert manifest['calibration']['episodes'] == 2
    assert 'eagle.chat_template.json' in manifest['files']
    policy = load_policy(output)
    assert isinstance(policy, GrootPolicy) and policy.quantized and policy.processor
    images = [np.zeros((96, 96, 3), np.uint8)] * 3
    chunk = policy.predict(images, np.zeros(14, np.float32), 'lift the red cube')
    assert chunk.shape == (16, 14) and np.isfinite(chunk).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (the Triton W4A4 backend)')
def test_triton_backend_runs_groot_on_cuda(tmp_path):
    checkpoint = save_groot_checkpoint(small_model(), str(tmp_path / 'checkpoint'), STATS)
    policy = GrootPolicy.load(checkpoint)
    batches = []
    for seed in range(2):
        obs = observation(policy.config, seed=20 + seed)
        batches.append(policy.model_call(obs['images'], obs['state'], tokens=obs['tokens'],
                                         noise=obs['noise']))
    artifact = str(tmp_path / 'w4a4')
    quantize_policy(policy, batches, load_recipe('omega-dynamic', 'groot'), artifact)
    reference = load_policy(artifact, 'cuda', dtype='bfloat16', backend='reference')
    fast = load_policy(artifact, 'cuda', dtype='bfloat16', backend='triton')
    summary = fast.backend_summary
    assert summary['integer_kernels'] == summary['quantized_layers'] == 50, summary['text']
    obs = observation(policy.config, seed=99)
    expected = reference.predict(**obs, normalized=True)
    got = fast.predict(**obs, normalized=True)
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


@pytest.mark.parametrize('which', ['checkpoint', 'artifact'])
def test_static_buffers_give_the_eager_groot_chunk_for_every_new_observation(quantized, which):
    fp, _, artifact, _ = quantized
    policy = fp if which == 'checkpoint' else load_policy(artifact)

    def call(seed):
        obs = observation(policy.config, seed=seed)
        return tuple(policy.model_call(obs['images'], obs['state'], tokens=obs['tokens'],
                                       noise=obs['noise']).values())
    first = call(40)
    sampler = StaticChunkSampler(policy.model, first, capture=False)
    for seed in (41, 42):
        inputs = call(seed)
        with torch.no_grad():
            eager = policy.model.sample_actions(*inputs)
        assert torch.equal(sampler(inputs), eager)
    with pytest.raises(ValueError, match='static input of shape'):
        sampler((*first[:4], torch.zeros(1, 3, first[4].shape[-1])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graph capture needs CUDA')
@pytest.mark.parametrize('backend', ['reference', 'triton'])
def test_groot_cuda_graph_replay_matches_eager(quantized, backend):
    _, _, artifact, _ = quantized
    eager = load_policy(artifact, 'cuda', dtype='bfloat16', backend=backend)
    graphed = load_policy(artifact, 'cuda', dtype='bfloat16', backend=backend, cuda_graph=True)
    for seed in (50, 51, 52):
        obs = observation(eager.config, seed=seed)
        expected = eager.predict(**obs, normalized=True)
        got = graphed.predict(**obs, normalized=True)
        assert np.abs(got - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())
    assert len(graphed._samplers) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the fused GPU path needs CUDA')
def test_groot_fast_path_with_fused_pointwise_matches_eager(quantized):
    """GR00T's compiled pointwise work on the GPU fast path: graphs + Triton, as eager."""
    _, _, artifact, _ = quantized
    eager = load_policy(artifact, 'cuda', dtype='bfloat16', backend='triton')
    fast = load_policy(artifact, 'cuda', dtype='bfloat16', backend='triton', cuda_graph=True,
                       fused_pointwise=True)
    assert fast.model.fused_pointwise and not eager.model.fused_pointwise
    for seed in (60, 61):
        obs = observation(eager.config, seed=seed)
        expected = eager.predict(**obs, normalized=True)
        got = fast.predict(**obs, normalized=True)
        # bf16 towers: the compiled kernels round in another order than eager PyTorch, which
        # can flip a 4-bit activation code; a wrong fusion would move the chunk entirely.
        assert np.isfinite(got).all()
        assert np.abs(got - expected).mean() <= 0.03 * np.abs(expected).mean() + 1e-3
