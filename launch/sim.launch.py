# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Sim-in-the-loop: the MuJoCo bimanual scene (sim_node) driven by the policy node.

    ros2 launch omegaq_ros sim.launch.py                     # bundled W4A4 policy on CPU
    ros2 launch omegaq_ros sim.launch.py artifact:=/path/to/artifact device:=cuda
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return sim_node + policy_node; sim_node.yaml also holds the policy's sim overrides."""
    config = PathJoinSubstitution([FindPackageShare('omegaq_ros'), 'config'])
    arguments = [
        DeclareLaunchArgument('artifact', default_value='',
                              description='W4A4 artifact dir or FP checkpoint ("" = bundled)'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto (cuda where available) | cuda | cpu'),
        DeclareLaunchArgument('seed', default_value='0', description='first episode seed'),
        DeclareLaunchArgument('policy_params',
                              default_value=PathJoinSubstitution([config, 'policy_node.yaml'])),
        DeclareLaunchArgument('sim_params',
                              default_value=PathJoinSubstitution([config, 'sim_node.yaml'])),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=PathJoinSubstitution([config, 'fastdds_shm.xml'])),
    ]
    profile = LaunchConfiguration('fastdds_profile')
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        Node(package='omegaq_ros', executable='sim_node', name='sim_node',
             parameters=[LaunchConfiguration('sim_params'), {
                 'seed': ParameterValue(LaunchConfiguration('seed'), value_type=int),
             }], output='screen', emulate_tty=True),
        Node(package='omegaq_ros', executable='policy_node', name='policy_node',
             parameters=[LaunchConfiguration('policy_params'), LaunchConfiguration('sim_params'), {
                 'artifact': ParameterValue(LaunchConfiguration('artifact'), value_type=str),
                 'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
             }], output='screen', emulate_tty=True),
    ])
