# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Scripted experts: grasp-site waypoints from the privileged layout, turned into joint targets.

Each arm follows a timeline of segments (duration, grasp-site position, gripper closure).
Within a segment the position moves along a smoothstep (zero velocity at both ends) and the
gripper closure moves linearly. Every control tick the expert solves ArmIK for the target at
the end of that tick, warm-started from its previous solution, and outputs the 14-D
joint-position action a policy would output. Plans are made once, at reset, from the initial
object positions; the grasps are firm enough that no re-planning is needed.
"""

from dataclasses import dataclass

import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim import scene
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.kinematics import ArmIK
from omegaq_ros.sim.tasks import BIN, BLOCK, CUBE

OPEN, CLOSED = 0.0, 1.0
GRASP_ABOVE_CENTER_M = 0.005     # site above the object's center: fingertips clear the table
APPROACH_HEIGHT_M = 0.11         # site height before descending onto an object
CARRY_HEIGHT_M = 0.15


@dataclass(frozen=True)
class Segment:
    """Move the grasp site to `position` and the gripper to `gripper` over `duration_s`."""

    duration_s: float
    position: tuple
    gripper: float


class Timeline:
    """Build and sample one arm's piecewise-smooth grasp-site and gripper trajectory."""

    def __init__(self, start_position, start_gripper: float = OPEN):
        self.start_position = np.asarray(start_position, dtype=float)
        self.start_gripper = float(start_gripper)
        self.segments = []

    @property
    def end_position(self) -> np.ndarray:
        """Return where the site is at the end of the last segment."""
        return np.asarray(self.segments[-1].position if self.segments else self.start_position)

    @property
    def end_gripper(self) -> float:
        """Return the gripper closure at the end of the last segment."""
        return self.segments[-1].gripper if self.segments else self.start_gripper

    @property
    def duration_s(self) -> float:
        """Return the total duration of the timeline."""
        return sum(segment.duration_s for segment in self.segments)

    def move(self, duration_s: float, position=None, gripper: float = None) -> 'Timeline':
        """Append a segment; an omitted position or gripper keeps its current value."""
        position = self.end_position if position is None else np.asarray(position, float)
        gripper = self.end_gripper if gripper is None else gripper
        self.segments.append(Segment(duration_s, tuple(position), float(gripper)))
        return self

    def wait_until(self, time_s: float) -> 'Timeline':
        """Hold still until time_s (no-op when the timeline already reaches it)."""
        if time_s > self.duration_s + 1e-9:
            self.move(time_s - self.duration_s)
        return self

    def sample(self, time_s: float) -> tuple:
        """Return (site position [3], gripper closure) at time_s; the end pose holds after."""
        position, gripper, start = self.start_position, self.start_gripper, 0.0
        for segment in self.segments:
            end = start + segment.duration_s
            if time_s < end:
                fraction = (time_s - start) / segment.duration_s
                smooth = fraction * fraction * (3.0 - 2.0 * fraction)
                target = np.asarray(segment.position)
                return (position + smooth * (target - position),
                        gripper + fraction * (segment.gripper - gripper))
            position, gripper, start = np.asarray(segment.position), segment.gripper, end
        return position, gripper


def _pick(timeline: Timeline, center, approach_s: float = 1.0) -> Timeline:
    """Append approach, descent, closing and lift for an object whose center is `center`."""
    x, y, z = center
    grasp_z = z + GRASP_ABOVE_CENTER_M
    return (timeline.move(approach_s, (x, y, APPROACH_HEIGHT_M), OPEN)
            .move(0.6, (x, y, grasp_z))
            .move(0.4, gripper=CLOSED)
            .move(0.2)
            .move(0.8, (x, y, CARRY_HEIGHT_M)))


