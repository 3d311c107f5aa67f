# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Scene and environment of the MuJoCo bimanual simulation: cameras, limits, determinism."""

import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim import scene
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.expert import ScriptedExpert
import pytest


@pytest.fixture(scope='module')
def lift_env():
    with BimanualEnv('lift') as env:
        yield env


@pytest.mark.parametrize('image_size', [(224, 224), (480, 640)])
def test_cameras_have_robot_names_shapes_and_dtype(image_size):
    with BimanualEnv('bin', image_size=image_size) as env:
        observation = env.reset(seed=1)
    assert tuple(observation.images) == ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
    for name, image in observation.images.items():
        assert image.shape == (*image_size, 3), name
        assert image.dtype == np.uint8, name
        assert image.std() > 10, f'{name} looks blank'
    high, left, right = observation.images.values()
    assert np.abs(high.astype(int) - left).mean() > 10
    assert np.abs(left.astype(int) - right).mean() > 5


def test_rendering_is_lazy_and_state_is_float32(lift_env):
    observation = lift_env.reset(seed=0, render=False)
    assert observation.images is None
    assert observation.state.dtype == np.float32 and observation.state.shape == (14,)
    observation = lift_env.step(observation.state)
    assert observation.images is None
    assert observation.step == 1
    assert observation.stamp_ns == 50_000_000 and observation.time_s == pytest.approx(0.05)
    assert set(lift_env.observe().images) == set(scene.CAMERA_NAMES)


def test_scene_follows_the_arx_r5_description(lift_env):
    model = lift_env.model
    actuators = tuple(model.actuator(i).name for i in range(model.nu))
    assert actuators == arx_r5.JOINT_NAMES == lift_env.joint_names
    for arm in arx_r5.ARMS:
        for index in range(6):
            joint = model.joint(f'{arm}_joint{index + 1}')
            np.testing.assert_allclose(joint.range, arx_r5.JOINT_LIMITS[index])
            axis = {'x': 0, 'y': 1, 'z': 2}[arx_r5.JOINT_AXES[index]]
            assert abs(joint.axis[axis]) == 1.0 and np.sum(np.abs(joint.axis)) == 1.0
            np.testing.assert_allclose(model.body(f'{arm}_link{index + 1}').pos,
                                       arx_r5.JOINT_ORIGINS[index])
        opening = model.actuator(f'{arm}_gripper').ctrlrange
        np.testing.assert_allclose(opening, [0.0, arx_r5.GRIPPER_STROKE_M])


def test_joint_limits_hold_when_commanded_beyond_them(lift_env):
    lift_env.reset(seed=0, render=False)
    limits = arx_r5.limits_14d()
    rng = np.random.default_rng(7)
    beyond = np.where(rng.random(14) < 0.5, limits[:, 0] - 1.0, limits[:, 1] + 1.0)
    for _ in range(30):
        state = lift_env.step(beyond).state
        assert np.all(state >= limits[:, 0] - 0.02), state
        assert np.all(state <= limits[:, 1] + 0.02), state
    np.testing.assert_allclose(lift_env.last_action, np.clip(beyond, *limits.T), rtol=1e-6)


def test_gripper_normalization_matches_the_stroke(lift_env):
    observation = lift_env.reset(seed=0, render=False)
    action = observation.state.copy()
    for closure in (1.0, 0.5, 0.0):
        action[list(arx_r5.GRIPPER_INDICES)] = closure
        for _ in range(15):
            state = lift_env.step(action).state
        np.testing.assert_allclose(state[list(arx_r5.GRIPPER_INDICES)], closure, atol=0.02)


def test_invalid_actions_are_refused(lift_env):
    lift_env.reset(seed=0, render=False)
    with pytest.raises(ValueError, match='shape'):
        lift_env.step(np.zeros(7))
    with pytest.raises(ValueError, match='finite'):
        lift_env.step(np.full(14, np.nan))
    with pytest.raises(ValueError, match='image_size'):
        BimanualEnv('lift', image_size=(100, 100))
    with pytest.raises(ValueError, match='task'):
        BimanualEnv('stack')


def _rollout(task: str, seed: int, ticks: int) -> tuple:
    with BimanualEnv(task) as env:
        env.reset(seed, render=False)
        expert = ScriptedExpert(env)
        expert.reset()
        states = [env.step(expert.act()).state for _ in range(ticks)]
        return np.stack(states), env.data.qpos.copy(), env.layout


def test_same_seed_gives_the_same_episode():
    states_a, qpos_a, layout_a = _rollout('handover', seed=11, ticks=40)
    states_b, qpos_b, layout_b = _rollout('handover', seed=11, ticks=40)
    np.testing.assert_array_equal(states_a, states_b)
    np.testing.assert_array_equal(qpos_a, qpos_b)
    assert layout_a == layout_b
    _, qpos_c, layout_c = _rollout('handover', seed=12, ticks=40)
    assert layout_c != layout_a
    assert not np.array_equal(qpos_c, qpos_a)
