# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Nodes and conversions as real processes over real DDS (localhost, a random domain per test).

The ARX vendor messages and pyrealsense2 are absent on pip-only machines: the bridge and the
camera node must then refuse with a clear message and exit code 1. Two processes exchange
640x480 images built by conversions.py through the shared-memory Fast DDS profile, plus a
JointState and an action-chunk JointTrajectory, and the receiver checks every pixel and value.
"""

import json
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.path.join(ROOT, 'config', 'fastdds_shm.xml')
FRAMES = 30


def _env(**extra):
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(random.randint(1, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               RMW_IMPLEMENTATION='rmw_fastrtps_cpp', PYTHONUNBUFFERED='1')
    env.update(extra)
    return env


def _run(code_or_args, env=None, timeout=30):
    args = code_or_args if isinstance(code_or_args, list) else [sys.executable, '-c', code_or_args]
    return subprocess.run(args, env=env or _env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_bridge_refuses_without_vendor_messages():
    result = _run([sys.executable, '-m', 'omegaq_ros.nodes.arx_r5_bridge'])
    assert result.returncode == 1, result.stderr
    assert '[arx_r5_bridge] cannot start: the ARX vendor messages arx5_arm_msg are not ' \
        'available' in result.stderr
    assert 'Traceback' not in result.stderr


def test_bridge_refuses_bad_parameters():
    result = _run([sys.executable, '-m', 'omegaq_ros.nodes.arx_r5_bridge',
                   '--ros-args', '-p', 'arm:=middle'])
    assert result.returncode == 1
    assert "arm: expected 'left' or 'right', got 'middle'" in result.stderr


def test_camera_node_refuses_without_pyrealsense2():
    code = ('import sys\n'
            "sys.modules['pyrealsense2'] = None  # absent even where it is installed\n"
            'from omegaq_ros.nodes.camera_node import main\n'
            "sys.exit(main(['camera_node', '--ros-args', '-p', \"serials:=['1','2','3']\"]))\n")
    result = _run(code)
    assert result.returncode == 1, result.stderr
    assert '[camera_node] cannot start: pyrealsense2 is not installed' in result.stderr
    assert 'pip install pyrealsense2' in result.stderr and 'Traceback' not in result.stderr


PUBLISHER = """
import sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from omegaq_ros.nodes import conversions as conv
rclpy.init()
try:
    node = rclpy.create_node('test_publisher')
    image_pub = node.create_publisher(conv.Image, '/cam_high/image_raw', qos_profile_sensor_data)
    state_pub = node.create_publisher(conv.JointState, '/joint_states', 10)
    chunk_pub = node.create_publisher(conv.JointTrajectory, '/action_chunk', 10)
    deadline = time.monotonic() + 15
    while (image_pub.get_subscription_count() < 1 or chunk_pub.get_subscription_count() < 1
           or state_pub.get_subscription_count() < 1):
        if time.monotonic() > deadline:
            sys.exit('no subscriber matched')
        time.sleep(0.05)
    time.sleep(0.3)
    base = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for k in range(FRAMES):
        frame = base.copy()
        frame[0, 0] = (k, 255 - k, 7)
        stamp = 1000.0 + k / 30
        if k % 2:
            msg = conv.image_from_array(frame[..., ::-1], stamp, 'cam_high', encoding='bgr8')
        else:
            msg = conv.image_from_array(frame, stamp, 'cam_high')
        image_pub.publish(msg)
        time.sleep(1 / 30)
    names = list(conv.arx_r5.JOINT_NAMES)[::-1]
    state_pub.publish(conv.joint_state_from_array(np.arange(14.0)[::-1], 1001.0, names))
    chunk = np.random.default_rng(3).normal(size=(50, 14))
    chunk_pub.publish(conv.chunk_to_joint_trajectory(chunk, 1002.5, 0.02))
    time.sleep(1.0)
finally:
    rclpy.shutdown()
""".replace('FRAMES', str(FRAMES))

SUBSCRIBER = """
import json, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from omegaq_ros.nodes import conversions as conv
rclpy.init()
result = {'frames': [], 'errors': [], 'state': None, 'chunk_ok': False}
base = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
def on_image(msg):
    rgb = conv.image_to_rgb(msg, expected_shape=(480, 640))
    k = int(rgb[0, 0, 0])
    expected = base.copy()
    expected[0, 0] = (k, 255 - k, 7)
    if not np.array_equal(rgb, expected) or msg.encoding != ('bgr8' if k % 2 else 'rgb8'):
        result['errors'].append(k)
    result['frames'].append(k)
def on_state(msg):
    result['state'] = conv.joint_state_to_array(msg).tolist()
def on_chunk(msg):
    stamp, times, positions = conv.joint_trajectory_to_arrays(msg)
    chunk = np.random.default_rng(3).normal(size=(50, 14))
    result['chunk_ok'] = bool(stamp == 1002.5 and np.allclose(times, 0.02 * np.arange(1, 51))
                              and np.array_equal(positions, chunk))
try:
    node = rclpy.create_node('test_subscriber')
    node.create_subscription(conv.Image, '/cam_high/image_raw', on_image, qos_profile_sensor_data)
    node.create_subscription(conv.JointState, '/joint_states', on_state, 10)
    node.create_subscription(conv.JointTrajectory, '/action_chunk', on_chunk, 10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not result['chunk_ok']:
        rclpy.spin_once(node, timeout_sec=0.05)
finally:
    rclpy.shutdown()
print('RESULT ' + json.dumps(result))
"""


def test_images_states_and_chunks_cross_processes_with_shm_profile():
    env = _env(FASTRTPS_DEFAULT_PROFILES_FILE=PROFILE, FASTDDS_DEFAULT_PROFILES_FILE=PROFILE)
    subscriber = subprocess.Popen([sys.executable, '-c', SUBSCRIBER], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        publisher = _run(PUBLISHER, env=env, timeout=40)
        out, err = subscriber.communicate(timeout=30)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
    assert publisher.returncode == 0, publisher.stderr
    assert subscriber.returncode == 0, err
    line = [row for row in out.splitlines() if row.startswith('RESULT ')][-1]
    result = json.loads(line[len('RESULT '):])
    assert result['errors'] == [], f'frames with wrong pixels: {result["errors"]}'
    # default Fast DDS delivers ~5 % of 640x480 best-effort frames; the profile ~100 %
    assert len(result['frames']) >= 0.9 * FRAMES, f'{len(result["frames"])}/{FRAMES} frames'
    assert result['state'] == [float(v) for v in range(14)]
    assert result['chunk_ok']
