# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
omegaq-predict refuses every malformed observation file with one line and exit status 2.

The bundled small checkpoint is the policy; each case writes a real .npz (or not-an-.npz) and
runs the command's main() or its loader + Pi05Policy.predict, as the command does.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.policy.predict_cli import load_observation, main
from omegaq_ros.policy.runtime import ObservationError
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'pi05_small', 'checkpoint')


@pytest.fixture(scope='module')
def policy():
    return Pi05Policy.load(CHECKPOINT)


def valid(**change):
    """Return a valid observation for the bundled checkpoint, with keys changed or removed."""
    rng = np.random.default_rng(0)
    observation = {'images': rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8),
                   'state': rng.uniform(-0.5, 0.5, 14).astype(np.float32),
                   'instruction': np.array('lift the cube'),
                   'noise': rng.standard_normal((20, 32)).astype(np.float32)}
    observation.update(change)
    return {k: v for k, v in observation.items() if v is not None}


def run(capsys, policy_path, observation, out):
    code = main(['--policy', policy_path, '--observation', str(observation), '--out', str(out),
                 '--device', 'cpu'])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def write_text(path):
    path.write_text('images, state\n1, 2\n')


def write_npy(path):
    with open(path, 'wb') as stream:
        np.save(stream, np.zeros(3))


def write_object_array(path):
    np.savez(path, **valid(state=np.array([1.0, 'a', None], dtype=object)))


@pytest.mark.parametrize('make, message', [
    (None, 'no such file'),
    (write_text, 'not a readable .npz file'),
    (write_npy, 'got a single .npy array'),
    (write_object_array, "'state' cannot be read without pickle"),
    (lambda p: np.savez(p, **valid(images=np.array(5, np.uint8))),
     r'expected images uint8 \[n_cams, H, W, 3\], got uint8 \[\]'),
    (lambda p: np.savez(p, **valid(instruction=np.array(3.0))),
     'expected instruction as one string, got float64'),
    (lambda p: np.savez(p, **valid(token_masks=np.ones(4, bool))), "unknown keys \\['token_m"),
    (lambda p: np.savez(p, **valid(instruction=None)), 'needs images and tokens'),
])
def test_unreadable_or_malformed_files_exit_2_with_one_line(capsys, tmp_path, make, message):
    path = tmp_path / 'obs.npz'
    if make:
        make(path)
    code, err = run(capsys, CHECKPOINT, path, tmp_path / 'out.npz')
    assert code == 2 and len(err) == 1, err
    assert re.search(message, err[0]), err
    assert not (tmp_path / 'out.npz').exists()


@pytest.mark.parametrize('change, message', [
    ({'noise': np.full((20, 32), np.nan, np.float32)}, 'noise contains NaN or inf'),
    ({'noise': np.full((20, 32), np.inf, np.float32)}, 'noise contains NaN or inf'),
    ({'tokens': np.array([3, 4, 5]), 'state': np.full(14, np.nan, np.float32)},
     'state contains NaN'),
    ({'tokens': np.array([3.7, 4.2]), 'instruction': None}, 'expected tokens: integer ids'),
    ({'tokens': np.zeros(0, np.int64), 'instruction': None}, r'L >= 1, got int64 \[0\]'),
    ({'tokens': np.array([3, 4]), 'token_mask': np.zeros(2, bool), 'instruction': None},
     'token_mask marks no token as real'),
    ({'tokens': np.array([3, 4]), 'token_mask': np.array([0.5, 1.0]), 'instruction': None},
     'expected token_mask: bool'),
    ({'instruction': np.array('')}, 'instruction is empty'),
    ({'instruction': np.array('   ')}, 'instruction is empty'),
    ({'state': np.array(['a'] * 14)}, r'expected state float32 \[14\], got <U1 \[14\]'),
    ({'state': np.array('abc')}, 'expected state float32'),
    ({'noise': np.zeros((20, 32), np.complex64)}, 'expected noise float32'),
])
def test_malformed_arrays_are_refused_before_the_model(policy, tmp_path, change, message):
    path = tmp_path / 'obs.npz'
    np.savez(path, **valid(**change))
    with pytest.raises(ObservationError, match=message):
        policy.predict(**load_observation(str(path)))


def test_nan_noise_and_empty_tokens_exit_2_end_to_end(capsys, tmp_path):
    """Once an all-NaN chunk and exit 0; now one line and exit 2, no chunk written."""
    for i, change in enumerate([{'noise': np.full((20, 32), np.nan, np.float32)},
                                {'tokens': np.zeros(0, np.int64), 'instruction': None}]):
        path = tmp_path / f'obs{i}.npz'
        np.savez(path, **valid(**change))
        code, err = run(capsys, CHECKPOINT, path, tmp_path / 'out.npz')
        assert code == 2 and len(err) == 2 and err[1].startswith('omegaq-predict: '), err
        assert not (tmp_path / 'out.npz').exists()


def test_a_checkpoint_that_puts_out_nan_exits_3_and_writes_nothing(capsys, tmp_path):
    """A NaN inside the weights: the observation is fine, the chunk is not; no file."""
    import shutil
    from safetensors.torch import load_file, save_file
    broken = tmp_path / 'checkpoint'
    shutil.copytree(CHECKPOINT, broken)
    tensors = load_file(str(broken / 'model.safetensors'))
    tensors['model.action_out_proj.bias'][3] = float('nan')
    save_file(tensors, str(broken / 'model.safetensors'))
    path = tmp_path / 'obs.npz'
    np.savez(path, **valid())
    code, err = run(capsys, str(broken), path, tmp_path / 'out.npz')
    assert code == 3 and 'returned NaN/inf actions' in err[-1], err
    assert not (tmp_path / 'out.npz').exists()


def test_manifest_that_is_a_json_list_exits_2(capsys, tmp_path):
    artifact = tmp_path / 'artifact'
    artifact.mkdir()
    (artifact / 'omegaq.json').write_text(json.dumps([1, 2]))
    path = tmp_path / 'obs.npz'
    np.savez(path, **valid())
    code, err = run(capsys, str(artifact), path, tmp_path / 'out.npz')
    assert code == 2 and 'expected a JSON object, got a JSON list' in err[-1], err


def test_the_command_itself_prints_no_traceback(tmp_path):
    (tmp_path / 'obs.npz').write_bytes(b'PK\x03\x04 not really a zip')
    result = subprocess.run([sys.executable, '-m', 'omegaq_ros.policy.predict_cli', '--policy',
                             CHECKPOINT, '--observation', str(tmp_path / 'obs.npz'), '--out',
                             str(tmp_path / 'out.npz')], capture_output=True, text=True)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().count('\n') == 0 and 'not a readable .npz' in result.stderr
