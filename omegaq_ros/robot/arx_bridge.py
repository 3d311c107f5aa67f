# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 bridge mapping: trajectories to vendor commands and vendor status to joint states.

Pure numpy, no ROS; nodes/arx_r5_bridge.py is the thin node around it. One bridge serves one
arm. Vendor facts (shared/reference/models.md section 4.2): the driver `R5Controller` takes
`arx5_arm_msg/RobotCmd{end_pos[6], joint_pos[6], gripper, mode}` (mode 5 = joint control,
gripper command 0 closed .. 5 open) and publishes `RobotStatus{joint_pos[7], joint_vel[7],
joint_cur[7]}` with index 6 = gripper. In the ALOHA follower mode the driver instead follows a
master's RobotStatus and commands its gripper with ``joint_pos[6] * 5``, so status gripper
readings are scaled by `gripper_status_scale` (default 5) into command units.

Trajectory execution follows JointTrajectoryController semantics: the chunk starts at its
header stamp; points whose time has already passed are skipped (the command moves from where
it is to the next future point); a chunk that ends in the past is dropped; a new chunk replaces
the current one. Commands are sampled at the control rate with linear interpolation, clipped to
the joint limits and rate-limited to the joint velocity limit.
"""

from typing import Optional, Tuple

import numpy as np
from omegaq_ros.robot import arx_r5

MODE_JOINT_CONTROL = 5
ARM_DOF = 7                                    # joint1..joint6 + gripper
DEFAULT_GRIPPER_STATUS_SCALE = 5.0             # ARX aloha_slave: gripper cmd = joint_pos[6] * 5


def _check_arm(arm: str) -> int:
    if arm not in arx_r5.ARMS:
        raise ValueError(f'arm: expected one of {list(arx_r5.ARMS)}, got {arm!r}')
    return arx_r5.ARMS.index(arm)


def arm_slice(arm: str) -> slice:
    """Return the slice of an arm's 7 values in the 14-D ALOHA vector."""
    start = ARM_DOF * _check_arm(arm)
    return slice(start, start + ARM_DOF)


def arm_joint_names(arm: str) -> Tuple[str, ...]:
    """Return the arm's 7 joint names in ALOHA order (joint1..joint6, gripper)."""
    return arx_r5.JOINT_NAMES[arm_slice(arm)]


def arm_limits(arm: str) -> np.ndarray:
    """Return the arm's [7, 2] limits; the gripper is normalized [0, 1]."""
    return arx_r5.limits_14d()[arm_slice(arm)]


def combine_arms(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Return the 14-D vector from the left and right arms' 7-D vectors."""
    return np.concatenate([np.asarray(left, float), np.asarray(right, float)])


def _check7(values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=float).reshape(-1)
    if values.size != ARM_DOF:
        raise ValueError(f'{what}: expected {ARM_DOF} values (joint1..6, gripper), '
                         f'got {values.size}')
    return values


def command_fields(positions: np.ndarray) -> dict:
    """Return RobotCmd fields (joint control, mode 5) for 7 positions [rad x6, gripper 0..1]."""
    positions = _check7(positions, 'command')
    if not np.all(np.isfinite(positions)):
        raise ValueError(f'command: expected finite positions, got {positions.tolist()}')
    return {
        'end_pos': [0.0] * 6,
        'joint_pos': positions[:6].tolist(),
        'gripper': float(arx_r5.gripper_to_command(positions[6])),
        'mode': MODE_JOINT_CONTROL,
    }


def master_status_joint_pos(positions: np.ndarray,
                            gripper_status_scale: float = DEFAULT_GRIPPER_STATUS_SCALE
                            ) -> np.ndarray:
    """Return RobotStatus joint_pos[7] for an ALOHA follower to track (gripper in status units)."""
    positions = _check7(positions, 'master status')
    out = positions.copy()
    out[6] = float(arx_r5.gripper_to_command(positions[6])) / gripper_status_scale
    return out


def status_to_positions(joint_pos: np.ndarray,
                        gripper_status_scale: float = DEFAULT_GRIPPER_STATUS_SCALE
                        ) -> np.ndarray:
    """Return 7 positions (gripper normalized 0 open .. 1 closed) from RobotStatus joint_pos."""
    joint_pos = _check7(joint_pos, 'RobotStatus joint_pos')
    out = joint_pos.copy()
    out[6] = float(arx_r5.command_to_gripper(joint_pos[6] * gripper_status_scale))
    return out


def status_to_velocities(joint_vel: np.ndarray,
                         gripper_status_scale: float = DEFAULT_GRIPPER_STATUS_SCALE
                         ) -> np.ndarray:
    """Return 7 velocities [rad/s x6, normalized gripper closure per s] from RobotStatus."""
    joint_vel = _check7(joint_vel, 'RobotStatus joint_vel')
    out = joint_vel.copy()
    out[6] = -joint_vel[6] * gripper_status_scale / arx_r5.GRIPPER_COMMAND_MAX
    return out


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
    knot_positions = np.vstack([_check7(current, 'current position'), positions[future]])
    return knot_times, knot_positions


def sample(knot_times: np.ndarray, knot_positions: np.ndarray, t: float) -> np.ndarray:
    """Return the linear interpolation of the knots at time t (held before/after the ends)."""
    return np.array([np.interp(t, knot_times, knot_positions[:, j])
                     for j in range(knot_positions.shape[1])])


def resample(stamp: float, times_from_start: np.ndarray, positions: np.ndarray, rate: float,
             initial: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return (times [N], positions [N, 7]) sampled at `rate` Hz from the header stamp to the end.

    `initial` is the position at the stamp (the knot before point 0).
    """
    if not rate > 0:
        raise ValueError(f'rate: expected > 0 Hz, got {rate}')
    knot_times, knot_positions = plan_knots(stamp, times_from_start, positions,
                                            now=stamp, current=initial)
    count = int(np.floor((knot_times[-1] - stamp) * rate + 1e-9)) + 1
    grid = stamp + np.arange(count) / rate
    return grid, np.stack([sample(knot_times, knot_positions, t) for t in grid])


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
