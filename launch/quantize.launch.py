# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Offline quantization of a checkpoint with calibration episodes from a rosbag2.

    ros2 launch omegaq_ros quantize.launch.py calibration:=bags/calib output:=artifacts/w4a4

The launch ends when the quantizer exits (0 on success).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return the quantizer node with its YAML and command-line paths."""
    config = PathJoinSubstitution([FindPackageShare('omegaq_ros'), 'config'])
    arguments = [
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='FP checkpoint ("" = bundled model)'),
        DeclareLaunchArgument('calibration', description='rosbag2 directory (MCAP or sqlite3)'),
        DeclareLaunchArgument('output', description='artifact directory to write'),
        DeclareLaunchArgument('recipe', default_value='omega',
                              description='method preset or recipe YAML path'),
        DeclareLaunchArgument('params',
                              default_value=PathJoinSubstitution([config, 'quantizer_node.yaml'])),
    ]
    overrides = {name: ParameterValue(LaunchConfiguration(name), value_type=str)
                 for name in ('checkpoint', 'calibration', 'output', 'recipe')}
    return LaunchDescription(arguments + [
        Node(package='omegaq_ros', executable='quantizer_node', name='quantizer_node',
             parameters=[LaunchConfiguration('params'), overrides],
             output='screen', emulate_tty=True, on_exit=Shutdown()),
    ])