class ScriptedExpert:
    """
    Drive a BimanualEnv through its task with inverse kinematics.

    Usage: obs = env.reset(seed); expert = ScriptedExpert(env); expert.reset();
    while not expert.done: obs = env.step(expert.act()).
    """

    settle_s = 0.3                  # hold the final pose so the objects come to rest

    def __init__(self, env: BimanualEnv):
        self.env = env
        self.ik = {arm: ArmIK(env.model, arm) for arm in arx_r5.ARMS}
        self.home_positions = {arm: self.ik[arm].site_pose(scene.HOME_JOINTS)[0]
                               for arm in arx_r5.ARMS}
        self.timelines = {}
        self._joints = {}
        self._tick = 0
        self._end_tick = 0

    def reset(self):
        """Plan the episode from the environment's current layout (call after env.reset)."""
        self.timelines = {arm: Timeline(self.home_positions[arm]) for arm in arx_r5.ARMS}
        planners = {'lift': self._plan_lift, 'bin': self._plan_bin,
                    'handover': self._plan_handover}
        planners[self.env.task.name]()
        duration = max(t.duration_s for t in self.timelines.values()) + self.settle_s
        self._end_tick = int(np.ceil(duration / self.env.control_period_s))
        self._joints = {arm: scene.HOME_JOINTS.copy() for arm in arx_r5.ARMS}
        self._tick = 0

    @property
    def done(self) -> bool:
        """Return whether the plan (plus settling) has been fully executed."""
        return self._tick >= self._end_tick

    @property
    def planned_steps(self) -> int:
        """Return the number of control ticks the plan takes."""
        return self._end_tick

    def act(self) -> np.ndarray:
        """Return the float32 [14] joint-position action for the next control tick."""
        time_s = (self._tick + 1) * self.env.control_period_s
        action = []
        for arm in arx_r5.ARMS:
            position, gripper = self.timelines[arm].sample(time_s)
            self._joints[arm] = self.ik[arm].solve(position, self._joints[arm])
            action += [*self._joints[arm], gripper]
        self._tick += 1
        return np.asarray(action, dtype=np.float32)

    def _plan_lift(self):
        arm = self.env.layout.arm
        _pick(self.timelines[arm], self.env.layout.positions[CUBE.name]).move(0.4)

    def _plan_bin(self):
        arm = self.env.layout.arm
        bin_x, bin_y, _ = self.env.layout.positions[BIN.name]
        drop_height = BIN.wall_height + 2 * CUBE.half_size[2] + 0.03
        (_pick(self.timelines[arm], self.env.layout.positions[CUBE.name])
         .move(1.0, (bin_x, bin_y, CARRY_HEIGHT_M))
         .move(0.4, (bin_x, bin_y, drop_height))
         .move(0.3, gripper=OPEN)
         .move(0.5, (bin_x, bin_y, CARRY_HEIGHT_M)))

    def _plan_handover(self):
        # The left gripper holds the block 4 cm left of its center, the right one takes it
        # 4 cm right of its center, above the table center; palms stay 4 cm apart.
        grip_offset = 0.04
        handover_z = 0.12
        left, right = self.timelines['left'], self.timelines['right']
        x, y, z = self.env.layout.positions[BLOCK.name]
        _pick(left, (x - grip_offset, y, z))
        left.move(1.0, (-grip_offset, y, handover_z))
        right.wait_until(left.duration_s - 1.0)
        right.move(1.0, (grip_offset, y, handover_z + 0.08))
        right.move(0.6, (grip_offset, y, handover_z))
        right.move(0.4, gripper=CLOSED).move(0.2)
        left.wait_until(right.duration_s)
        left.move(0.4, gripper=OPEN)
        left.move(0.8, (-grip_offset - 0.08, y, handover_z + 0.06))
        right.wait_until(left.duration_s - 0.8)
        right.move(0.8, (grip_offset + 0.08, y, handover_z + 0.03)).move(0.4)


def run_episode(env: BimanualEnv, seed: int, render: bool = False, on_tick=None) -> bool:
    """
    Run the expert for one seeded episode and return whether it succeeded at the end.

    on_tick(observation, action) is called once per control tick with the observation the
    action was computed from (images only when render is True).
    """
    observation = env.reset(seed, render=render)
    expert = ScriptedExpert(env)
    expert.reset()
    steps = min(expert.planned_steps, env.max_steps)
    for _ in range(steps):
        action = expert.act()
        if on_tick is not None:
            on_tick(observation, action)
        observation = env.step(action, render=render)
    return env.success()
