# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Inverse kinematics of one ARX R5 arm on the MuJoCo model (damped least squares).

The task is five-dimensional plus a soft preference: the grasp site must reach a position and
the finger axis must be horizontal along world y (so the pads close on an object's y faces);
the gripper should point straight down, but only with a small weight, because the manual's
limits on joint3 (+-1.57) and joint4 (+-1.3) leave a strictly vertical gripper unreachable
at carrying height (0.15 m above the table, measured with this solver); a few degrees of
tilt about the finger axis reach it. The damped least-squares step
J^T (J J^T + lambda^2 I)^-1 e runs on a private MjData, so solving never disturbs the
simulation.
"""

import mujoco
import numpy as np

POSITION_WEIGHT = 1.0
FINGER_AXIS_WEIGHT = 1.0
POINT_DOWN_WEIGHT = 0.1
DAMPING = 1e-2


class ArmIK:
    """Solve joint1..6 of one arm for a grasp-site position with the fingers along world y."""

    def __init__(self, model: mujoco.MjModel, arm: str):
        self.model = model
        self.arm = arm
        self._data = mujoco.MjData(model)
        joint_ids = [model.joint(f'{arm}_joint{i}').id for i in range(1, 7)]
        self.qpos_index = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_index = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.lower, self.upper = model.jnt_range[joint_ids].T
        self.site_id = model.site(f'{arm}_grasp').id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def site_pose(self, joints: np.ndarray) -> tuple:
        """Return (position [3], rotation matrix [3, 3]) of the grasp site for joint1..6."""
        self._data.qpos[self.qpos_index] = joints
        mujoco.mj_kinematics(self.model, self._data)
        return (self._data.site_xpos[self.site_id].copy(),
                self._data.site_xmat[self.site_id].reshape(3, 3).copy())

    def solve(self, target_position, joints_start, iterations: int = 12,
              step: float = 1.0) -> np.ndarray:
        """
        Return joint1..6 that bring the grasp site toward target_position.

        Starts from joints_start (warm start: the previous tick's solution keeps the motion
        continuous) and clips to the joint limits after every step.
        """
        target = np.asarray(target_position, dtype=float)
        joints = np.clip(np.asarray(joints_start, dtype=float), self.lower, self.upper)
        weights = np.repeat([POSITION_WEIGHT, FINGER_AXIS_WEIGHT, POINT_DOWN_WEIGHT], 3)
        for _ in range(iterations):
            self._data.qpos[self.qpos_index] = joints
            mujoco.mj_kinematics(self.model, self._data)
            mujoco.mj_comPos(self.model, self._data)
            rotation = self._data.site_xmat[self.site_id].reshape(3, 3)
            finger_axis, pointing = rotation[:, 1], rotation[:, 0]
            # Either sign of the finger axis grips the same way; keep the nearer one.
            wanted_axis = np.array([0.0, np.sign(finger_axis[1]) or 1.0, 0.0])
            error = np.concatenate([
                target - self._data.site_xpos[self.site_id],
                np.cross(finger_axis, wanted_axis),
                np.cross(pointing, [0.0, 0.0, -1.0]),
            ]) * weights
            mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self.site_id)
            jac_r = self._jacr[:, self.dof_index]
            jacobian = np.vstack([self._jacp[:, self.dof_index], jac_r, jac_r]) * weights[:, None]
            gram = jacobian @ jacobian.T + DAMPING ** 2 * np.eye(9)
            joints = joints + step * (jacobian.T @ np.linalg.solve(gram, error))
            joints = np.clip(joints, self.lower, self.upper)
        return joints
