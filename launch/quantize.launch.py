# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Offline quantization of a checkpoint with calibration episodes from a rosbag2.

    ros2 launch omegaq_ros quantize.launch.py calibration:=bags/calib output:=artifacts/w4a4

The launch ends when the quantizer exits; `ros2 launch` exits 0 when it wrote the artifact
and 1 (with the quantizer's exit status in the log) when it failed.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def on_quantizer_exit(event, context):
    """End the launch; a failed quantizer makes it fail too (launch exits 1 on the error)."""
    if event.returncode != 0 and not context.is_shutdown:
        raise RuntimeError(f'quantizer_node failed with exit status {event.returncode}; no '
                           'artifact was written')
    return [Shutdown(reason=f'quantizer_node exited with status {event.returncode}')]


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
                              default_value=PathJoinSubstitution([config, 'quantizer_node.yaml']),
                              description='quantizer_node parameter YAML'),
    ]
    overrides = {name: ParameterValue(LaunchConfiguration(name), value_type=str)
                 for name in ('checkpoint', 'calibration', 'output', 'recipe')}
    quantizer = Node(package='omegaq_ros', executable='quantizer_node', name='quantizer_node',
                     parameters=[LaunchConfiguration('params'), overrides],
                     output='screen', emulate_tty=True)
    return LaunchDescription(arguments + [
        quantizer,
        RegisterEventHandler(OnProcessExit(target_action=quantizer, on_exit=on_quantizer_exit)),
    ])
