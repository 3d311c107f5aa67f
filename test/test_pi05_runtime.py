# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Run the policy wrapper end to end on the small pi0.5.

LeRobot layout -> predict -> quantize with the omega recipe -> artifact -> predict again;
input refusals; omegaq-predict.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.checkpoint import save_lerobot_checkpoint
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import Normalizer, train_prompt_tokenizer
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.policy.recipes import method_recipe
from omegaq_ros.policy.runtime import ObservationError
from omegaq_ros.quant import ArtifactError, quantize, QuantLinear, save_artifact
import pytest
import torch

INSTRUCTIONS = ['lift the cube', 'put the object in the bin', 'hand the object over']


def random_observation(rng, config, size=(120, 160)):
    images = [rng.integers(0, 256, size=(*size, 3), dtype=np.uint8) for _ in config.cameras]
    return images, rng.uniform(-1, 1, config.state_dim).astype(np.float32)


@pytest.fixture(scope='module')
def small_policy(tmp_path_factory):
    root = tmp_path_factory.mktemp('pi05')
    torch.manual_seed(0)
    config = Pi05Config.small()
    model = Pi05Model(config)
    with torch.no_grad():                      # non-trivial adaRMS (LeRobot zero-inits it)
        for name, param in model.named_parameters():
            if '.dense.' in name:
                param.normal_(0, 0.02)
    stats = {'q01': -np.ones(14, np.float32), 'q99': np.ones(14, np.float32) * 2}
    normalizers = {'observation.state': Normalizer('QUANTILES', stats),
                   'action': Normalizer('QUANTILES', stats)}
    tokenizer = train_prompt_tokenizer(INSTRUCTIONS, str(root / 'tok.model'), vocab_size=300)
    path = save_lerobot_checkpoint(model, str(root / 'checkpoint'), normalizers, tokenizer)
    return Pi05Policy.load(path), root


def test_fp_policy_predicts_unnormalized_chunks(small_policy):
    policy, _ = small_policy
    rng = np.random.default_rng(1)
    images, state = random_observation(rng, policy.config)
    noise = rng.standard_normal((policy.config.horizon, 32)).astype(np.float32)
    chunk = policy.predict(images, state, 'lift the cube', noise=noise)
    assert chunk.shape == (policy.config.horizon, 14) and chunk.dtype == np.float32
    again = policy.predict(images, state, 'lift the cube', noise=noise)
    assert np.array_equal(chunk, again)
    normalized = policy.predict(images, state, 'lift the cube', noise=noise, normalized=True)
    assert np.allclose((normalized + 1) * 3 / 2 - 1, chunk, atol=1e-5)


@pytest.mark.parametrize('change, message', [
    (lambda i, s: (i[:2], s), 'expected 3 cameras'),
    (lambda i, s: ([i[0].astype(np.float32)] + i[1:], s), "camera 'cam_high': expected uint8"),
    (lambda i, s: ([i[0][..., :2]] + i[1:], s), 'expected uint8 \\[H, W, 3\\]'),
    (lambda i, s: (i, s[:5]), 'expected state of shape \\[14\\]'),
    (lambda i, s: (i, np.full(14, np.nan, np.float32)), 'NaN'),
])
def test_bad_observations_are_refused(small_policy, change, message):
    policy, _ = small_policy
    images, state = random_observation(np.random.default_rng(2), policy.config)
    images, state = change(images, state)
    with pytest.raises(ObservationError, match=message):
        policy.predict(images, state, 'lift the cube')


def test_empty_instruction_is_refused(small_policy):
    policy, _ = small_policy
    images, state = random_observation(np.random.default_rng(3), policy.config)
    with pytest.raises(ValueError, match='instruction is empty'):
        policy.predict(images, state, '  ')


