# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Parameter contract of every omegaq_ros node: {name: (default, description)}.

The single source of truth for parameter names, types (taken from the default) and meaning.
Each node declares exactly its table in its constructor (declare_table below); config/*.yaml
may set only these names, with values of the default's type (test/test_launch_static.py checks
both with rclpy). Defaults are the robot/sim values; config/*.yaml repeat them, value for
value (a test compares them), so a user sees every knob in one place.
"""

from typing import Dict, Tuple

from omegaq_ros import topics
from omegaq_ros.robot import arx_r5

Table = Dict[str, Tuple[object, str]]

CAMERA_NAMES = list(arx_r5.CAMERA_NAMES)
CAMERA_TOPICS = [topics.camera_image(name) for name in CAMERA_NAMES]
CAMERA_INFO_TOPICS = [topics.camera_info(name) for name in CAMERA_NAMES]

POLICY_NODE: Table = {
    'artifact': ('', 'W4A4 artifact directory or FP checkpoint; empty = the bundled model'),
    'embodiment': ('', 'GR00T only: embodiment tag of the checkpoint (an artifact holds one); '
                   'empty = its only one'),
    'device': ('auto', 'torch device: auto (cuda where available) | cuda | cpu'),
    'dtype': ('auto', 'tower precision: auto (bfloat16 on CUDA, float32 on the CPU) | float32 '
              '| bfloat16 | float16'),
    'backend': ('auto', 'quantized-layer backend: auto (triton on CUDA) | reference | triton'),
    'cuda_graph': (True, 'on CUDA, replay the prefix and the K denoising steps as CUDA graphs'),
    'fused_pointwise': (True, 'on CUDA, run norms, RoPE, residuals, GeGLU and attention as '
                        'compiled fused kernels (compiled on the first chunk)'),
    'camera_names': (CAMERA_NAMES, 'camera keys the policy expects, in order'),
    'camera_topics': (CAMERA_TOPICS, 'one Image topic per camera name (same order)'),
    'compressed_images': (False, 'subscribe to <camera_topic>/compressed (jpeg/png) instead'),
    'image_height': (480, 'expected camera image height [px]; other sizes are refused'),
    'image_width': (640, 'expected camera image width [px]; other sizes are refused'),
    'joint_states_topic': (topics.JOINT_STATES, 'sensor_msgs/JointState, matched by joint name'),
    'instruction_topic': (topics.INSTRUCTION, 'std_msgs/String, transient-local'),
    'default_instruction': ('', 'instruction used until one arrives on instruction_topic'),
    'action_topic': (topics.ACTION_CHUNK, 'trajectory_msgs/JointTrajectory output'),
    'rate': (10.0, 'inference attempts per second [Hz]'),
    'chunk_horizon': (50, 'number of action points published per chunk'),
    'dt': (0.02, 'time between chunk points [s]; point k at (k + 1) * dt'),
    'sync_slop': (0.02, 'max stamp spread within one observation set [s]'),
    'max_obs_age': (0.1, 'max age of any input relative to now [s]'),
    'max_delta_per_step': (0.05, 'arm-joint change cap per chunk point [rad]'),
    'max_gripper_delta_per_step': (1.0, 'gripper change cap per chunk point [0..1]'),
    'joint_limits_file': ('', 'YAML joint_limits {name: [lower, upper]}; empty = ARX R5'),
    'start_enabled': (False, 'publish chunks from start; else wait for ~/enable true'),
}

SIM_NODE: Table = {
    'task': ('lift', 'sim task: lift | bin | handover (omegaq_ros.sim.tasks)'),
    'seed': (0, 'seed of the first episode (reset to a seed through ~/reset)'),
    'episodes': (0, 'number of episodes before the node exits; 0 = run until stopped'),
    'episode_length': (0.0, "episode duration in sim time [s]; 0 = the task's own horizon"),
    'rate': (20.0, 'control, camera and joint state rate [Hz]; 1/rate = the sim control '
                   'period, a multiple of the 2 ms physics step'),
    'publish_clock': (False, 'publish /clock so nodes can run with use_sim_time'),
    'camera_names': (CAMERA_NAMES, 'scene cameras to render, in order'),
    'camera_topics': (CAMERA_TOPICS, 'one Image topic per camera name (same order)'),
    'image_height': (224, 'rendered image height [px]'),
    'image_width': (224, 'rendered image width [px]'),
    'joint_states_topic': (topics.JOINT_STATES, 'published sensor_msgs/JointState (14 joints)'),
    'action_topic': (topics.ACTION_CHUNK, 'trajectory_msgs/JointTrajectory to execute (JTC '
                     'rules)'),
    'instruction_topic': (topics.INSTRUCTION, 'published std_msgs/String (transient-local)'),
    'status_topic': (topics.TASK_STATUS, 'episode status and success'),
}

QUANTIZER_NODE: Table = {
    'checkpoint': ('', 'FP checkpoint to quantize; empty = the bundled model'),
    'calibration': ('', 'rosbag2 directory (MCAP or sqlite3) with calibration episodes'),
    'output': ('', 'artifact directory to write (must not exist unless overwrite)'),
    'recipe': ('omega', 'method preset name or recipe YAML path'),
    'overwrite': (False, 'replace an existing output directory'),
    'min_episodes': (1, 'fewer calibration episodes than this is an error'),
    'max_samples': (256, 'calibration observations used at most'),
    'device': ('cpu', 'torch device: cuda | cpu'),
    'seed': (0, 'seed for sampling calibration observations'),
    'camera_names': (CAMERA_NAMES, 'camera keys the policy expects, in order'),
    'camera_topics': (CAMERA_TOPICS, 'bag topics of the cameras (Image or CompressedImage); '
                      'relative names are read as from the root namespace'),
    'joint_states_topic': (topics.JOINT_STATES, 'bag topic of the joint states'),
    'instruction_topic': (topics.INSTRUCTION, 'bag topic of the instruction'),
    'sync_slop': (0.02, 'max stamp spread within one observation set [s]'),
    'embodiment': ('', 'GR00T only: embodiment tag of the checkpoint; empty = its only one'),
}

CAMERA_NODE: Table = {
    'serials': (['', '', ''], 'RealSense serial numbers (quoted strings), one per camera'),
    'camera_names': (CAMERA_NAMES, 'camera names, one per serial'),
    'image_topics': (CAMERA_TOPICS, 'Image topic per camera'),
    'camera_info_topics': (CAMERA_INFO_TOPICS, 'CameraInfo topic per camera'),
    'width': (640, 'color stream width [px]'),
    'height': (480, 'color stream height [px]'),
    'fps': (30, 'color stream rate [Hz]'),
    'publish_compressed': (False, 'also publish jpeg on <image_topic>/compressed'),
    'jpeg_quality': (90, 'jpeg quality when publish_compressed'),
}

ARX_R5_BRIDGE: Table = {
    'arm': ('left', 'which arm this bridge drives: left | right'),
    'command_interface': ('robot_cmd', 'robot_cmd: RobotCmd mode 5 to R5Controller (normal);'
                                       ' aloha_master: RobotStatus to an aloha follower'),
    'command_topic': ('arm_cmd', 'vendor command topic (R5Controller arm_sub_topic_name, or '
                                 'arm_master_{l,r}_status)'),
    'status_topic': ('arm_status', 'vendor RobotStatus topic (arm_pub_topic_name, or '
                                   'arm_slave_{l,r}_status)'),
    'trajectory_topic': (topics.ACTION_CHUNK, 'trajectory_msgs/JointTrajectory input (14 joints)'),
    'joint_states_topic': (topics.JOINT_STATES, 'sensor_msgs/JointState output (this arm, 7 '
                           'joints)'),
    'control_rate': (200.0, 'command rate [Hz]'),
    'joint_states_rate': (100.0, 'JointState publish rate [Hz]'),
    'max_joint_velocity': (2.0, 'command rate limit of arm joints [rad/s]'),
    'max_gripper_velocity': (5.0, 'command rate limit of the gripper [closure/s]'),
    'gripper_status_scale': (5.0, 'status gripper reading x scale = vendor command units 0..5'),
}

TABLES: Dict[str, Table] = {
    'policy_node': POLICY_NODE,
    'sim_node': SIM_NODE,
    'quantizer_node': QUANTIZER_NODE,
    'camera_node': CAMERA_NODE,
    'arx_r5_bridge': ARX_R5_BRIDGE,
}


def declare_table(node, table: Table) -> dict:
    """Declare every parameter of `table` on `node`; return {name: value} after overrides."""
    from omegaq_ros.nodes.conversions import ParameterDescriptor
    for name, (default, description) in table.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description))
    return {name: node.get_parameter(name).value for name in table}
