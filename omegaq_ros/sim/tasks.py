# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Bimanual tasks: objects, language instruction, seeded initial layout and success detector.

Horizons grow from lift (one arm, one grasp) over bin (grasp, carry, release) to handover
(both arms, two grasps and a release). Object yaw is fixed at 0 and positions are drawn from
boxes sized so that a small policy trained on CPU can learn them (with yaw
randomization the same task was nearly unlearnable in 15 CPU-minutes of training).
Every position lies in the reach of the arm that must act: about 0.2-0.35 m in front of its
base, the region where the ARX R5 joint limits allow a near-vertical gripper.
"""

import abc
from dataclasses import dataclass, field

import mujoco
import numpy as np
from omegaq_ros.sim.scene import ARM_BASE_X, BinObject, BoxObject

CUBE = BoxObject('cube', half_size=(0.02, 0.02, 0.02), rgba=(0.85, 0.15, 0.12, 1.0), mass=0.05)
BLOCK = BoxObject('block', half_size=(0.07, 0.0175, 0.0175), rgba=(0.15, 0.7, 0.25, 1.0),
                  mass=0.06)
BIN = BinObject('bin')


@dataclass
class Layout:
    """
    Hold one episode's initial scene, drawn from the seed.

    positions: object name -> xyz of its body (free objects and the fixed bin).
    arm: the arm that handles the object first ('left' or 'right').
    """

    positions: dict = field(default_factory=dict)
    arm: str = 'left'


def pad_geoms(model: mujoco.MjModel, arm: str) -> set:
    """Return the geom ids of the two finger pads of one arm."""
    return {model.geom(f'{arm}_pad_{side}').id for side in ('a', 'b')}


def touching(model: mujoco.MjModel, data: mujoco.MjData, geom_name: str, others: set) -> set:
    """Return the ids in `others` that are in contact with geom `geom_name` right now."""
    geom_id = model.geom(geom_name).id
    found = set()
    for contact in data.contact[:data.ncon]:
        pair = (int(contact.geom1), int(contact.geom2))
        if geom_id in pair:
            other = pair[1] if pair[0] == geom_id else pair[0]
            if other in others:
                found.add(other)
    return found


class Task(abc.ABC):
    """Describe a task; subclasses define the layout sampler and the success detector."""

    name = ''
    instruction = ''
    max_steps = 0                   # control ticks before an episode is cut off
    objects = ()

    @abc.abstractmethod
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """Return the initial object positions for one episode."""

    @abc.abstractmethod
    def success(self, model: mujoco.MjModel, data: mujoco.MjData, layout: Layout) -> bool:
        """Return whether the current state satisfies the instruction."""


def _side_x(rng, side: str, near: float, far: float) -> float:
    """Draw x for an object `near`..`far` m from the table center on the given arm's side."""
    sign = -1.0 if side == 'left' else 1.0
    return sign * rng.uniform(near, far)


class LiftTask(Task):
    """Lift the cube with the arm on its side."""

    name = 'lift'
    instruction = 'lift the red cube'
    max_steps = 100
    objects = (CUBE,)
    lift_height_m = 0.08            # the cube's center must rise 6 cm above its resting height

    def sample_layout(self, rng):
        """Return a layout with the cube on a random side, 0.20-0.29 m from that arm."""
        arm = ('left', 'right')[rng.integers(2)]
        position = (_side_x(rng, arm, ARM_BASE_X - 0.29, ARM_BASE_X - 0.20),
                    rng.uniform(-0.10, 0.10), CUBE.half_size[2])
        return Layout(positions={CUBE.name: position}, arm=arm)

    def success(self, model, data, layout):
        """Return whether the cube's center is at least lift_height_m above the table."""
        return bool(data.body(CUBE.name).xpos[2] >= self.lift_height_m)


class BinTask(Task):
    """Put the cube into the bin with the arm on the cube's side."""

    name = 'bin'
    instruction = 'put the red cube in the blue bin'
    max_steps = 160
    objects = (CUBE, BIN)

    def sample_layout(self, rng):
        """Return a layout with cube and bin on the same side, the bin behind the cube."""
        arm = ('left', 'right')[rng.integers(2)]
        cube = (_side_x(rng, arm, ARM_BASE_X - 0.28, ARM_BASE_X - 0.20),
                rng.uniform(-0.13, -0.05), CUBE.half_size[2])
        bin_position = (_side_x(rng, arm, ARM_BASE_X - 0.30, ARM_BASE_X - 0.22),
                        rng.uniform(0.08, 0.12), 0.0)
        return Layout(positions={CUBE.name: cube, BIN.name: bin_position}, arm=arm)

    def success(self, model, data, layout):
        """Return whether the cube rests inside the bin's walls and no finger touches it."""
        offset = data.body(CUBE.name).xpos - data.body(BIN.name).xpos
        inside = (abs(offset[0]) <= BIN.inner_half_size[0]
                  and abs(offset[1]) <= BIN.inner_half_size[1]
                  and offset[2] <= BIN.wall_height)
        pads = pad_geoms(model, 'left') | pad_geoms(model, 'right')
        return bool(inside and not touching(model, data, CUBE.name, pads))


class HandoverTask(Task):
    """Hand the block from the left gripper to the right gripper."""

    name = 'handover'
    instruction = 'hand the green block from the left arm to the right arm'
    max_steps = 220
    objects = (BLOCK,)
    lifted_height_m = 0.06          # block center; it rests at 0.0175

    def sample_layout(self, rng):
        """Return a layout with the block lying along x on the left arm's side."""
        position = (_side_x(rng, 'left', 0.04, 0.10), rng.uniform(-0.06, 0.06),
                    BLOCK.half_size[2])
        return Layout(positions={BLOCK.name: position}, arm='left')

    def success(self, model, data, layout):
        """Return whether both right pads hold the lifted block and no left pad touches it."""
        right = touching(model, data, BLOCK.name, pad_geoms(model, 'right'))
        left = touching(model, data, BLOCK.name, pad_geoms(model, 'left'))
        lifted = data.body(BLOCK.name).xpos[2] >= self.lifted_height_m
        return bool(lifted and len(right) == 2 and not left)


TASKS = {task.name: task for task in (LiftTask(), BinTask(), HandoverTask())}


def get_task(name: str) -> Task:
    """Return the task registered under name."""
    if name not in TASKS:
        raise ValueError(f'expected a task in {sorted(TASKS)}, got {name!r}')
    return TASKS[name]
