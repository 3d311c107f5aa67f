# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 bridge node: JointTrajectory chunks -> vendor commands, vendor status -> /joint_states.

One node per arm (launch two). The vendor messages `arx5_arm_msg` come from ARX's ROS 2
workspace and cannot be installed from PyPI: they are imported when the node starts, and
without them the node says so and exits with code 1. The joint/command mapping
is in omegaq_ros/robot/arx_r5_mapping.py and the chunk execution in
omegaq_ros/robot/trajectory_follower.py (both pure, tested); this node only owns the ROS surface:
  command_interface robot_cmd     RobotCmd (mode 5, joint control) on command_topic, to an
                                  R5Controller in `normal` mode (its arm_sub_topic_name);
  command_interface aloha_master  RobotStatus on command_topic (arm_master_{l,r}_status) for
                                  an R5Controller in aloha/remote follower mode;
  status_topic                    RobotStatus of the arm (arm_status or arm_slave_{l,r}_status)
                                  republished as this arm's 7 joints on joint_states_topic.
"""

import numpy as np
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.nodes.parameters import ARX_R5_BRIDGE, declare_table
from omegaq_ros.nodes.spin import spin_node, StartupError
from omegaq_ros.robot import arx_r5_mapping
from omegaq_ros.robot.trajectory_follower import TrajectoryFollower
from rclpy.node import Node

COMMAND_INTERFACES = ('robot_cmd', 'aloha_master')


def import_vendor_messages():
    """Return the arx5_arm_msg.msg module or raise StartupError saying where it comes from."""
    try:
        from arx5_arm_msg import msg
    except ImportError as error:
        raise StartupError(
            'the ARX vendor messages arx5_arm_msg are not available: build ARX_R5 '
            'ROS2/R5_ws/src/arxmsgros2 (github.com/ARXroboticsX/ARX_R5) in a colcon workspace '
            f'and source its install/setup.bash before starting arx_r5_bridge ({error})') from None
    return msg


class ArxR5Bridge(Node):
    """Follow JointTrajectory chunks on one ARX R5 arm and publish its joint states."""

    def __init__(self):
        """Declare parameters, check them, import the vendor messages, wire topics and timers."""
        super().__init__('arx_r5_bridge')
        self.params = p = declare_table(self, ARX_R5_BRIDGE)
        if p['arm'] not in ('left', 'right'):
            raise StartupError(f"arm: expected 'left' or 'right', got {p['arm']!r}")
        if p['command_interface'] not in COMMAND_INTERFACES:
            raise StartupError(f'command_interface: expected one of {list(COMMAND_INTERFACES)}, '
                               f"got {p['command_interface']!r}")
        try:
            self.follower = TrajectoryFollower(
                p['arm'], p['control_rate'], p['max_joint_velocity'], p['max_gripper_velocity'])
        except ValueError as error:
            raise StartupError(str(error)) from None
        if not p['joint_states_rate'] > 0 or not p['gripper_status_scale'] > 0:
            raise StartupError('joint_states_rate and gripper_status_scale must be > 0')
        vendor = import_vendor_messages()
        self.names = arx_r5_mapping.arm_joint_names(p['arm'])
        self.measured = None           # (positions[7], velocities[7], currents[7]) or None
        self.measured_stamp = 0.0
        self.command_type = (vendor.RobotCmd if p['command_interface'] == 'robot_cmd'
                             else vendor.RobotStatus)
        self.command_pub = self.create_publisher(self.command_type, p['command_topic'], 10)
        self.joint_state_pub = self.create_publisher(conv.JointState, p['joint_states_topic'], 10)
        self.status_sub = self.create_subscription(
            vendor.RobotStatus, p['status_topic'], self.status_callback, 10)
        self.trajectory_sub = self.create_subscription(
            conv.JointTrajectory, p['trajectory_topic'], self.trajectory_callback, 10)
        self.control_timer = self.create_timer(1.0 / p['control_rate'], self.control_callback)
        self.joint_state_timer = self.create_timer(1.0 / p['joint_states_rate'],
                                                   self.joint_state_callback)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def status_callback(self, msg) -> None:
        """Store the arm's newest position, velocity and current (gripper normalized)."""
        try:
            pos, vel, cur = conv.robot_status_arrays(msg)
        except conv.ConversionError as error:
            self.get_logger().error(f'RobotStatus ignored: {error}', throttle_duration_sec=1.0)
            return
        scale = self.params['gripper_status_scale']
        self.measured = (arx_r5_mapping.status_to_positions(pos, scale),
                         arx_r5_mapping.status_to_velocities(vel, scale), cur)
        self.measured_stamp = self._now()

    def trajectory_callback(self, msg) -> None:
        """Replace the followed chunk with this arm's part of a new JointTrajectory."""
        try:
            stamp, times, positions = conv.joint_trajectory_to_arrays(msg, self.names)
        except conv.ConversionError as error:
            self.get_logger().warn(f'chunk dropped: {error}', throttle_duration_sec=1.0)
            return
        measured = None if self.measured is None else self.measured[0]
        reason = self.follower.accept(stamp, times, positions, self._now(), measured)
        if reason:
            self.get_logger().warn(f'chunk dropped: {reason}', throttle_duration_sec=1.0)

    def control_callback(self) -> None:
        """Send the command sampled from the followed chunk at the control rate."""
        measured = None if self.measured is None else self.measured[0]
        now = self._now()
        target = self.follower.command(now, measured)
        if target is None:
            return
        try:
            if self.params['command_interface'] == 'robot_cmd':
                msg = conv.fill_robot_cmd(self.command_type(),
                                          arx_r5_mapping.command_fields(target), now)
            else:
                joint_pos = arx_r5_mapping.master_status_joint_pos(
                    target, self.params['gripper_status_scale'])
                if not np.all(np.isfinite(joint_pos)):
                    raise ValueError(f'non-finite command {joint_pos.tolist()}')
                msg = conv.fill_robot_status(self.command_type(), joint_pos, now)
        except (ValueError, conv.ConversionError) as error:
            self.follower.reset()
            self.get_logger().error(f'command refused, trajectory dropped: {error}',
                                    throttle_duration_sec=1.0)
            return
        self.command_pub.publish(msg)

    def joint_state_callback(self) -> None:
        """Publish this arm's 7 joints (position, velocity, motor current as effort)."""
        if self.measured is None:
            return
        pos, vel, cur = self.measured
        self.joint_state_pub.publish(conv.joint_state_from_array(
            pos, self.measured_stamp, self.names, velocities=vel, efforts=cur))


def main(args=None) -> int:
    """Run the bridge; exit code 1 without the vendor messages or with bad parameters."""
    return spin_node(ArxR5Bridge, 'arx_r5_bridge', args)


if __name__ == '__main__':
    raise SystemExit(main())
