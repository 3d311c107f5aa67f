# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The policy node runs a GR00T N1.5 artifact, over real DDS, as it runs pi0.5 ones.

A small GR00T (random weights, GrootConfig.small()) with its Eagle processor files is
quantized (rtn, quick) and given to policy_node as `artifact`; the registry picks the GR00T
runtime. This test process is the robot (test_node_policy_inputs.Robot): three cameras,
/joint_states, /instruction in; chunks must come out, stamped and within the joint limits.
"""

import os

import numpy as np
from omegaq_ros.policy.calibration import quantize_policy
from omegaq_ros.policy.groot_checkpoint import save_groot_checkpoint
from omegaq_ros.policy.groot_runtime import GrootPolicy
from omegaq_ros.policy.recipes import load_recipe
from omegaq_ros.robot import arx_r5

from test_groot_checkpoint import observation, small_model, write_eagle_files
from test_node_policy_inputs import (check_chunk, Robot, start_policy_node, stop, WAIT_S)
from test_node_support import ros_env


def test_policy_node_publishes_chunks_from_a_groot_artifact(tmp_path):
    limits = arx_r5.limits_14d()
    # Statistics spanning the middle of the joint ranges: random weights then give targets
    # the safety filter accepts.
    middle, half = limits.mean(axis=1), (limits[:, 1] - limits[:, 0]) * 0.05
    stats = {modality: {'joints': {'min': (middle - half).tolist(),
                                   'max': (middle + half).tolist()}}
             for modality in ('state', 'action')}
    model = small_model()
    checkpoint = save_groot_checkpoint(model, str(tmp_path / 'checkpoint'), stats)
    write_eagle_files(os.path.join(checkpoint, 'eagle'), model.config)
    policy = GrootPolicy.load(checkpoint)
    obs = observation(policy.config)
    batches = [policy.model_call(obs['images'], middle.astype(np.float32), 'lift the red cube',
                                 noise=obs['noise'])]
    artifact = str(tmp_path / 'w4a4')
    quantize_policy(policy, batches, load_recipe('rtn', 'groot'), artifact)
    env = ros_env()
    process = start_policy_node(artifact, env, str(tmp_path / 'policy_node.log'))
    robot = Robot(int(env['ROS_DOMAIN_ID']))
    try:
        assert robot.drive('good', WAIT_S, until_chunk=True), robot.messages()[-3:]
        check_chunk(robot.chunks[0], robot.stamps)
    finally:
        robot.close()
        code = stop(process)
    log = (tmp_path / 'policy_node.log').read_text()
    assert code == 0, log[-2000:]
    assert 'policy loaded (W4A4, horizon 16' in log


def test_bringup_drives_the_sim_with_a_groot_artifact(tmp_path):
    """omegaq-bringup with a GR00T artifact: the sim's arms execute its chunks over DDS."""
    import subprocess
    import sys
    from omegaq_ros.policy import train
    from omegaq_ros.policy.registry import load_policy
    from omegaq_ros.sim.env import BimanualEnv
    from test_node_sim_loop import EPISODE
    trained = str(tmp_path / 'train')
    assert train.main(['--out', trained, '--family', 'groot', '--tasks', 'lift',
                       '--episodes-per-task', '1', '--steps', '2', '--batch', '2',
                       '--device', 'cpu', '--workers', '1']) == 0
    policy = load_policy(os.path.join(trained, 'checkpoint'))
    with BimanualEnv('lift') as env:
        sample = env.reset(0, render=True)
    batches = [policy.model_call([sample.images[c] for c in policy.config.cameras],
                                 sample.state, sample.instruction)]
    artifact = str(tmp_path / 'w4a4')
    quantize_policy(policy, batches, load_recipe('rtn', 'groot'), artifact)
    result = subprocess.run(
        [sys.executable, '-m', 'omegaq_ros.nodes.bringup', 'sim', '--artifact', artifact,
         '--episodes', '1', '--task', 'lift', '--episode-length', '2.0',
         '--log-dir', str(tmp_path / 'logs'), '--timeout', '300'],
        env=ros_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    episodes = [m.groups() for m in EPISODE.finditer(result.stdout)]
    assert len(episodes) == 1 and int(episodes[0][3]) >= 1, result.stdout
    assert 'policy loaded (W4A4, horizon 16' in (tmp_path / 'logs' / 'policy_node.log').read_text()
