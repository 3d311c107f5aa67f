# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
policy_node under a flood of 4K images: its memory, and how soon it acts again afterwards.

    python benchmarks/bench_node_flood.py [--flood-seconds 60] [--rate 30]

A policy_node process (bundled W4A4 artifact, CPU, expecting 480x640 cameras) and this
process as the robot, over real DDS (Fast DDS shared memory, localhost). Phases: valid
observations at 10 Hz until chunks flow and for a steady period (RSS sampled: the steady
state); then 3840x2160 rgb8 images on all three cameras at up to --rate Hz each (as fast as
this machine can publish them; the achieved rate is printed) for --flood-seconds, the node's
RSS sampled every 0.25 s; then valid observations again, timing the first chunk computed
from an observation taken after the flood. Prints one table row.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 480, 640
CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (from /proc)."""
    with open(f'/proc/{pid}/status') as stream:
        for line in stream:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def memory_breakdown(pid: int) -> str:
    """Anonymous (heap) and shared (mapped segments) resident MB of a process."""
    fields = {}
    with open(f'/proc/{pid}/smaps_rollup') as stream:
        for line in stream:
            parts = line.split()
            if len(parts) == 3 and parts[2] == 'kB':
                fields[parts[0].rstrip(':')] = int(parts[1]) / 1024.0
    return (f"anonymous {fields.get('Anonymous', float('nan')):.0f} MB, shared "
            f"{fields.get('Shared_Clean', 0) + fields.get('Shared_Dirty', 0):.0f} MB")


def main():
    """Run the three phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--flood-seconds', type=float, default=60.0)
    parser.add_argument('--steady-seconds', type=float, default=15.0)
    parser.add_argument('--rate', type=float, default=30.0, help='4K images per camera per s')
    parser.add_argument('--node-env', action='append', default=[], metavar='NAME=VALUE',
                        help='extra environment of the policy_node process only')
    args = parser.parse_args()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                           ReliabilityPolicy)
    from omegaq_ros.nodes import conversions as conv
    from omegaq_ros.robot import arx_r5

    profile = os.environ.get('FLOOD_PROFILE') or os.path.join(ROOT, 'config', 'fastdds_shm.xml')
    env = dict(os.environ, ROS_DOMAIN_ID=str(150 + os.getpid() % 60),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', RMW_IMPLEMENTATION='rmw_fastrtps_cpp',
               PYTHONUNBUFFERED='1')
    if os.path.isfile(profile):
        env.update(FASTDDS_DEFAULT_PROFILES_FILE=profile, FASTRTPS_DEFAULT_PROFILES_FILE=profile)
    os.environ.update(env)
    log = tempfile.NamedTemporaryFile('w', suffix='.log', delete=False)
    node = subprocess.Popen(
        [sys.executable, '-m', 'omegaq_ros.nodes.policy_node', '--ros-args', '-p',
         'device:=cpu', '-p', 'start_enabled:=true', '-p', 'rate:=5.0'],
        cwd=ROOT, env=dict(env, **dict(item.split('=', 1) for item in args.node_env)),
        stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    robot = rclpy.create_node('flood_robot', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(robot)
    cameras = {name: robot.create_publisher(conv.Image, f'/{name}/image_raw',
                                            qos_profile_sensor_data) for name in CAMERAS}
    joints = robot.create_publisher(conv.JointState, '/joint_states', 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    robot.create_publisher(conv.String, '/instruction', latched).publish(
        conv.String(data='lift the red cube'))
    chunks = []
    robot.create_subscription(conv.JointTrajectory, '/action_chunk', chunks.append, 10)
    inference_ms = []                          # the node's own timing of each chunk

    def on_diagnostics(array):
        # Diagnostics repeat the last chunk's timing: keep each new value once.
        for value in (kv.value for status in array.status for kv in status.values
                      if kv.key == 'inference_ms' and kv.value != 'nan'):
            if not inference_ms or float(value) != inference_ms[-1]:
                inference_ms.append(float(value))
    robot.create_subscription(conv.DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    rng = np.random.default_rng(0)
    home = arx_r5.limits_14d().mean(axis=1)
    names = list(arx_r5.JOINT_NAMES)
    huge = rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8)

    def now() -> float:
        return robot.get_clock().now().nanoseconds * 1e-9

    def spin(seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    def publish(image: np.ndarray):
        stamp = now()
        for name, pub in cameras.items():
            pub.publish(conv.image_from_array(image, stamp, name))
        for part in (slice(0, 7), slice(7, 14)):
            joints.publish(conv.joint_state_from_array(home[part], stamp, names[part]))
        return stamp

    def valid(seconds: float, until_chunk_after=None, samples=None) -> float:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            publish(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
            spin(0.1)
            if samples is not None:
                samples.append(rss_mb(node.pid))
            if until_chunk_after is not None and any(
                    conv.stamp_to_seconds(c.header.stamp) > until_chunk_after for c in chunks):
                return time.monotonic() - started
        return float('nan')

    try:
        first = valid(300.0, until_chunk_after=0.0)
        steady = []
        valid(args.steady_seconds, samples=steady)
        flood, sent = [], 0
        started = time.monotonic()
        period = 1.0 / args.rate
        while time.monotonic() - started < args.flood_seconds:
            tick = time.monotonic()
            publish(huge)
            sent += 1
            spin(max(0.0, period - (time.monotonic() - tick)))
            flood.append(rss_mb(node.pid))
        at_flood_end = memory_breakdown(node.pid)
        flood_s = time.monotonic() - started
        flood_end = now()
        recover = valid(30.0, until_chunk_after=flood_end)
        spin(1.0)                              # the diagnostics that time that chunk
        alive = node.poll() is None
    finally:
        node.send_signal(2)
        try:
            code = node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            code = 'killed'
        executor.shutdown()
        robot.destroy_node()
        rclpy.shutdown(context=context)
    steady_mb = float(np.median(steady))
    print(f'# policy_node (bundled W4A4 artifact, CPU), cameras {HEIGHT}x{WIDTH} expected; '
          f'first chunk after start {first:.1f} s; node log {log.name}')
    print(f'# node memory at the end of the flood: {at_flood_end}')
    warm = inference_ms[1:]                    # the first chunk includes the warm-up
    print(f'# inference time per chunk (node diagnostics, {len(warm)} chunks after the first): '
          f'median {np.median(warm) if warm else float("nan"):.0f} ms; the first chunk after '
          f'the flood took {inference_ms[-1] if inference_ms else float("nan"):.0f} ms of its '
          f'{recover:.2f} s')
    print('| steady RSS MB | flood | 4K sets sent | sets / s | MB / s | max RSS MB | max / '
          'steady | first chunk after the flood s | node alive / exit |')
    print('|---|---|---|---|---|---|---|---|---|')
    mb_per_set = 3 * huge.nbytes / 1e6
    print(f'| {steady_mb:.0f} | 3 x 3840x2160 rgb8, {flood_s:.0f} s | {sent} | '
          f'{sent / flood_s:.1f} | {sent * mb_per_set / flood_s:.0f} | {max(flood):.0f} | '
          f'{max(flood) / steady_mb:.2f} | {recover:.2f} | {alive} / {code} |')


if __name__ == '__main__':
    main()
