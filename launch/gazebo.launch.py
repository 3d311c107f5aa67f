# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Gazebo (gz sim + ros_gz) variant of the sim-in-the-loop run, for machines that have them.

    ros2 launch omegaq_ros gazebo.launch.py device:=cuda

The robot is urdf/arx_r5_bimanual.urdf, generated from omegaq_ros/robot/arx_r5.py (the
kinematics of the MuJoCo scene); ros_gz_bridge maps its cameras, /joint_states, /clock and
/action_chunk (config/gazebo_bridge.yaml). Not run on the pip-only CI (Gazebo cannot be
installed there); test/test_launch_static.py validates these files statically.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.actions import SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return gz sim + robot spawn + ros_gz bridge + policy node on sim time."""
    share = FindPackageShare('omegaq_ros')
    config = PathJoinSubstitution([share, 'config'])
    arguments = [
        DeclareLaunchArgument('world',
                              default_value=PathJoinSubstitution([config, 'gazebo_world.sdf']),
                              description='gz sim world SDF'),
        DeclareLaunchArgument('robot',
                              default_value=PathJoinSubstitution(
                                  [share, 'urdf', 'arx_r5_bimanual.urdf']),
                              description='robot URDF to spawn'),
        DeclareLaunchArgument('bridge_config',
                              default_value=PathJoinSubstitution([config, 'gazebo_bridge.yaml']),
                              description='ros_gz_bridge topic mapping YAML'),
        DeclareLaunchArgument('artifact', default_value='',
                              description='W4A4 artifact dir or FP checkpoint ("" = bundled)'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto (cuda where available) | cuda | cpu'),
        DeclareLaunchArgument('policy_params',
                              default_value=PathJoinSubstitution([config, 'policy_node.yaml']),
                              description='policy_node parameter YAML'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='ROS namespace of the nodes (e.g. robot1); topics are '
                              'relative, so two robots can share one network'),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=PathJoinSubstitution([config, 'fastdds_shm.xml']),
                              description='Fast DDS XML profile of every process'),
    ]
    profile = LaunchConfiguration('fastdds_profile')
    gz_sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
        launch_arguments={'gz_args': ['-r ', LaunchConfiguration('world')]}.items())
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        gz_sim,
        Node(package='ros_gz_sim', executable='create', output='screen',
             arguments=['-name', 'arx_r5_bimanual', '-file', LaunchConfiguration('robot')]),
        Node(package='ros_gz_bridge', executable='parameter_bridge', output='screen',
             namespace=LaunchConfiguration('namespace'),
             parameters=[{'config_file': LaunchConfiguration('bridge_config')}]),
        Node(package='omegaq_ros', executable='policy_node', name='policy_node',
             namespace=LaunchConfiguration('namespace'),
             parameters=[LaunchConfiguration('policy_params'), {
                 'artifact': ParameterValue(LaunchConfiguration('artifact'), value_type=str),
                 'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                 'use_sim_time': True,
                 'start_enabled': True,
             }], output='screen', emulate_tty=True),
    ])
