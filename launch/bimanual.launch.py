# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
ARX R5 dual arm: three RealSense cameras, one bridge per arm and the policy node.

    ros2 launch omegaq_ros bimanual.launch.py artifact:=/path/to/pi05_w4a4
    ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"

Every process loads the shared-memory Fast DDS profile (both env var names are set). Every
piece is required: when the cameras, either arm bridge or the policy node exits, the whole
launch shuts down and says which one and why (a failure makes `ros2 launch` exit 1) rather
than stay half up with a policy that can never act.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler, SetEnvironmentVariable
from launch.actions import Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def required(node, name: str, role: str):
    """Shut the launch down with the reason when `node` exits (exit status 1 on a failure)."""
    def on_exit(event, context):
        if context.is_shutdown:             # already stopping (Ctrl-C or another piece)
            return None
        reason = (f'{name} exited with status {event.returncode}; {role}: shutting '
                  'bimanual.launch.py down')
        if event.returncode != 0:
            raise RuntimeError(reason)      # launch logs it and exits 1
        return [Shutdown(reason=reason)]
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def generate_launch_description():
    """Return cameras + two ARX R5 bridges + policy node."""
    config = PathJoinSubstitution([FindPackageShare('omegaq_ros'), 'config'])
    arguments = [
        DeclareLaunchArgument('artifact', default_value='',
                              description='W4A4 artifact dir or FP checkpoint ("" = bundled)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cuda | cpu | auto (cuda where available)'),
        DeclareLaunchArgument('policy_params',
                              default_value=PathJoinSubstitution([config, 'policy_node.yaml']),
                              description='policy_node parameter YAML'),
        DeclareLaunchArgument('camera_params',
                              default_value=PathJoinSubstitution([config, 'camera_node.yaml']),
                              description='camera_node parameter YAML (RealSense serials)'),
        DeclareLaunchArgument('bridge_params',
                              default_value=PathJoinSubstitution([config, 'arx_r5_bridge.yaml']),
                              description='arx_r5_bridge_left/right parameter YAML'),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=PathJoinSubstitution([config, 'fastdds_shm.xml']),
                              description='Fast DDS XML profile of every process'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='ROS namespace of the nodes (e.g. robot1); topics are '
                              'relative, so two robots can share one network'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='ROS log level: debug | info | warn | error'),
    ]
    profile = LaunchConfiguration('fastdds_profile')
    log = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    namespace = LaunchConfiguration('namespace')
    bridges = [
        Node(package='omegaq_ros', executable='arx_r5_bridge', name=f'arx_r5_bridge_{arm}',
             namespace=namespace,
             parameters=[LaunchConfiguration('bridge_params')], arguments=log,
             output='screen', emulate_tty=True)
        for arm in ('left', 'right')
    ]
    cameras = Node(package='omegaq_ros', executable='camera_node', name='camera_node',
                   namespace=namespace,
                   parameters=[LaunchConfiguration('camera_params')], arguments=log,
                   output='screen', emulate_tty=True)
    policy = Node(package='omegaq_ros', executable='policy_node', name='policy_node',
                  namespace=namespace,
                  parameters=[LaunchConfiguration('policy_params'), {
                      'artifact': ParameterValue(LaunchConfiguration('artifact'), value_type=str),
                      'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                  }], arguments=log, output='screen', emulate_tty=True)
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTRTPS_DEFAULT_PROFILES_FILE', profile),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
        cameras, *bridges, policy,
        required(cameras, 'camera_node', 'the policy cannot act without its cameras'),
        *[required(bridge, f'arx_r5_bridge_{arm}', f'the {arm} arm has no bridge')
          for bridge, arm in zip(bridges, ('left', 'right'))],
        required(policy, 'policy_node', 'nothing drives the arms'),
    ])
