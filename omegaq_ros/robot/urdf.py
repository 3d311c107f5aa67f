# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Generate the bimanual ARX R5 URDF (with Gazebo sensors and controllers) from arx_r5.py.

The same joint names, axes, origins, limits and link masses as the MuJoCo scene, so Gazebo
users get the 14-D ALOHA interface of the real robot: joints left_joint1..6, left_gripper,
right_joint1..6, right_gripper on /joint_states, JointTrajectory chunks on /action_chunk, and
cameras cam_high, cam_left_wrist, cam_right_wrist. Geometry is primitive (cylinders, boxes; no
meshes). The gripper joint is a virtual revolute joint in [0, 1] (0 open .. 1 closed) that
two prismatic fingers mimic, so the state and command units equal the real robot's.

    omegaq-arx-r5-urdf --output urdf/arx_r5_bimanual.urdf    # regenerate the committed file
"""

import argparse
import math
import xml.etree.ElementTree as ET

import numpy as np
from omegaq_ros import topics
from omegaq_ros.robot import arx_r5

ROBOT_NAME = 'arx_r5_bimanual'
ARM_BASE_X = {'left': -0.28, 'right': 0.28}      # same placement as the MuJoCo scene
BASE_MASS = 0.42272                              # R5a.urdf base_link [kg]
JOINT_EFFORT = (30.0, 40.0, 30.0, 15.0, 10.0, 10.0)   # N m, arx5-sdk L5 profile (R5 compatible)
LINK_RADIUS = 0.03
FINGER_OFFSET = 0.09                             # from link6 along the tool (x) axis [m]
FINGER_MASS = 0.0648
CAMERAS = {                                      # name: (parent link, xyz, rpy)
    'cam_high': ('world', (0.0, -0.35, 0.75), (0.0, 0.9, math.pi / 2)),
    'cam_left_wrist': ('left_link6', (0.05, 0.0, 0.05), (0.0, 0.4, 0.0)),
    'cam_right_wrist': ('right_link6', (0.05, 0.0, 0.05), (0.0, 0.4, 0.0)),
}
CAMERA_SIZE = (640, 480)
# Gazebo transport names are fully qualified; ros_gz_bridge maps them to our relative names.
CONTROL_TOPIC = topics.absolute(topics.ACTION_CHUNK)
JOINT_STATE_TOPIC = topics.absolute(topics.JOINT_STATES)
AXIS = {'x': '1 0 0', 'y': '0 1 0', 'z': '0 0 1'}


def _fmt(values) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def _sub(parent, tag, **attrs):
    return ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})


def _inertial(link, mass, length, radius=LINK_RADIUS):
    inertial = _sub(link, 'inertial')
    _sub(inertial, 'mass', value=f'{mass:.6g}')
    side = (3 * radius ** 2 + max(length, 2 * radius) ** 2) * mass / 12   # solid cylinder
    axial = mass * radius ** 2 / 2
    _sub(inertial, 'inertia', ixx=f'{side:.6g}', iyy=f'{side:.6g}', izz=f'{axial:.6g}',
         ixy=0, ixz=0, iyz=0)


def _segment(link, vector, radius=LINK_RADIUS):
    """Add visual + collision cylinders from the link origin along `vector`."""
    vector = np.asarray(vector, dtype=float)
    length = float(np.linalg.norm(vector))
    if length < 1e-6:
        return
    yaw = math.atan2(vector[1], vector[0])
    pitch = math.atan2(math.hypot(vector[0], vector[1]), vector[2])
    for tag in ('visual', 'collision'):
        element = _sub(link, tag)
        _sub(element, 'origin', xyz=_fmt(vector / 2), rpy=_fmt((0.0, pitch, yaw)))
        geometry = _sub(element, 'geometry')
        _sub(geometry, 'cylinder', radius=f'{radius:.6g}', length=f'{length:.6g}')


def _joint(robot, name, kind, parent, child, xyz=(0, 0, 0), rpy=(0, 0, 0), axis=None,
           limits=None):
    joint = _sub(robot, 'joint', name=name, type=kind)
    _sub(joint, 'parent', link=parent)
    _sub(joint, 'child', link=child)
    _sub(joint, 'origin', xyz=_fmt(xyz), rpy=_fmt(rpy))
    if axis is not None:
        _sub(joint, 'axis', xyz=axis)
    if limits is not None:
        lower, upper, effort, velocity = limits
        _sub(joint, 'limit', lower=f'{lower:.6g}', upper=f'{upper:.6g}',
             effort=f'{effort:.6g}', velocity=f'{velocity:.6g}')
    return joint


def _arm(robot, arm):
    base = f'{arm}_base_link'
    link = _sub(robot, 'link', name=base)
    _inertial(link, BASE_MASS, arx_r5.JOINT_ORIGINS[0][2])
    _segment(link, arx_r5.JOINT_ORIGINS[0])
    _joint(robot, f'{arm}_base_joint', 'fixed', 'world', base, xyz=(ARM_BASE_X[arm], 0, 0))
    parent = base
    for i in range(6):
        child = f'{arm}_link{i + 1}'
        following = arx_r5.JOINT_ORIGINS[i + 1] if i < 5 else (FINGER_OFFSET, 0.0, 0.0)
        link = _sub(robot, 'link', name=child)
        _inertial(link, arx_r5.LINK_MASSES[i], float(np.linalg.norm(following)))
        _segment(link, following)
        lower, upper = arx_r5.JOINT_LIMITS[i]
        _joint(robot, f'{arm}_joint{i + 1}', 'revolute', parent, child,
               xyz=arx_r5.JOINT_ORIGINS[i], axis=AXIS[arx_r5.JOINT_AXES[i]],
               limits=(lower, upper, JOINT_EFFORT[i], arx_r5.JOINT_VELOCITY_MAX))
        parent = child
    # Virtual gripper joint in normalized units, fingers mimic it (open 0 .. closed 1).
    hub = f'{arm}_gripper_link'
    link = _sub(robot, 'link', name=hub)
    _inertial(link, 0.01, 0.01, radius=0.01)
    _joint(robot, f'{arm}_gripper', 'revolute', parent, hub, xyz=(FINGER_OFFSET, 0, 0),
           axis=AXIS['x'], limits=(0.0, 1.0, 10.0, 5.0))
    half = arx_r5.GRIPPER_STROKE_M / 2
    for side, sign in (('a', 1.0), ('b', -1.0)):
        finger = f'{arm}_finger_{side}'
        link = _sub(robot, 'link', name=finger)
        _inertial(link, FINGER_MASS, 0.05, radius=0.01)
        _segment(link, (0.05, 0.0, 0.0), radius=0.01)
        joint = _joint(robot, f'{arm}_finger_{side}_joint', 'prismatic', hub, finger,
                       axis=_fmt((0, sign, 0)), limits=(0.0, half, 20.0, 0.2))
        _sub(joint, 'mimic', joint=f'{arm}_gripper', multiplier=f'{-half:.6g}',
             offset=f'{half:.6g}')


def _camera(robot, name, parent, xyz, rpy):
    link_name = f'{name}_link'
    link = _sub(robot, 'link', name=link_name)
    _inertial(link, 0.05, 0.02, radius=0.01)
    visual = _sub(link, 'visual')
    _sub(_sub(visual, 'geometry'), 'box', size='0.02 0.04 0.02')
    _joint(robot, f'{name}_joint', 'fixed', parent, link_name, xyz=xyz, rpy=rpy)
    gazebo = _sub(robot, 'gazebo', reference=link_name)
    sensor = _sub(gazebo, 'sensor', name=name, type='camera')
    ET.SubElement(sensor, 'topic').text = topics.absolute(topics.camera_image(name))
    ET.SubElement(sensor, 'update_rate').text = '30'
    ET.SubElement(sensor, 'always_on').text = '1'
    camera = ET.SubElement(sensor, 'camera')
    ET.SubElement(camera, 'camera_info_topic').text = topics.absolute(topics.camera_info(name))
    ET.SubElement(camera, 'horizontal_fov').text = '1.5'
    image = ET.SubElement(camera, 'image')
    ET.SubElement(image, 'width').text = str(CAMERA_SIZE[0])
    ET.SubElement(image, 'height').text = str(CAMERA_SIZE[1])
    ET.SubElement(image, 'format').text = 'R8G8B8'
    clip = ET.SubElement(camera, 'clip')
    ET.SubElement(clip, 'near').text = '0.01'
    ET.SubElement(clip, 'far').text = '5'


def _plugins(robot):
    gazebo = _sub(robot, 'gazebo')
    states = _sub(gazebo, 'plugin', filename='gz-sim-joint-state-publisher-system',
                  name='gz::sim::systems::JointStatePublisher')
    ET.SubElement(states, 'topic').text = JOINT_STATE_TOPIC
    for name in arx_r5.JOINT_NAMES:
        ET.SubElement(states, 'joint_name').text = name
    control = _sub(gazebo, 'plugin', filename='gz-sim-joint-trajectory-controller-system',
                   name='gz::sim::systems::JointTrajectoryController')
    ET.SubElement(control, 'topic').text = CONTROL_TOPIC
    ET.SubElement(control, 'use_header_start_time').text = 'false'
    for i, name in enumerate(arx_r5.JOINT_NAMES):
        ET.SubElement(control, 'joint_name').text = name
        ET.SubElement(control, 'initial_position').text = '0'
        gripper = i in arx_r5.GRIPPER_INDICES
        ET.SubElement(control, 'position_p_gain').text = '20' if gripper else '200'
        ET.SubElement(control, 'position_d_gain').text = '1' if gripper else '10'
        ET.SubElement(control, 'position_cmd_max').text = '10' if gripper else '40'
        ET.SubElement(control, 'position_cmd_min').text = '-10' if gripper else '-40'


def generate() -> str:
    """Return the URDF text of the bimanual ARX R5 with Gazebo sensors and controllers."""
    robot = ET.Element('robot', name=ROBOT_NAME)
    robot.append(ET.Comment(
        ' Generated by omegaq_ros/robot/urdf.py from omegaq_ros/robot/arx_r5.py; do not edit. '
        'Kinematics: ARX R5a (c) 2023-2025 ARXrobotics, BSD-3-Clause. '))
    _sub(robot, 'link', name='world')
    for arm in arx_r5.ARMS:
        _arm(robot, arm)
    for name, (parent, xyz, rpy) in CAMERAS.items():
        _camera(robot, name, parent, xyz, rpy)
    _plugins(robot)
    ET.indent(robot, space='  ')
    return '<?xml version="1.0"?>\n' + ET.tostring(robot, encoding='unicode') + '\n'


def main(argv=None) -> int:
    """Write the URDF to --output (default urdf/arx_r5_bimanual.urdf)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--output', default='urdf/arx_r5_bimanual.urdf')
    args = parser.parse_args(argv)
    with open(args.output, 'w') as stream:
        stream.write(generate())
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
