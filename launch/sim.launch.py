# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Sim-in-the-loop: the MuJoCo bimanual scene (sim_node) driven by the policy node.

    ros2 launch omegaq_ros sim.launch.py                     # bundled W4A4 policy on CPU
    ros2 launch omegaq_ros sim.launch.py artifact:=/path/to/artifact device:=cuda
    ros2 launch omegaq_ros sim.launch.py task:=bin episodes:=5 episode_length:=8.0

With episodes > 0 the launch ends when sim_node has run them (exit 1 if sim_node failed, or
if the policy node exits first).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler, SetEnvironmentVariable
from launch.actions import Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def ends_the_launch(node, name: str):
    """Shut the launch down when `node` exits, with the reason (exit 1 on a failure)."""
    def on_exit(event, context):
        if context.is_shutdown:
            return None
        reason = f'{name} exited with status {event.returncode}: shutting sim.launch.py down'
        if event.returncode != 0:
            raise RuntimeError(reason)
        return [Shutdown(reason=reason)]
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def generate_launch_description():
    """Return sim_node + policy_node; sim_node.yaml also holds the policy's sim overrides."""
    config = PathJoinSubstitution([FindPackageShare('omegaq_ros'), 'config'])
    arguments = [
        DeclareLaunchArgument('artifact', default_value='',
                              description='W4A4 artifact dir or FP checkpoint ("" = bundled)'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto (cuda where available) | cuda | cpu'),
        DeclareLaunchArgument('seed', default_value='0', description='first episode seed'),
        DeclareLaunchArgument('task', default_value='lift',
                              description='sim task: lift | bin | handover'),
        DeclareLaunchArgument('episodes', default_value='0',
                              description='episodes before sim_node (and the launch) ends; '
                              '0 = run until stopped'),
        DeclareLaunchArgument('episode_length', default_value='0.0',
                              description="episode duration in sim time [s]; 0 = the task's "
                              'own horizon'),
        DeclareLaunchArgument('policy_params',
                              default_value=PathJoinSubstitution([config, 'policy_node.yaml']),
                              description='policy_node parameter YAML'),
        DeclareLaunchArgument('sim_params',
                              default_value=PathJoinSubstitution([config, 'sim_node.yaml']),
                              description='sim_node parameter YAML (+ the policy overrides)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='ROS namespace of the nodes (e.g. robot1); topics are '
                              'relative, so two robots can share one network'),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=PathJoinSubstitution([config, 'fastdds_shm.xml']),
                              description='Fast DDS XML profile of every process'),
    ]
    profile = LaunchConfiguration('fastdds_profile')
    namespace = LaunchConfiguration('namespace')
    sim = Node(package='omegaq_ros', executable='sim_node', name='sim_node', namespace=namespace,
               parameters=[LaunchConfiguration('sim_params'), {
                   'seed': ParameterValue(LaunchConfiguration('seed'), value_type=int),
                   'task': ParameterValue(LaunchConfiguration('task'), value_type=str),
                   'episodes': ParameterValue(LaunchConfiguration('episodes'), value_type=int),
                   'episode_length': ParameterValue(LaunchConfiguration('episode_length'),
                                                    value_type=float),
               }], output='screen', emulate_tty=True)
    policy = Node(package='omegaq_ros', executable='policy_node', name='policy_node',
                  namespace=namespace,
                  parameters=[LaunchConfiguration('policy_params'),
                              LaunchConfiguration('sim_params'), {
                      'artifact': ParameterValue(LaunchConfiguration('artifact'), value_type=str),
                      'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                  }], output='screen', emulate_tty=True)
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        sim, policy,
        ends_the_launch(sim, 'sim_node'),
        ends_the_launch(policy, 'policy_node'),
    ])
