# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""JointTrajectoryController semantics: stamps, skipped and stale points, clipping, rate limits."""

from typing import Tuple

import numpy as np
from omegaq_ros.robot.trajectory_follower import plan_knots, sample, TrajectoryFollower
import pytest


def resample(stamp: float, times_from_start: np.ndarray, positions: np.ndarray, rate: float,
             initial: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    # The whole chunk as the follower would sample it when it arrives on time.
    knot_times, knot_positions = plan_knots(stamp, times_from_start, positions,
                                            now=stamp, current=initial)
    count = int(np.floor((knot_times[-1] - stamp) * rate + 1e-9)) + 1
    grid = stamp + np.arange(count) / rate
    return grid, np.stack([sample(knot_times, knot_positions, t) for t in grid])


def test_resample_at_control_rate_from_header_stamp():
    stamp, dt, rate = 10.0, 0.1, 50.0
    tfs = dt * np.arange(1, 4)
    positions = np.zeros((3, 7))
    positions[:, 0] = [1.0, 2.0, 2.0]
    times, samples = resample(stamp, tfs, positions, rate, initial=np.zeros(7))
    assert times[0] == stamp and times[-1] == pytest.approx(stamp + 0.3)
    np.testing.assert_allclose(np.diff(times), 1 / rate)
    assert samples.shape == (16, 7)
    expected = np.interp(times - stamp, [0, 0.1, 0.2, 0.3], [0, 1, 2, 2])
    np.testing.assert_allclose(samples[:, 0], expected, atol=1e-12)
    assert np.all(samples[:, 1:] == 0)


def test_plan_skips_elapsed_points_and_drops_past_chunks():
    tfs = np.array([0.1, 0.2, 0.3])
    positions = np.outer([1.0, 2.0, 3.0], np.ones(7))
    times, knots = plan_knots(10.0, tfs, positions, now=10.15, current=np.zeros(7))
    np.testing.assert_allclose(times, [10.15, 10.2, 10.3])
    np.testing.assert_allclose(knots[:, 0], [0.0, 2.0, 3.0])
    times, _ = plan_knots(10.0, tfs, positions, now=9.9, current=np.zeros(7))
    assert times[0] == 10.0                                 # starts at the stamp, not now
    with pytest.raises(ValueError, match='ends 50 ms in the past'):
        plan_knots(10.0, tfs, positions, now=10.35, current=np.zeros(7))
    with pytest.raises(ValueError, match='finite'):
        plan_knots(10.0, tfs, positions * np.nan, now=10.0, current=np.zeros(7))
    with pytest.raises(ValueError, match='increasing'):
        plan_knots(10.0, np.array([0.1, 0.1, 0.3]), positions, 10.0, np.zeros(7))


def test_follower_replaces_clips_and_rate_limits():
    follower = TrajectoryFollower('left', control_rate=100.0,
                                  max_joint_velocity=1.0, max_gripper_velocity=5.0)
    assert follower.command(0.0, np.zeros(7)) is None
    tfs = np.array([0.5, 1.0])
    target = np.zeros((2, 7))
    target[:, 0] = 0.5
    target[:, 1] = 1.0                    # joint2 upper limit is 0.1: clipped
    target[:, 6] = 2.0                    # gripper beyond 1: clipped
    assert follower.accept(0.0, tfs, target, now=0.0, measured=None) == \
        'no arm status received yet; chunk dropped'
    assert follower.accept(0.0, tfs, target, now=0.0, measured=np.zeros(7)) == ''
    commands = np.stack([follower.command(k / 100, np.zeros(7)) for k in range(1, 101)])
    assert np.all(np.abs(np.diff(commands[:, :6], axis=0)) <= 0.01 + 1e-12)
    assert commands[-1, 0] == pytest.approx(0.5)
    assert commands[:, 1].max() == pytest.approx(0.1)
    assert commands[-1, 6] == 1.0
    # a new chunk continues from the last command, not from the measured state
    reason = follower.accept(1.0, np.array([0.1]), np.zeros((1, 7)), now=1.0,
                             measured=np.full(7, 9.0))
    assert reason == ''
    first = follower.command(1.01, np.full(7, 9.0))
    assert first[0] == pytest.approx(0.5 - 0.01)
    # a stale chunk is dropped and the current one is kept
    assert 'in the past' in follower.accept(0.0, np.array([0.1]), np.ones((1, 7)), now=1.02,
                                            measured=None)
    assert follower.command(1.02, None)[0] == pytest.approx(0.5 - 0.02)
    follower.reset()
    assert follower.command(1.03, np.zeros(7)) is None
