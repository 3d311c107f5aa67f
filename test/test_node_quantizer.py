# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
quantizer_node and omegaq-quantize on real rosbag2 episodes written by the sim recorder.

Short scripted-expert episodes of the MuJoCo scene are written with the sim's
EpisodeBagWriter (MCAP). Both entry points must write an artifact that Pi05Policy loads as
W4A4, with its report checksummed inside; an unreadable bag, missing topics and too few
episodes must fail with a clear message and leave no output (nor a staging directory).
"""

import json
import os
import subprocess
import sys

import numpy as np
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.sim.bag import EpisodeBagWriter
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.expert import ScriptedExpert
import pytest

from test_node_support import ROOT, ros_env, shared_policy

TICKS = 8


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('quantizer')
    bags = root / 'bags'
    bags.mkdir()
    with BimanualEnv('lift') as env:
        for seed in (0, 1):
            observation = env.reset(seed, render=True)
            expert = ScriptedExpert(env)
            expert.reset()
            with EpisodeBagWriter(bags / f'lift_seed{seed:06d}') as bag:
                bag.write_instruction(env.instruction, stamp_ns=0)
                for _ in range(TICKS):
                    action = expert.act()
                    bag.write_tick(observation.stamp_ns, observation.images, observation.state,
                                   action)
                    observation = env.step(action, render=True)
                bag.write_episode_info({'task': 'lift', 'seed': seed, 'success': False},
                                       observation.stamp_ns)
    return str(root), str(bags), shared_policy()[0]


def _run(args, timeout=400):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ros_env(),
                          capture_output=True, text=True, timeout=timeout)


def _check_artifact(path, recipe):
    policy = Pi05Policy.load(path)
    assert policy.quantized
    manifest = json.load(open(os.path.join(path, 'omegaq.json')))
    assert manifest['recipe']['name'] == recipe
    assert manifest['calibration']['episodes'] == 2
    assert 'report.json' in manifest['files']
    report = json.load(open(os.path.join(path, 'report.json')))
    assert report['layers'] and report['totals']['output_cosine_mean'] > 0.5
    chunk = policy.predict([np.zeros((224, 224, 3), np.uint8)] * 3, np.zeros(14, np.float32),
                           'lift the red cube')
    assert np.all(np.isfinite(chunk))


def _nothing_left(parent, name):
    assert not os.path.exists(os.path.join(parent, name))
    assert not [n for n in os.listdir(parent) if n.startswith('.omegaq')]


def test_omegaq_quantize_cli_writes_a_loadable_artifact(setup):
    root, bags, checkpoint = setup
    output = os.path.join(root, 'cli_w4a4')
    result = _run(['-m', 'omegaq_ros.policy.quantize_cli', '--checkpoint', checkpoint,
                   '--calibration', bags, '--output', output, '--max-samples', '4'])
    assert result.returncode == 0, result.stderr
    assert 'read bag 2/2' in result.stdout + result.stderr
    _check_artifact(output, 'omega')


def test_quantizer_node_writes_a_loadable_artifact(setup):
    root, bags, checkpoint = setup
    output = os.path.join(root, 'node_rtn')
    result = _run(['-m', 'omegaq_ros.nodes.quantizer_node', '--ros-args',
                   '--params-file', os.path.join(ROOT, 'config', 'quantizer_node.yaml'),
                   '-p', f'checkpoint:={checkpoint}', '-p', f'calibration:={bags}',
                   '-p', f'output:={output}', '-p', 'recipe:=rtn', '-p', 'max_samples:=4'])
    assert result.returncode == 0, result.stderr
    assert 'done:' in result.stderr + result.stdout
    _check_artifact(output, 'rtn')


def test_refusals_leave_nothing_behind(setup, tmp_path):
    root, bags, checkpoint = setup
    broken = tmp_path / 'broken_bag'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not, a, bag')
    (broken / 'broken_bag_0.mcap').write_bytes(os.urandom(512))
    out = str(tmp_path / 'out')
    cases = [
        (['-m', 'omegaq_ros.policy.quantize_cli', '--checkpoint', checkpoint,
          '--calibration', str(broken), '--output', out], 'not a readable rosbag2'),
        (['-m', 'omegaq_ros.policy.quantize_cli', '--checkpoint', checkpoint,
          '--calibration', bags, '--output', out, '--min-episodes', '3'],
         'expected at least min_episodes=3 episode bags, found 2'),
        (['-m', 'omegaq_ros.policy.quantize_cli', '--checkpoint', checkpoint,
          '--calibration', bags, '--output', out, '--recipe', 'omega-group+act_clamp=mse'],
         "'act_clamp=mse' in 'omega-group+act_clamp=mse' is not FIELD=VALUE"),
        (['-m', 'omegaq_ros.nodes.quantizer_node', '--ros-args', '-p', f'checkpoint:={checkpoint}',
          '-p', f'calibration:={bags}', '-p', f'output:={out}',
          '-p', "camera_topics:=['/cam_high/image_raw', '/cam_left_wrist/image_raw', "
                "'/cam_top/image_raw']"], "missing topics ['/cam_top/image_raw']"),
    ]
    for args, message in cases:
        result = _run(args)
        assert result.returncode == 1, result.stderr
        assert message in result.stderr, result.stderr
        assert 'Traceback' not in result.stderr
        _nothing_left(str(tmp_path), 'out')
