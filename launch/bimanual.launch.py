# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 dual arm: three RealSense cameras, one bridge per arm and the policy node.

    ros2 launch omegaq_ros bimanual.launch.py artifact:=/path/to/pi05_w4a4
    ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"

Every process loads the shared-memory Fast DDS profile (both env var names are set).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return cameras + two ARX R5 bridges + policy node."""
    config = PathJoinSubstitution([FindPackageShare('omegaq_ros'), 'config'])
    arguments = [
        DeclareLaunchArgument('artifact', default_value='',
                              description='W4A4 artifact dir or FP checkpoint ("" = bundled)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cuda | cpu | auto (cuda where available)'),
        DeclareLaunchArgument('policy_params',
                              default_value=PathJoinSubstitution([config, 'policy_node.yaml'])),
        DeclareLaunchArgument('camera_params',
                              default_value=PathJoinSubstitution([config, 'camera_node.yaml'])),
        DeclareLaunchArgument('bridge_params',
                              default_value=PathJoinSubstitution([config, 'arx_r5_bridge.yaml'])),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=PathJoinSubstitution([config, 'fastdds_shm.xml'])),
        DeclareLaunchArgument('log_level', default_value='info'),
    ]
    profile = LaunchConfiguration('fastdds_profile')
    log = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    bridges = [
        Node(package='omegaq_ros', executable='arx_r5_bridge', name=f'arx_r5_bridge_{arm}',
             parameters=[LaunchConfiguration('bridge_params')], arguments=log,
             output='screen', emulate_tty=True)
        for arm in ('left', 'right')
    ]
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        Node(package='omegaq_ros', executable='camera_node', name='camera_node',
             parameters=[LaunchConfiguration('camera_params')], arguments=log,
             output='screen', emulate_tty=True),
        *bridges,
        Node(package='omegaq_ros', executable='policy_node', name='policy_node',
             parameters=[LaunchConfiguration('policy_params'), {
                 'artifact': ParameterValue(LaunchConfiguration('artifact'), value_type=str),
                 'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
             }], arguments=log, output='screen', emulate_tty=True),
    ])
