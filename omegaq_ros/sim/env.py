# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Bimanual ARX R5 environment: 14-D joint-position actions in, observations out.

One control tick (step) holds the action as the actuator targets for CONTROL_PERIOD_S and
advances the physics by CONTROL_PERIOD_S / scene.TIMESTEP_S substeps (0.05 s = 25 steps of
2 ms: 20 Hz, cheap enough on a 2-core CPU). Actions and states use the ALOHA order of
arx_r5.JOINT_NAMES; the gripper entries are normalized (0 = open .. 1 = closed) and map
linearly to the 80 mm finger opening. Images are rendered only when asked for, because a
policy needs them once per action chunk while the physics runs every tick.
"""

from dataclasses import dataclass

import mujoco
import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim import scene
from omegaq_ros.sim.tasks import get_task, Layout

CONTROL_PERIOD_S = 0.05
IMAGE_SIZES = ((224, 224), (480, 640))          # (height, width) the cameras support


@dataclass
class Observation:
    """
    Hold what the robot would publish at one control tick.

    images: {camera name: uint8 [H, W, 3] RGB} or None when rendering was not requested.
    state: float32 [14] measured joint positions in ALOHA order, grippers normalized.
    time_s / stamp_ns: sim time of the tick (stamp_ns is exact: tick index x period).
    """

    images: dict
    state: np.ndarray
    instruction: str
    time_s: float
    stamp_ns: int
    step: int


class BimanualEnv:
    """
    Simulate one task of the bimanual ARX R5 scene.

    Usage: env = BimanualEnv('lift'); obs = env.reset(seed=0);
    obs = env.step(action14, render=True); env.success().
    """

    joint_names = arx_r5.JOINT_NAMES
    camera_names = scene.CAMERA_NAMES

    def __init__(self, task: str = 'lift', image_size=(224, 224),
                 control_period_s: float = CONTROL_PERIOD_S):
        image_size = tuple(int(v) for v in image_size)
        if image_size not in IMAGE_SIZES:
            raise ValueError(f'expected image_size (height, width) in {IMAGE_SIZES}, '
                             f'got {image_size}')
        substeps = control_period_s / scene.TIMESTEP_S
        if substeps < 1 or abs(substeps - round(substeps)) > 1e-9:
            raise ValueError(f'expected a control period that is a multiple of the '
                             f'{scene.TIMESTEP_S} s physics step, got {control_period_s} s')
        self.task = get_task(task)
        self.image_size = image_size
        self.control_period_s = control_period_s
        self.control_period_ns = int(round(control_period_s * 1e9))
        self.substeps = int(round(substeps))
        self.model = mujoco.MjModel.from_xml_string(scene.scene_xml(self.task.objects))
        self.data = mujoco.MjData(self.model)
        self._renderer = None
        self._limits = arx_r5.limits_14d()
        arm_joints = [[f'{arm}_joint{i}' for i in range(1, 7)] for arm in arx_r5.ARMS]
        self._arm_qpos = {arm: np.array([self.model.joint(name).qposadr[0] for name in names])
                          for arm, names in zip(arx_r5.ARMS, arm_joints)}
        self._finger_qpos = {arm: np.array([self.model.joint(f'{arm}_finger_{side}').qposadr[0]
                                            for side in ('a', 'b')]) for arm in arx_r5.ARMS}
        actuator_names = [self.model.actuator(i).name for i in range(self.model.nu)]
        if tuple(actuator_names) != self.joint_names:
            raise RuntimeError(f'expected actuators in ALOHA order {self.joint_names}, '
                               f'got {actuator_names}')
        self.layout = Layout()
        self.seed = None
        self.step_count = 0
        self.last_action = None

    @property
    def max_steps(self) -> int:
        """Return the number of control ticks after which an episode of this task is cut."""
        return self.task.max_steps

    @property
    def instruction(self) -> str:
        """Return the language instruction of the task."""
        return self.task.instruction

    def reset(self, seed: int, render: bool = True) -> Observation:
        """Place the arms at home and the objects where the seed puts them; observe."""
        self.seed = int(seed)
        self.layout = self.task.sample_layout(np.random.default_rng(self.seed))
        mujoco.mj_resetData(self.model, self.data)
        home = np.concatenate([scene.HOME_JOINTS, [0.0]] * 2)
        for name, position in self.layout.positions.items():
            joint_id = self.model.body(name).jntadr[0]
            if joint_id >= 0:            # free object: position, then identity quaternion
                address = self.model.jnt_qposadr[joint_id]
                self.data.qpos[address:address + 7] = [*position, 1.0, 0.0, 0.0, 0.0]
            else:                        # fixed object (the bin): move the static body
                self.model.body(name).pos = position
        self._write_joint_targets(home, qpos_too=True)
        mujoco.mj_forward(self.model, self.data)
        self.step_count = 0
        self.last_action = None
        return self.observe(render=render)

    def step(self, action, render: bool = False) -> Observation:
        """
        Apply one 14-D joint-position action for one control period and observe.

        The action is clipped to arx_r5.limits_14d(), as the arm stops at its limits anyway.
        """
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(self.joint_names),) or not np.all(np.isfinite(action)):
            raise ValueError(f'expected a finite action of shape ({len(self.joint_names)},) '
                             f'ordered {self.joint_names}, got shape {action.shape}: {action}')
        if self.seed is None:
            raise RuntimeError('expected reset(seed) before the first step')
        action = np.clip(action, self._limits[:, 0], self._limits[:, 1])
        self._write_joint_targets(action, qpos_too=False)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.step_count += 1
        self.last_action = action.astype(np.float32)
        return self.observe(render=render)

    def observe(self, render: bool = True) -> Observation:
        """Return the current observation; images only when render is True."""
        return Observation(
            images=self.render() if render else None,
            state=self.joint_state(),
            instruction=self.instruction,
            time_s=self.step_count * self.control_period_s,
            stamp_ns=self.step_count * self.control_period_ns,
            step=self.step_count)

    def joint_state(self) -> np.ndarray:
        """Return the measured float32 [14] joint positions, grippers normalized."""
        state = []
        for arm in arx_r5.ARMS:
            opening = float(np.sum(self.data.qpos[self._finger_qpos[arm]]))
            closure = np.clip(1.0 - opening / arx_r5.GRIPPER_STROKE_M, 0.0, 1.0)
            state += [*self.data.qpos[self._arm_qpos[arm]], closure]
        return np.asarray(state, dtype=np.float32)

    def render(self) -> dict:
        """Return {camera name: uint8 [H, W, 3] RGB} of the current state."""
        if self._renderer is None:
            height, width = self.image_size
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
            # Shadows and reflections cost 5-10x on llvmpipe.
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        images = {}
        for camera in self.camera_names:
            self._renderer.update_scene(self.data, camera=camera)
            images[camera] = self._renderer.render()
        return images

    def success(self) -> bool:
        """Return whether the task's success condition holds in the current state."""
        return self.task.success(self.model, self.data, self.layout)

    def close(self):
        """Release the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write_joint_targets(self, action: np.ndarray, qpos_too: bool):
        """Set actuator targets (and, at reset, the joint positions) from a 14-D action."""
        for arm_index, arm in enumerate(arx_r5.ARMS):
            offset = 7 * arm_index
            joints, closure = action[offset:offset + 6], action[offset + 6]
            opening = float(arx_r5.gripper_to_opening_m(closure))
            self.data.ctrl[offset:offset + 6] = joints
            self.data.ctrl[offset + 6] = opening
            if qpos_too:
                self.data.qpos[self._arm_qpos[arm]] = joints
                self.data.qpos[self._finger_qpos[arm]] = opening / 2
