# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Scripted experts solve one episode of every task; success detectors are not trivially true."""

import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.expert import run_episode, ScriptedExpert
import pytest


@pytest.mark.parametrize('task', ['lift', 'bin', 'handover'])
def test_expert_solves_the_task_within_its_horizon(task):
    with BimanualEnv(task) as env:
        env.reset(seed=3, render=False)
        assert not env.success(), 'success must not hold before anything moved'
        assert run_episode(env, seed=3)
        assert env.step_count <= env.max_steps


@pytest.mark.parametrize('task', ['lift', 'bin', 'handover'])
def test_doing_nothing_fails(task):
    with BimanualEnv(task) as env:
        observation = env.reset(seed=3, render=False)
        for _ in range(40):
            env.step(observation.state)
        assert not env.success()


def test_expert_actions_are_joint_targets_within_limits():
    with BimanualEnv('bin') as env:
        env.reset(seed=4, render=False)
        expert = ScriptedExpert(env)
        expert.reset()
        actions = []
        while not expert.done:
            actions.append(expert.act())
            env.step(actions[-1])
    actions = np.stack(actions)
    assert actions.dtype == np.float32 and actions.shape[1] == 14
    assert expert.planned_steps == len(actions) <= env.max_steps
    limits = arx_r5.limits_14d()
    assert np.all(actions >= limits[:, 0]) and np.all(actions <= limits[:, 1])
    # Joint-position targets move smoothly: no jump larger than the 5 rad/s velocity limit.
    assert np.abs(np.diff(actions[:, :6], axis=0)).max() < arx_r5.JOINT_VELOCITY_MAX * 0.05
