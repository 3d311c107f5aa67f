# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Camera throughput into the policy node: 3 x 640x480 rgb8 at 30 Hz, with and without SHM.

    python benchmarks/bench_camera_shm.py [--seconds 60] [--artifact models/pi05_small_w4a4]

Starts the real policy_node as a separate process (parameters from config/policy_node.yaml,
inference disabled so only its subscription work is measured), publishes the three camera
topics from this process for --seconds, and prints a table: images sent and received per
camera (the node's own counters, read from /diagnostics), messages lost, and the node's CPU
time per 30 Hz camera tick outside inference (/proc utime + stime). Run once with the Fast DDS
shared-memory profile of config/fastdds_shm.xml and once with Fast DDS defaults.
"""

import argparse
import os
import random
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f'/proc/{pid}/stat') as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run_once(profile: bool, seconds: float, artifact: str) -> dict:
    """Measure one configuration in a child process (fresh DDS participant and env)."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(random.randint(110, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    for key in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'):
        env.pop(key, None)
        if profile:
            env[key] = os.path.join(ROOT, 'config', 'fastdds_shm.xml')
    result = subprocess.run([sys.executable, __file__, '--child', '--seconds', str(seconds),
                             '--artifact', artifact], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return eval(result.stdout.strip().splitlines()[-1], {'nan': float('nan')})  # noqa: S307


def child(seconds: float, artifact: str) -> None:
    """Publish the cameras against a running policy_node; print the measurement dict."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from omegaq_ros.nodes import conversions as conv
    node_process = subprocess.Popen(
        [sys.executable, '-m', 'omegaq_ros.nodes.policy_node', '--ros-args', '--params-file',
         os.path.join(ROOT, 'config', 'policy_node.yaml'), '-p', f'artifact:={artifact}',
         '-p', 'start_enabled:=false', '-p', 'device:=cpu'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rclpy.init()
    node = rclpy.create_node('camera_benchmark')
    publishers = [node.create_publisher(conv.Image, f'/{name}/image_raw',
                                        qos_profile_sensor_data) for name in CAMERAS]
    last = {}

    def on_diagnostics(msg):
        for status in msg.status:
            last.update({v.key: v.value for v in status.values})
    node.create_subscription(conv.DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    frames = [np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8)
              for i in range(len(CAMERAS))]
    try:
        deadline = time.monotonic() + 30          # discovery and policy loading
        while time.monotonic() < deadline and 'received_cam_high' not in last:
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(2.0)
        before = {k: int(last.get(f'received_{k}', 0)) for k in CAMERAS}
        cpu_before = cpu_seconds(node_process.pid)
        sent, period = 0, 1.0 / 30.0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            stamp = node.get_clock().now().nanoseconds * 1e-9
            for publisher, frame in zip(publishers, frames):
                publisher.publish(conv.image_from_array(frame, stamp=stamp))
            sent += 1
            next_tick = start + sent * period
            while time.monotonic() < next_tick:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_tick - time.monotonic()))
        elapsed = time.monotonic() - start
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.1)
        cpu = cpu_seconds(node_process.pid) - cpu_before
        received = {k: int(last.get(f'received_{k}', 0)) - before[k] for k in CAMERAS}
        print({'sent': sent, 'received': received, 'seconds': elapsed,
               'cpu_ms_per_tick': 1000 * cpu / max(1, sent), 'cpu_percent': 100 * cpu / elapsed})
    finally:
        node_process.terminate()
        node_process.wait(timeout=20)
        node.destroy_node()
        rclpy.shutdown()


def main() -> int:
    """Run both configurations and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--artifact', default=os.path.join(ROOT, 'models', 'pi05_small_w4a4'))
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.seconds, args.artifact)
        return 0
    print(f'3 cameras x 640x480 rgb8 at 30 Hz for {args.seconds:.0f} s into policy_node '
          '(inference disabled)')
    print('| Fast DDS | sent per camera | received (high/left/right) | lost | '
          'node CPU ms per tick | node CPU % |')
    print('|---|---|---|---|---|---|')
    for profile in (True, False):
        r = run_once(profile, args.seconds, args.artifact)
        got = [r['received'][c] for c in CAMERAS]
        lost = 1 - sum(got) / (3 * r['sent'])
        print(f"| {'SHM 32 MB profile' if profile else 'defaults'} | {r['sent']} | "
              f"{'/'.join(map(str, got))} | {100 * lost:.1f}% | {r['cpu_ms_per_tick']:.2f} | "
              f"{r['cpu_percent']:.0f}% |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
