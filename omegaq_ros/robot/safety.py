# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Safety filter between the policy and the robot: pure numpy, no ROS.

Given an action chunk [H, 14] (ALOHA order, absolute joint targets, gripper 0 open .. 1 closed)
and the current joint state [14], the filter
  1. refuses (returns no chunk) on a wrong shape or any NaN/inf in the chunk or the state:
     a non-finite value never becomes a motion command;
  2. clips the grippers to [0, 1] and the arm joints to their limits (arx_r5.limits_14d);
  3. caps the change per step, from the current state to point 0 and between consecutive
     points (`max_delta` rad per step for arm joints, `max_gripper_delta` for grippers).
The cap is applied last, so no point ever jumps; a point can lie outside the limits only if
the current state itself does, and then it moves towards the limits by at most the cap.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from omegaq_ros.robot import arx_r5
import yaml


@dataclass
class SafetyReport:
    """What the filter did to one chunk."""

    refused: bool = False
    reason: str = ''
    limit_clips: int = 0          # arm-joint values moved onto a position limit
    gripper_clips: int = 0        # gripper values moved into [0, 1]
    delta_clips: int = 0          # values moved by the per-step delta cap
    max_step: float = 0.0         # largest requested |step| of an arm joint [rad]

    @property
    def clipped(self) -> int:
        """Return the number of values changed by any clip."""
        return self.limit_clips + self.gripper_clips + self.delta_clips


def load_joint_limits(path: str, joint_names: Sequence[str] = arx_r5.JOINT_NAMES) -> np.ndarray:
    """
    Return [N, 2] limits read from a YAML file ``joint_limits: {name: [lower, upper], ...}``.

    Every joint must be listed exactly once with finite lower < upper; anything else raises
    ValueError naming what is wrong.
    """
    with open(path) as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict) or not isinstance(data.get('joint_limits'), dict):
        raise ValueError(f'{path}: expected a mapping joint_limits: {{name: [lower, upper]}}')
    table = data['joint_limits']
    missing = [name for name in joint_names if name not in table]
    unknown = [name for name in table if name not in joint_names]
    if missing or unknown:
        raise ValueError(f'{path}: expected limits for {list(joint_names)}; missing {missing}, '
                         f'unknown {unknown}')
    limits = np.zeros((len(joint_names), 2))
    for i, name in enumerate(joint_names):
        pair = table[name]
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if ok:
            try:
                limits[i] = [float(pair[0]), float(pair[1])]
            except (TypeError, ValueError):
                ok = False
        if not ok or not np.all(np.isfinite(limits[i])) or limits[i, 0] >= limits[i, 1]:
            raise ValueError(f'{path}: {name}: expected [lower, upper] with finite lower < upper,'
                             f' got {pair!r}')
    return limits


class SafetyFilter:
    """Joint limits, gripper range, per-step delta cap; refuse on anything non-finite."""

    def __init__(self, max_delta: float = 0.05, max_gripper_delta: float = 1.0,
                 limits: Optional[np.ndarray] = None,
                 gripper_indices: Sequence[int] = arx_r5.GRIPPER_INDICES):
        """Set the caps (per step) and the [14, 2] limits (default: the ARX R5 ones)."""
        self.limits = np.array(arx_r5.limits_14d() if limits is None else limits, dtype=float)
        dim = self.limits.shape[0]
        if (self.limits.ndim != 2 or self.limits.shape[1] != 2
                or not np.all(np.isfinite(self.limits))
                or np.any(self.limits[:, 0] >= self.limits[:, 1])):
            raise ValueError(f'safety filter: expected [N, 2] finite limits with lower < upper, '
                             f'got {self.limits.tolist()}')
        if not (np.isfinite(max_delta) and max_delta > 0
                and np.isfinite(max_gripper_delta) and max_gripper_delta > 0):
            raise ValueError(f'safety filter: expected max_delta > 0 and max_gripper_delta > 0, '
                             f'got {max_delta}, {max_gripper_delta}')
        self.gripper = np.zeros(dim, dtype=bool)
        self.gripper[list(gripper_indices)] = True
        self.cap = np.where(self.gripper, float(max_gripper_delta), float(max_delta))

    def __call__(self, chunk: np.ndarray, state: np.ndarray):
        """Return (filtered chunk [H, N] or None when refused, SafetyReport)."""
        report = SafetyReport()
        dim = self.limits.shape[0]
        chunk = np.asarray(chunk, dtype=float)
        state = np.asarray(state, dtype=float)
        if chunk.ndim != 2 or chunk.shape[1] != dim or chunk.shape[0] == 0:
            return self._refuse(report, f'chunk shape: expected [H >= 1, {dim}], '
                                        f'got {list(chunk.shape)}')
        if state.shape != (dim,):
            return self._refuse(report, f'state shape: expected [{dim}], got {list(state.shape)}')
        if not np.all(np.isfinite(state)):
            bad = np.flatnonzero(~np.isfinite(state)).tolist()
            return self._refuse(report, f'non-finite joint state at indices {bad}')
        if not np.all(np.isfinite(chunk)):
            steps, joints = np.nonzero(~np.isfinite(chunk))
            return self._refuse(report, f'non-finite action: {steps.size} values, first at step '
                                        f'{int(steps[0])} joint {int(joints[0])}')
        lower, upper = self.limits[:, 0], self.limits[:, 1]
        clipped = np.clip(chunk, lower, upper)
        changed = clipped != chunk
        report.gripper_clips = int(np.count_nonzero(changed[:, self.gripper]))
        report.limit_clips = int(np.count_nonzero(changed[:, ~self.gripper]))
        requested = np.diff(np.vstack([state, clipped]), axis=0)
        report.max_step = float(np.max(np.abs(requested[:, ~self.gripper]), initial=0.0))
        out = np.empty_like(clipped)
        previous = state
        for k in range(clipped.shape[0]):
            step = clipped[k] - previous
            over = np.abs(step) > self.cap + 1e-12     # ignore float rounding of the cap
            out[k] = np.where(over, previous + np.sign(step) * self.cap, clipped[k])
            report.delta_clips += int(np.count_nonzero(over))
            previous = out[k]
        return out, report

    @staticmethod
    def _refuse(report: SafetyReport, reason: str):
        report.refused, report.reason = True, reason
        return None, report