def test_omega_artifact_round_trip_and_accuracy(small_policy, tmp_path):
    policy, _ = small_policy
    config = policy.config
    rng = np.random.default_rng(4)
    from omegaq_ros.policy.pi05_processing import prepare_images, state_prompt

    def batch(seed):
        r = np.random.default_rng(seed)
        images, state = random_observation(r, config)
        tokens, mask = policy.tokenizer(state_prompt(INSTRUCTIONS[seed % 3], state))
        image_list, masks = prepare_images(images, [True] * 3, config.vision.image_size,
                                           torch.device('cpu'))
        noise = torch.from_numpy(r.standard_normal((1, config.horizon, 32)).astype(np.float32))
        return {'images': image_list, 'image_masks': masks,
                'tokens': torch.from_numpy(tokens)[None],
                'token_masks': torch.from_numpy(mask)[None], 'noise': noise}

    recipe = method_recipe('omega')
    import copy
    quantized = quantize(copy.deepcopy(policy.model), [batch(s) for s in range(10)], recipe)
    names = [n for n, m in quantized.named_modules() if isinstance(m, QuantLinear)]
    per_layer = 7 * config.language.depth + 7 * config.expert.depth
    assert len(names) == per_layer
    assert not any('vision_tower' in n or '.dense' in n or 'time_mlp' in n for n in names)
    expert_q = quantized.paligemma_with_expert.gemma_expert.model.layers[0].self_attn.q_proj
    assert expert_q.per_step and expert_q.act_scale.shape[0] == config.num_steps
    language_q = quantized.vlm.language_model.layers[0].self_attn.q_proj
    assert not language_q.per_step

    path = save_artifact(quantized, recipe, str(tmp_path / 'w4a4'),
                         extra_manifest=policy.artifact_extra(), extra_files=policy.extra_files())
    loaded = Pi05Policy.load(path)
    assert loaded.quantized and loaded.tokenizer is not None
    images, state = random_observation(rng, config)
    noise = rng.standard_normal((config.horizon, 32)).astype(np.float32)
    fp = policy.predict(images, state, 'put the object in the bin', noise=noise, normalized=True)
    w4a4 = loaded.predict(images, state, 'put the object in the bin', noise=noise,
                          normalized=True)
    assert np.isfinite(w4a4).all()
    error = np.abs(w4a4 - fp).mean() / np.abs(fp).mean()
    print(f'small pi0.5 W4A4 omega: relative mean abs action error vs FP {error:.3f}')
    assert error < 0.5

    corrupt = tmp_path / 'corrupt'
    shutil.copytree(path, corrupt)
    with open(corrupt / 'tokenizer.model', 'r+b') as stream:
        stream.seek(10)
        stream.write(b'\x00\x01\x02')
    with pytest.raises(ArtifactError, match='tokenizer.model: sha256 does not match'):
        Pi05Policy.load(str(corrupt))


def test_predict_cli_with_instruction(small_policy, tmp_path):
    policy, root = small_policy
    rng = np.random.default_rng(5)
    images, state = random_observation(rng, policy.config)
    observation = tmp_path / 'obs.npz'
    np.savez(observation, images=np.stack(images), state=state, instruction='lift the cube',
             noise=rng.standard_normal((policy.config.horizon, 32)).astype(np.float32))
    out = tmp_path / 'chunk.npz'
    subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                    os.path.join(root, 'checkpoint'), '--observation', str(observation),
                    '--out', str(out)], check=True)
    expected = policy.predict(images, state, 'lift the cube',
                              noise=np.load(observation, allow_pickle=False)['noise'])
    assert np.allclose(np.load(out, allow_pickle=False)['actions'], expected, atol=1e-5)
    bad = tmp_path / 'bad.npz'
    np.savez(bad, images=np.stack(images)[:2], state=state, instruction='lift the cube')
    result = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                             os.path.join(root, 'checkpoint'), '--observation', str(bad),
                             '--out', str(out)], capture_output=True, text=True)
    assert result.returncode == 2 and 'expected 3 cameras' in result.stderr
    refused = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli',
                              '--policy', os.path.join(root, 'checkpoint'), '--observation',
                              str(observation), '--out', str(out), '--backend', 'triton'],
                             capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'})
    assert refused.returncode == 2 and "backend 'triton' needs a CUDA device" in refused.stderr
    assert 'Traceback' not in refused.stderr
    bf16 = tmp_path / 'bf16.npz'
    subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                    os.path.join(root, 'checkpoint'), '--observation', str(observation),
                    '--out', str(bf16), '--dtype', 'bfloat16'], check=True)
    assert np.abs(np.load(bf16, allow_pickle=False)['actions'] - expected).max() < 0.05
