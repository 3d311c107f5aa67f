# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 dual-arm description shared by the sim, the safety filter and the bridge.

Sources: joint axes and link offsets from ARX_Model
R5a.urdf; joint limits from the ARX R5 manual; gripper command 0..5 <-> 0..80 mm stroke, and
the ALOHA/openpi 14-D convention (left joint1..6, left gripper, right joint1..6, right
gripper) with the gripper normalized 0 = open ... 1 = closed.
"""

import numpy as np

ARMS = ('left', 'right')
ARM_JOINTS = tuple(f'joint{i}' for i in range(1, 7))
JOINT_AXES = ('z', 'y', 'y', 'y', 'z', 'x')

# Joint origins in the parent link frame [m] (R5a.urdf), joint1..joint6.
JOINT_ORIGINS = (
    (0.0, 0.0, 0.0565),
    (0.02, 0.0, 0.047),
    (-0.264, 0.0, 0.0),
    (0.245, -5e-5, -0.06),
    (0.073914, 5e-5, -0.083391),
    (0.025286, 0.0, 0.083391),
)
LINK_MASSES = (0.096804, 1.1988, 0.84082, 0.12432, 0.63601, 0.44089)   # link1..link6 [kg]

# Joint position limits [rad] from the ARX R5 manual; the arm stops when one is exceeded.
JOINT_LIMITS = np.array([
    (-3.14, 2.6),
    (-3.6, 0.1),
    (-1.57, 1.57),
    (-1.3, 1.3),
    (-1.57, 1.57),
    (-2.1, 2.1),
])
JOINT_VELOCITY_MAX = 5.0                       # rad/s (arx5-sdk L5/R5 profile)

GRIPPER_STROKE_M = 0.080                       # total opening at command 5
GRIPPER_COMMAND_MAX = 5.0                      # vendor command units: 0 closed .. 5 open


def joint_names(prefix_format: str = '{arm}_{joint}') -> list:
    """Return the 14 joint names in ALOHA order (left_joint1 .. left_gripper .. right_gripper)."""
    names = []
    for arm in ARMS:
        names += [prefix_format.format(arm=arm, joint=j) for j in ARM_JOINTS]
        names.append(prefix_format.format(arm=arm, joint='gripper'))
    return names


JOINT_NAMES = tuple(joint_names())
ACTION_DIM = len(JOINT_NAMES)                  # 14
GRIPPER_INDICES = (6, 13)
# The ALOHA-style camera set: one overhead, one per wrist (topics: omegaq_ros/topics.py).
CAMERA_NAMES = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')


def limits_14d() -> np.ndarray:
    """Return [14, 2] position limits in ALOHA order; the gripper is normalized to [0, 1]."""
    arm = np.vstack([JOINT_LIMITS, [[0.0, 1.0]]])
    return np.vstack([arm, arm])


def gripper_to_command(normalized):
    """Map normalized gripper closure (0 open .. 1 closed) to the vendor command (5 .. 0)."""
    return GRIPPER_COMMAND_MAX * (1.0 - np.clip(normalized, 0.0, 1.0))


def command_to_gripper(command):
    """Map the vendor gripper reading/command (0 closed .. 5 open) to 0 open .. 1 closed."""
    return np.clip(1.0 - np.asarray(command, dtype=float) / GRIPPER_COMMAND_MAX, 0.0, 1.0)


def gripper_to_opening_m(normalized):
    """Map normalized gripper closure to the finger opening in meters (0.08 open .. 0)."""
    return GRIPPER_STROKE_M * (1.0 - np.clip(normalized, 0.0, 1.0))
