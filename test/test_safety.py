# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The safety filter between the policy and the robot."""

import os

import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.robot.safety import load_joint_limits, SafetyFilter
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = arx_r5.limits_14d()


def _state():
    state = LIMITS.mean(axis=1)
    state[[6, 13]] = 0.5
    return state


def test_small_chunk_passes_unchanged():
    state = _state()
    chunk = state + 0.01 * np.arange(1, 6)[:, None]
    out, report = SafetyFilter(max_delta=0.05)(chunk, state)
    np.testing.assert_array_equal(out, chunk)
    assert not report.refused and report.clipped == 0
    assert report.max_step == pytest.approx(0.01)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_is_refused(bad):
    chunk = np.tile(_state(), (4, 1))
    chunk[2, 9] = bad
    out, report = SafetyFilter()(chunk, _state())
    assert out is None and report.refused
    assert 'non-finite action: 1 values, first at step 2 joint 9' == report.reason


def test_non_finite_state_is_refused():
    state = _state()
    state[4] = np.nan
    out, report = SafetyFilter()(np.tile(_state(), (3, 1)), state)
    assert out is None and report.reason == 'non-finite joint state at indices [4]'


@pytest.mark.parametrize('chunk_shape, state_shape, reason', [
    ((3, 7), (14,), 'chunk shape: expected [H >= 1, 14], got [3, 7]'),
    ((0, 14), (14,), 'chunk shape: expected [H >= 1, 14], got [0, 14]'),
    ((3, 14), (7,), 'state shape: expected [14], got [7]'),
])
def test_wrong_shapes_are_refused(chunk_shape, state_shape, reason):
    out, report = SafetyFilter()(np.zeros(chunk_shape), np.zeros(state_shape))
    assert out is None and report.refused and report.reason == reason


def test_limits_and_gripper_range_are_clipped_and_counted():
    state = LIMITS[:, 1].copy()                 # at the upper limits, grippers closed
    chunk = np.tile(state, (3, 1))
    chunk[:, 0] += 0.3                          # left joint1 above its limit
    chunk[1, 6] = 1.7                           # left gripper above 1
    chunk[2, 13] = -0.2                         # right gripper below 0
    out, report = SafetyFilter(max_delta=1.0, max_gripper_delta=2.0)(chunk, state)
    assert report.limit_clips == 3 and report.gripper_clips == 2 and report.delta_clips == 0
    assert np.all(out <= LIMITS[:, 1]) and np.all(out >= LIMITS[:, 0])
    assert out[1, 6] == 1.0 and out[2, 13] == 0.0


def test_delta_cap_from_state_and_between_points():
    state = _state()
    chunk = np.tile(state, (4, 1))
    chunk[:, 2] += np.array([0.3, 0.3, 0.3, 0.3])       # jump away from the state
    chunk[:, 8] += np.array([0.0, 0.2, 0.0, 0.2])       # oscillation between points
    out, report = SafetyFilter(max_delta=0.1)(chunk, state)
    np.testing.assert_allclose(out[:, 2] - state[2], [0.1, 0.2, 0.3, 0.3])
    np.testing.assert_allclose(out[:, 8] - state[8], [0.0, 0.1, 0.0, 0.1])
    steps = np.abs(np.diff(np.vstack([state, out]), axis=0))
    assert steps.max() <= 0.1 + 1e-12
    assert report.delta_clips == 2 + 2
    assert report.max_step == pytest.approx(0.3)


def test_gripper_has_its_own_cap():
    state = _state()
    chunk = np.tile(state, (2, 1))
    chunk[:, 6] = 1.0
    out, _ = SafetyFilter(max_delta=0.01, max_gripper_delta=0.25)(chunk, state)
    np.testing.assert_allclose(out[:, 6], [0.75, 1.0])


def test_state_outside_limits_moves_inward_without_jump():
    state = _state()
    state[1] = LIMITS[1, 1] + 0.2               # joint2 0.2 rad past its upper limit
    chunk = np.tile(state, (3, 1))
    out, _ = SafetyFilter(max_delta=0.05)(chunk, state)
    np.testing.assert_allclose(out[:, 1], state[1] - 0.05 * np.arange(1, 4))


def test_invalid_configuration_raises():
    with pytest.raises(ValueError, match='max_delta > 0'):
        SafetyFilter(max_delta=0.0)
    with pytest.raises(ValueError, match='lower < upper'):
        SafetyFilter(limits=np.array([[1.0, 0.0]] * 14))


def test_committed_limits_file_matches_the_description():
    path = os.path.join(ROOT, 'config', 'arx_r5_joint_limits.yaml')
    np.testing.assert_array_equal(load_joint_limits(path), LIMITS)


def test_bad_limits_files_are_refused(tmp_path):
    path = tmp_path / 'limits.yaml'
    table = {name: [float(lo), float(hi)] for name, (lo, hi) in zip(arx_r5.JOINT_NAMES, LIMITS)}
    del table['right_joint3']
    table['elbow'] = [0.0, 1.0]
    import yaml
    path.write_text(yaml.safe_dump({'joint_limits': table}))
    with pytest.raises(ValueError, match=r"missing \['right_joint3'\], unknown \['elbow'\]"):
        load_joint_limits(str(path))
    table = {name: [float(lo), float(hi)] for name, (lo, hi) in zip(arx_r5.JOINT_NAMES, LIMITS)}
    table['left_joint2'] = [1.0, -1.0]
    path.write_text(yaml.safe_dump({'joint_limits': table}))
    with pytest.raises(ValueError, match='left_joint2: expected .* lower < upper'):
        load_joint_limits(str(path))
    path.write_text('just text')
    with pytest.raises(ValueError, match='expected a mapping'):
        load_joint_limits(str(path))
