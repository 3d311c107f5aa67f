# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The product's topic names: change a name here and every node, YAML default and bag follows.

Names are relative, so a namespace (`ros2 launch ... namespace:=robot1`) or a remapping moves
them all: two robots on one network run as /robot1/joint_states and /robot2/joint_states.
/diagnostics and /clock stay absolute, because diagnostic aggregators and every node with
use_sim_time listen there whatever the namespace. Private services (~/enable, ~/reset) are
named by the nodes. A rosbag2 recording and Gazebo's transport use fully qualified names:
they go through `absolute`. No ROS imports: the nodes, the sim and the bag readers share it.
"""

JOINT_STATES = 'joint_states'              # sensor_msgs/JointState, matched by joint name
INSTRUCTION = 'instruction'                # std_msgs/String, transient-local
ACTION_CHUNK = 'action_chunk'              # trajectory_msgs/JointTrajectory
TASK_STATUS = 'task_status'                # the sim's episode records (std_msgs/String JSON)
JOINT_COMMANDS = 'joint_commands'          # recorded demonstrations: the expert's commands
EPISODE_INFO = 'episode_info'              # recorded demonstrations: seed, task, success
DIAGNOSTICS = '/diagnostics'
CLOCK = '/clock'


def camera_image(camera: str) -> str:
    """Return the Image topic of a camera (jpeg/png on this name + '/compressed')."""
    return f'{camera}/image_raw'


def camera_info(camera: str) -> str:
    """Return the CameraInfo topic of a camera."""
    return f'{camera}/camera_info'


def absolute(topic: str) -> str:
    """Return a name as a node in the root namespace resolves it ('joint_states' -> '/...')."""
    return topic if topic.startswith('/') else '/' + topic
