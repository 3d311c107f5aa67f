# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Our GR00T N1.5 against LeRobot 0.4.4's port: same checkpoint, observation and noise, same chunk.

LeRobot 0.4.4 (the last GR00T N1.5 port that runs on Python 3.11) lives in its own cached venv
(scripts/setup_groot_reference.sh: CPU torch, no flash-attn) and runs as a separate process
that writes a checkpoint in the public sharded layout with experiment_cfg/metadata.json and
the Eagle processor files, then loads it back with GrootPolicy and runs an observation
through its own processors. We load that directory with our loader and compare the
unnormalized chunk. Real widths, reduced depth (2 SigLIP, 2 Qwen3, 2 VL self-attention
layers, a 4-block DiT), a 1024-row token table and 3 embodiment slots: about 0.8 GB.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.groot_processing import pad_state
from omegaq_ros.policy.groot_runtime import GrootPolicy
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'scripts', 'reference', 'lerobot_groot_reference.py')
SETUP = os.path.join(ROOT, 'scripts', 'setup_groot_reference.sh')


@pytest.fixture(scope='module')
def reference():
    """Build (or reuse) the LeRobot GR00T reference checkpoint and chunk."""
    built = subprocess.run(['bash', SETUP], capture_output=True, text=True)
    if built.returncode != 0:
        tail = ' | '.join(built.stderr.strip().splitlines()[-3:])
        pytest.skip(f'the LeRobot 0.4.4 reference venv cannot be built here ({SETUP} exited '
                    f'{built.returncode}: {tail})')
    venv = built.stdout.strip().splitlines()[-1]
    digest = hashlib.sha256(open(SCRIPT, 'rb').read() + open(SETUP, 'rb').read()).hexdigest()
    out = os.path.join(ROOT, '.cache', f'groot-reference-{digest[:12]}')
    # Older references are never read again; keep one checkpoint in the cache.
    for stale in glob.glob(os.path.join(ROOT, '.cache', 'groot-reference-*')):
        if stale != out and not stale.endswith('-venv'):
            shutil.rmtree(stale, ignore_errors=True)
    if not os.path.isfile(os.path.join(out, 'reference.npz')):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('_ROS_WHEELS', 'LD_LIBRARY_PATH', 'VIRTUAL_ENV'))}
        env.update({'HF_HUB_OFFLINE': '1', 'PYTHONNOUSERSITE': '1'})
        subprocess.run([os.path.join(venv, 'bin', 'python'), SCRIPT, '--out', out], check=True,
                       env=env)
    return out


def test_chunk_equals_lerobot(reference):
    data = np.load(os.path.join(reference, 'reference.npz'), allow_pickle=False)
    policy = GrootPolicy.load(os.path.join(reference, 'checkpoint'), embodiment='so100')
    c = policy.config
    assert (c.vision.depth, c.language.depth, c.vl_self_attention.depth, c.dit.depth) == \
        (2, 2, 2, 4)
    assert (c.vision.width, c.language.width, c.dit.width, c.hidden_size) == \
        (1152, 2048, 1536, 1024)
    # 'so100' is slot 2 of the checkpoint's 3; only that slot is loaded.
    assert (c.language.vocab_size, c.max_num_embodiments, c.embodiment) == (1024, 1, 'so100')
    assert (c.horizon, c.num_steps, c.state_dim, c.action_dim) == (16, 4, 14, 14)
    instruction = str(data['instruction'])
    # LeRobot's processors and ours give the same model inputs.
    call = policy.model_call(list(data['images']), data['state'], instruction,
                             noise=data['noise'])
    np.testing.assert_array_equal(call['input_ids'][0].numpy(), data['input_ids'])
    assert np.abs(call['pixel_values'].numpy() - data['pixel_values']).max() <= 1e-6
    np.testing.assert_allclose(call['state'][0, 0].numpy(), data['normalized_state'],
                               atol=1e-6, rtol=0)
    ours = policy.predict(list(data['images']), data['state'], instruction, noise=data['noise'])
    error = np.abs(ours - data['actions']).max()
    scale = np.abs(data['actions']).max()
    print(f'max |ours - LeRobot| = {error:.2e} (actions up to {scale:.2f})')
    assert error <= 1e-4
    normalized = policy.predict(list(data['images']), data['state'], instruction,
                                noise=data['noise'], normalized=True)
    assert np.abs(normalized - data['actions_normalized']).max() <= 1e-4
    # The same chunk from the model's own entry point, with LeRobot's token ids.
    with torch.no_grad():
        core = policy.model.sample_actions(
            torch.from_numpy(data['pixel_values']), torch.from_numpy(data['input_ids'])[None],
            torch.from_numpy(data['attention_mask']).bool()[None],
            torch.from_numpy(pad_state(data['normalized_state'][:14], 64))[None],
            torch.from_numpy(data['noise'])[None])[0, :, :14].numpy()
    assert np.abs(core - data['actions_normalized']).max() <= 1e-4


def test_predict_cli_on_the_reference_checkpoint(reference, tmp_path):
    data = np.load(os.path.join(reference, 'reference.npz'), allow_pickle=False)
    observation = tmp_path / 'obs.npz'
    np.savez(observation, images=data['images'], state=data['state'],
             instruction=data['instruction'], noise=data['noise'])
    out = tmp_path / 'chunk.npz'
    subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                    os.path.join(reference, 'checkpoint'), '--observation', str(observation),
                    '--out', str(out), '--device', 'cpu'], check=True)
    chunk = np.load(out)
    assert not bool(chunk['normalized'])
    assert np.abs(chunk['actions'] - data['actions']).max() <= 1e-4
