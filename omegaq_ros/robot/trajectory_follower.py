# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Trajectory execution with JointTrajectoryController semantics, one arm at a time.

The chunk starts at its header stamp; points whose time has already passed are skipped (the
command moves from where it is to the next future point); a chunk that ends in the past is
dropped; a new chunk replaces the current one. Commands are sampled at the control rate with
linear interpolation, clipped to the joint limits and rate-limited to the joint velocity limit.
Pure numpy: the ARX R5 bridge node and the sim node both execute chunks through it.
"""

from typing import Optional, Tuple

import numpy as np
from omegaq_ros.robot.arx_r5_mapping import ARM_DOF, arm_limits, arm_values


def plan_knots(stamp: float, times_from_start: np.ndarray, positions: np.ndarray, now: float,
               current: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return (knot times [s], knot positions [K, 7]) to follow from `now`, or raise ValueError.

    The first knot holds `current` at max(stamp, now); the following knots are the points whose
    absolute time stamp + time_from_start lies after it. A chunk that ends at or before `now`
    raises ValueError (JTC drops it).
    """
    times = stamp + np.asarray(times_from_start, dtype=float)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape != (times.size, ARM_DOF) or times.size == 0:
        raise ValueError(f'trajectory: expected positions [H >= 1, {ARM_DOF}] matching '
                         f'{times.size} times, got {list(positions.shape)}')
    if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(times))):
        raise ValueError('trajectory: expected finite times and positions, got NaN or inf')
    if np.any(np.diff(times) <= 0.0):
        raise ValueError(f'trajectory: expected increasing times, got {times.tolist()}')
    if times[-1] <= now:
        raise ValueError(f'trajectory ends {(now - times[-1]) * 1e3:.0f} ms in the past; dropped')
    anchor = max(float(stamp), float(now))
    future = times > anchor
    knot_times = np.concatenate([[anchor], times[future]])
    knot_positions = np.vstack([arm_values(current, 'current position'), positions[future]])
    return knot_times, knot_positions


def sample(knot_times: np.ndarray, knot_positions: np.ndarray, t: float) -> np.ndarray:
    """Return the linear interpolation of the knots at time t (held before/after the ends)."""
    return np.array([np.interp(t, knot_times, knot_positions[:, j])
                     for j in range(knot_positions.shape[1])])


class TrajectoryFollower:
    """Stateful per-arm follower: accept chunks, produce one command per control tick."""

    def __init__(self, arm: str, control_rate: float, max_joint_velocity: float,
                 max_gripper_velocity: float):
        """Set the control rate [Hz] and the velocity limits [rad/s], [closure/s]."""
        if not (control_rate > 0 and max_joint_velocity > 0 and max_gripper_velocity > 0):
            raise ValueError('follower: expected control_rate, max_joint_velocity and '
                             f'max_gripper_velocity > 0, got {control_rate}, '
                             f'{max_joint_velocity}, {max_gripper_velocity}')
        self.arm = arm
        self.limits = arm_limits(arm)
        self.max_step = np.full(ARM_DOF, max_joint_velocity / control_rate)
        self.max_step[6] = max_gripper_velocity / control_rate
        self.knots: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.last_command: Optional[np.ndarray] = None

    def reset(self) -> None:
        """Drop the current trajectory and stop commanding."""
        self.knots, self.last_command = None, None

    def accept(self, stamp: float, times_from_start: np.ndarray, positions: np.ndarray,
               now: float, measured: Optional[np.ndarray]) -> str:
        """Replace the current trajectory; return '' or why the chunk was dropped."""
        current = self.last_command if self.last_command is not None else measured
        if current is None:
            return 'no arm status received yet; chunk dropped'
        if not np.all(np.isfinite(current)):
            return f'arm position is not finite ({np.asarray(current).tolist()}); chunk dropped'
        try:
            self.knots = plan_knots(stamp, times_from_start, positions, now, current)
        except ValueError as error:
            return str(error)
        return ''

    def command(self, now: float, measured: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Return the 7 positions to command now, or None when there is nothing to follow."""
        if self.knots is None:
            return None
        target = np.clip(sample(*self.knots, now), self.limits[:, 0], self.limits[:, 1])
        previous = self.last_command if self.last_command is not None else measured
        if previous is not None:
            target = previous + np.clip(target - previous, -self.max_step, self.max_step)
        self.last_command = target
        return target
