# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 joint/command mapping: one arm's slice of the 14-D vector, vendor commands and status.

Pure numpy, no ROS; nodes/arx_r5_bridge.py is the thin node around it (one node per arm) and
robot/trajectory_follower.py decides which positions to command when. Vendor facts: the
driver `R5Controller` takes `arx5_arm_msg/RobotCmd{end_pos[6], joint_pos[6], gripper, mode}`
(mode 5 = joint control, gripper command 0 closed .. 5 open) and publishes
`RobotStatus{joint_pos[7], joint_vel[7], joint_cur[7]}` with index 6 = gripper. In the ALOHA
follower mode the driver instead follows a master's RobotStatus and commands its gripper with
``joint_pos[6] * 5``, so status gripper readings are scaled by `gripper_status_scale`
(default 5) into command units.
"""

from typing import Tuple

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


def arm_values(values, what: str) -> np.ndarray:
    """Return values as 7 floats (joint1..joint6, gripper), or raise ValueError saying why."""
    values = np.asarray(values, dtype=float).reshape(-1)
    if values.size != ARM_DOF:
        raise ValueError(f'{what}: expected {ARM_DOF} values (joint1..6, gripper), '
                         f'got {values.size}')
    return values


def command_fields(positions: np.ndarray) -> dict:
    """Return RobotCmd fields (joint control, mode 5) for 7 positions [rad x6, gripper 0..1]."""
    positions = arm_values(positions, 'command')
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
    positions = arm_values(positions, 'master status')
    out = positions.copy()
    out[6] = float(arx_r5.gripper_to_command(positions[6])) / gripper_status_scale
    return out


def status_to_positions(joint_pos: np.ndarray,
                        gripper_status_scale: float = DEFAULT_GRIPPER_STATUS_SCALE
                        ) -> np.ndarray:
    """Return 7 positions (gripper normalized 0 open .. 1 closed) from RobotStatus joint_pos."""
    joint_pos = arm_values(joint_pos, 'RobotStatus joint_pos')
    out = joint_pos.copy()
    out[6] = float(arx_r5.command_to_gripper(joint_pos[6] * gripper_status_scale))
    return out


def status_to_velocities(joint_vel: np.ndarray,
                         gripper_status_scale: float = DEFAULT_GRIPPER_STATUS_SCALE
                         ) -> np.ndarray:
    """Return 7 velocities [rad/s x6, normalized gripper closure per s] from RobotStatus."""
    joint_vel = arm_values(joint_vel, 'RobotStatus joint_vel')
    out = joint_vel.copy()
    out[6] = -joint_vel[6] * gripper_status_scale / arx_r5.GRIPPER_COMMAND_MAX
    return out
