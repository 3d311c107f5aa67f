# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
MJCF of the bimanual ARX R5 scene, generated from the ARX R5 description.

Two 6-DoF arms face each other across a table along the world x axis (left arm at -x looking
+x, right arm at +x looking -x, as in the ARX/ALOHA bimanual kit); the table top is the plane
z = 0 and the operator stands at -y, where cam_high looks from. Each arm ends in a parallel
gripper: two slide fingers coupled by an equality constraint and driven by one position
actuator on the tendon that measures the opening (0 .. 80 mm). Actuators follow the 14-D
ALOHA order of arx_r5.JOINT_NAMES, so ctrl[i] belongs to action[i] (see env.py for the
gripper normalization).

Geometry is capsules and boxes (no meshes): renders fast on a CPU and needs no asset files.
Shadows, reflections and multi-sampling are off because they cost 5-10x on llvmpipe
(Mesa's CPU renderer).
"""

from dataclasses import dataclass
import math

import numpy as np
from omegaq_ros.robot import arx_r5

CAMERA_NAMES = arx_r5.CAMERA_NAMES
MAX_IMAGE_WIDTH, MAX_IMAGE_HEIGHT = 640, 480   # offscreen buffer; largest selectable size

TIMESTEP_S = 0.002
TABLE_HALF_SIZE = (0.60, 0.42, 0.02)           # the top surface is z = 0
ARM_BASE_X = 0.34                              # |x| of each arm base; bases face each other

# The R5a URDF rotates link3 and link6 by roll = pi about their parent's x axis (the menagerie
# arx_l5 model, same offsets, does too); arx_r5.JOINT_ORIGINS holds the translations only.
LINK_ROLL_PI = (False, False, True, False, False, True)

# Direction of each joint axis in its link frame. The axes are z, y, y, y, z, x
# (arx_r5.JOINT_AXES); joint2 turns about -y because the manual's range [-3.6, 0.1] lifts the
# upper arm off the table only in that sense: about +y, every angle in it points the upper arm
# below its mount.
JOINT_AXIS_SIGN = (1, -1, 1, 1, 1, 1)

# Actuation: position servos with the vendor's torque limits (arx5-sdk L5/R5 profile) and
# gravity compensation on the arm bodies, as the real controller compensates gravity too.
JOINT_KP = (300.0, 300.0, 300.0, 120.0, 60.0, 60.0)
JOINT_TORQUE_MAX = (30.0, 40.0, 30.0, 15.0, 10.0, 10.0)
JOINT_ARMATURE = 0.02
GRIPPER_KP = 500.0                             # N per m of opening error: ~20 N squeeze
GRIPPER_FORCE_MAX = 25.0
FINGER_TRAVEL_M = arx_r5.GRIPPER_STROKE_M / 2  # each finger moves half the stroke

# Gripper layout in the link6 frame (x points out of the flange, fingers slide along y).
PALM_CENTER_X, PALM_HALF_SIZE = 0.055, (0.030, 0.052, 0.018)
FINGER_BASE_X = 0.085
FINGER_PAD_HALF_SIZE = (0.025, 0.004, 0.011)
GRASP_SITE_X = FINGER_BASE_X + 1.2 * FINGER_PAD_HALF_SIZE[0]   # between the fingertips

# Ready pose of each arm (joint1..6): grasp site 0.25 m in front of the base, 0.15 m above the
# table, gripper 5 degrees off vertical (ArmIK solution; joint4 stays clear of its limit).
HOME_JOINTS = np.array([0.0, -1.4174, 1.1734, -1.2422, 0.0, 0.0])


@dataclass(frozen=True)
class BoxObject:
    """
    Describe one rigid box in the scene.

    A free box has a free joint (qpos: position, then quaternion w x y z); a fixed one is a
    static body that reset() can move through model.body_pos.
    """

    name: str
    half_size: tuple
    rgba: tuple
    mass: float = 0.05
    free: bool = True


@dataclass(frozen=True)
class BinObject:
    """Describe an open box (floor and four walls) that objects can be dropped into."""

    name: str
    inner_half_size: tuple = (0.065, 0.065)
    wall_height: float = 0.045
    wall_thickness: float = 0.008
    rgba: tuple = (0.35, 0.55, 0.85, 1.0)


def _vec(values) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _look_at_axes(position, target) -> str:
    """Return MJCF xyaxes for a camera at position looking at target with world z up."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _vec(np.concatenate([right, up]))


def _capsule_between(start, end, radius, rgba, name=None) -> str:
    label = f'name="{name}" ' if name else ''
    return (f'<geom {label}type="capsule" fromto="{_vec(start)} {_vec(end)}" size="{radius}" '
            f'rgba="{_vec(rgba)}" class="visual"/>')


def _arm_xml(arm: str, base_x: float, yaw: float) -> str:
    """Return the kinematic tree of one ARX R5 arm with its gripper and wrist camera."""
    dark, light = (0.18, 0.18, 0.2, 1.0), (0.75, 0.75, 0.78, 1.0)
    link_radius = (0.04, 0.035, 0.03, 0.028, 0.028, 0.026)
    half_yaw = yaw / 2
    xml = [f'<body name="{arm}_base" pos="{base_x} 0 0" '
           f'quat="{math.cos(half_yaw):.9f} 0 0 {math.sin(half_yaw):.9f}">',
           '<geom type="cylinder" size="0.05 0.028" pos="0 0 0.028" rgba="0.1 0.1 0.1 1" '
           'class="visual"/>']
    for index in range(6):
        origin = arx_r5.JOINT_ORIGINS[index]
        quat = ' quat="0 1 0 0"' if LINK_ROLL_PI[index] else ''
        axis = {'x': (1, 0, 0), 'y': (0, 1, 0), 'z': (0, 0, 1)}[arx_r5.JOINT_AXES[index]]
        axis = np.array(axis) * JOINT_AXIS_SIGN[index]
        low, high = arx_r5.JOINT_LIMITS[index]
        xml.append(f'<body name="{arm}_link{index + 1}" pos="{_vec(origin)}"{quat} '
                   f'gravcomp="1">')
        xml.append(f'<joint name="{arm}_joint{index + 1}" axis="{_vec(axis)}" '
                   f'range="{low} {high}" class="arm_joint"/>')
        mass = arx_r5.LINK_MASSES[index]
        xml.append(f'<inertial pos="0 0 0" mass="{mass}" '
                   f'diaginertia="{_vec([mass * 2e-3] * 3)}"/>')
        if index < 5:
            # The visual link runs from this joint to the next one.
            child = arx_r5.JOINT_ORIGINS[index + 1]
            xml.append(_capsule_between((0, 0, 0), child, link_radius[index],
                                        light if index % 2 else dark))
    xml += _gripper_xml(arm)
    xml += ['</body>'] * 7
    return '\n'.join(xml)


def _gripper_xml(arm: str) -> list:
    """Return the link6 content: palm, two coupled fingers, grasp site and wrist camera."""
    pad = FINGER_PAD_HALF_SIZE
    # The camera sits on a post above the finger roots, looking past them at what they hold.
    camera_pitch = 0.6                  # rad below the flange axis
    camera_axes = _vec((0, -1, 0, math.sin(camera_pitch), 0, math.cos(camera_pitch)))
    xml = [
        f'<geom name="{arm}_palm" type="box" pos="{PALM_CENTER_X} 0 0" '
        f'size="{_vec(PALM_HALF_SIZE)}" rgba="0.2 0.2 0.22 1" class="collision" mass="0.2"/>',
        '<geom type="box" pos="0.065 0 0.04" size="0.01 0.015 0.022" rgba="0.05 0.05 0.05 1" '
        'class="visual"/>',
        f'<camera name="cam_{arm}_wrist" pos="0.08 0 0.065" xyaxes="{camera_axes}" '
        'fovy="80"/>',
        f'<site name="{arm}_grasp" pos="{GRASP_SITE_X} 0 0" size="0.006" rgba="1 0 0 0.0"/>',
    ]
    for side, sign in (('a', 1), ('b', -1)):
        xml += [
            f'<body name="{arm}_finger_{side}" pos="{FINGER_BASE_X} 0 0" gravcomp="1">',
            f'<joint name="{arm}_finger_{side}" type="slide" axis="0 {sign} 0" '
            f'range="0 {FINGER_TRAVEL_M}" class="finger"/>',
            f'<geom name="{arm}_pad_{side}" type="box" pos="{pad[0]} {sign * pad[1]} 0" '
            f'size="{_vec(pad)}" rgba="0.85 0.45 0.1 1" class="pad" mass="0.03"/>',
            '</body>',
        ]
    return xml


def _object_xml(spec) -> str:
    if isinstance(spec, BinObject):
        inner_x, inner_y = spec.inner_half_size
        wall, half_height = spec.wall_thickness / 2, spec.wall_height / 2
        rgba = _vec(spec.rgba)
        parts = [f'<body name="{spec.name}" pos="0 0 0">',
                 f'<geom name="{spec.name}_floor" type="box" pos="0 0 {wall}" '
                 f'size="{inner_x + 2 * wall} {inner_y + 2 * wall} {wall}" rgba="{rgba}" '
                 'class="object"/>']
        for label, pos, size in (
                ('xn', (-inner_x - wall, 0), (wall, inner_y + 2 * wall)),
                ('xp', (inner_x + wall, 0), (wall, inner_y + 2 * wall)),
                ('yn', (0, -inner_y - wall), (inner_x, wall)),
                ('yp', (0, inner_y + wall), (inner_x, wall))):
            parts.append(f'<geom name="{spec.name}_wall_{label}" type="box" '
                         f'pos="{pos[0]} {pos[1]} {half_height}" '
                         f'size="{size[0]} {size[1]} {half_height}" rgba="{rgba}" '
                         'class="object"/>')
        return '\n'.join(parts + ['</body>'])
    joint = f'<freejoint name="{spec.name}"/>' if spec.free else ''
    return (f'<body name="{spec.name}" pos="0 0 {spec.half_size[2]}">{joint}'
            f'<geom name="{spec.name}" type="box" size="{_vec(spec.half_size)}" '
            f'rgba="{_vec(spec.rgba)}" mass="{spec.mass}" class="object"/></body>')


def _actuators_xml() -> list:
    """Return the position actuators in ALOHA order: six joints, then the gripper, per arm."""
    joint_actuators, gripper_actuators = {}, {}
    for arm in arx_r5.ARMS:
        joint_actuators[arm] = [
            f'<position name="{arm}_joint{i + 1}" joint="{arm}_joint{i + 1}" '
            f'kp="{JOINT_KP[i]}" dampratio="1" inheritrange="1" '
            f'forcerange="{-JOINT_TORQUE_MAX[i]} {JOINT_TORQUE_MAX[i]}"/>' for i in range(6)]
        gripper_actuators[arm] = (
            f'<position name="{arm}_gripper" tendon="{arm}_gripper_opening" kp="{GRIPPER_KP}" '
            f'dampratio="1" ctrlrange="0 {arx_r5.GRIPPER_STROKE_M}" '
            f'forcerange="{-GRIPPER_FORCE_MAX} {GRIPPER_FORCE_MAX}"/>')
    actuators = []
    for arm in arx_r5.ARMS:
        actuators += joint_actuators[arm] + [gripper_actuators[arm]]
    return actuators


def _gripper_coupling_xml():
    """
    Return (tendons, equalities, contact excludes) that make each gripper one actuated DOF.

    The two fingers are tied by an equality so one tendon (their summed opening) drives both,
    and neither finger collides with the other or with link6, which carries them.
    """
    tendons, equalities, excludes = [], [], []
    for arm in arx_r5.ARMS:
        tendons.append(f'<fixed name="{arm}_gripper_opening"><joint joint="{arm}_finger_a" '
                       f'coef="1"/><joint joint="{arm}_finger_b" coef="1"/></fixed>')
        equalities.append(f'<joint joint1="{arm}_finger_a" joint2="{arm}_finger_b" '
                          'polycoef="0 1 0 0 0" solref="0.005 1"/>')
        excludes += [f'<exclude body1="{arm}_finger_a" body2="{arm}_finger_b"/>',
                     f'<exclude body1="{arm}_link6" body2="{arm}_finger_a"/>',
                     f'<exclude body1="{arm}_link6" body2="{arm}_finger_b"/>']
    return tendons, equalities, excludes


def scene_xml(objects=()) -> str:
    """
    Return the MJCF text of the bimanual scene holding the given objects.

    objects: BoxObject / BinObject specs; their poses are set later by the task's reset.
    """
    camera_position = (0.0, -0.36, 0.58)
    high_axes = _look_at_axes(camera_position, (0.0, 0.0, 0.04))
    actuators = _actuators_xml()
    tendons, equalities, excludes = _gripper_coupling_xml()
    arms = [_arm_xml('left', -ARM_BASE_X, 0.0), _arm_xml('right', ARM_BASE_X, math.pi)]
    table = TABLE_HALF_SIZE
    return f"""<mujoco model="omegaq_bimanual_arx_r5">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{MAX_IMAGE_WIDTH}" offheight="{MAX_IMAGE_HEIGHT}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
  </visual>
  <default>
    <default class="visual">
      <geom contype="0" conaffinity="0" group="2" density="0"/>
    </default>
    <default class="collision">
      <geom contype="1" conaffinity="1" group="1" friction="1 0.005 0.0001"/>
    </default>
    <default class="pad">
      <geom contype="1" conaffinity="1" group="1" condim="4" friction="1.5 0.01 0.0001"
            solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>
    <default class="object">
      <geom contype="1" conaffinity="1" condim="4" friction="1 0.01 0.0001"/>
    </default>
    <default class="arm_joint">
      <joint armature="{JOINT_ARMATURE}" damping="0.5" frictionloss="0.05" solreflimit="0.004 1"/>
    </default>
    <default class="finger">
      <joint armature="0.01" damping="2"/>
    </default>
  </default>
  <asset>
    <material name="table" rgba="0.62 0.5 0.38 1" reflectance="0"/>
    <material name="floor" rgba="0.3 0.32 0.35 1" reflectance="0"/>
  </asset>
  <worldbody>
    <light name="top" pos="0 0 1.6" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.55 0.55 0.55"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" material="floor"
          contype="0" conaffinity="0"/>
    <geom name="table" type="box" pos="0 0 {-table[2]}" size="{_vec(table)}" material="table"
          contype="1" conaffinity="1" friction="1 0.005 0.0001"/>
    <camera name="cam_high" pos="{_vec(camera_position)}" xyaxes="{high_axes}" fovy="60"/>
    {chr(10).join(arms)}
    {chr(10).join(_object_xml(spec) for spec in objects)}
  </worldbody>
  <tendon>
    {chr(10).join(tendons)}
  </tendon>
  <equality>
    {chr(10).join(equalities)}
  </equality>
  <contact>
    {chr(10).join(excludes)}
  </contact>
  <actuator>
    {chr(10).join(actuators)}
  </actuator>
</mujoco>
"""
