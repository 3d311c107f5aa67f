# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Pip-only bring-up (no `ros2 launch`): the sim-in-the-loop job as separate processes.

    omegaq-bringup sim --artifact PATH [--episodes 3] [--task lift] [--seed 0] [--device auto]
                       [--namespace NS]

Starts sim_node and policy_node as two processes with the same parameter files that
launch/sim.launch.py passes (sim_node: sim_node.yaml; policy_node: policy_node.yaml then
sim_node.yaml's overrides), the Fast DDS shared-memory profile (both env var names),
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a random ROS_DOMAIN_ID so runs never meet other
ROS graphs. A small listener node in this process reads the sim's episode results on
/task_status and the policy's /diagnostics, and prints one line per episode (success, chunks,
inference latency) and a summary. When the sim has run its episodes, the policy node gets
SIGINT and both processes are waited for; their logs go to --log-dir. Exit code 0 when every
episode ended with a reported result. --namespace puts both nodes (and so their relative
topics) under /NS, as `namespace:=` does for the launch files; /diagnostics stays global and
the listener keeps the statuses of its own policy node (by hardware_id).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from omegaq_ros import topics

NODE_MODULES = {'sim_node': 'omegaq_ros.nodes.sim_node',
                'policy_node': 'omegaq_ros.nodes.policy_node'}


def config_dir() -> str:
    """Return the directory holding the parameter YAML files and the Fast DDS profile."""
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'config')
    if os.path.isfile(os.path.join(source, 'sim_node.yaml')):
        return source
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('omegaq_ros'), 'config')


def ros_environment(profile: str, domain_id: int) -> dict:
    """Return os.environ plus the DDS settings of a local, isolated run."""
    env = dict(os.environ)
    env.update(FASTDDS_DEFAULT_PROFILES_FILE=profile, FASTRTPS_DEFAULT_PROFILES_FILE=profile,
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain_id),
               RMW_IMPLEMENTATION=env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp'),
               PYTHONUNBUFFERED='1')
    return env


def node_commands(args, config: str) -> dict:
    """Return {node name: argv}: the launch file's parameter files plus the CLI overrides."""
    sim_yaml = os.path.join(config, 'sim_node.yaml')
    policy_yaml = os.path.join(config, 'policy_node.yaml')
    sim = ['--ros-args', '--params-file', sim_yaml, '-p', f'seed:={args.seed}',
           '-p', f'episodes:={args.episodes}']
    if args.task:
        sim += ['-p', f'task:={args.task}']
    if args.episode_length is not None:
        sim += ['-p', f'episode_length:={float(args.episode_length)}']
    policy = ['--ros-args', '--params-file', policy_yaml, '--params-file', sim_yaml,
              '-p', f'artifact:={args.artifact}', '-p', f'device:={args.device}']
    for extra in args.policy_param or []:
        policy += ['-p', extra]
    if args.namespace:
        sim += ['-r', f'__ns:=/{args.namespace}']
        policy += ['-r', f'__ns:=/{args.namespace}']
    return {'sim_node': [sys.executable, '-m', NODE_MODULES['sim_node'], *sim],
            'policy_node': [sys.executable, '-m', NODE_MODULES['policy_node'], *policy]}


class Listener:
    """Collect /task_status records and inference latencies from /diagnostics."""

    def __init__(self, status_topic: str, policy_node: str = '/policy_node'):
        from omegaq_ros.nodes import conversions as conv
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        self.rclpy = rclpy
        self.policy_node = policy_node
        self.node = rclpy.create_node('omegaq_bringup')
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.records, self.latencies, self.refusals, self.errors = [], [], {}, []
        self.node.create_subscription(conv.String, status_topic, self.status_callback, qos)
        self.node.create_subscription(conv.DiagnosticArray, topics.DIAGNOSTICS,
                                      self.diagnostics_callback, 50)

    def status_callback(self, msg) -> None:
        """Keep one sim status record; print episode results as they arrive."""
        record = json.loads(msg.data)
        self.records.append(record)
        if record.get('event') == 'episode_end':
            finite = [v for v in self.latencies if np.isfinite(v)] or [float('nan')]
            record['inference_ms_p50'] = float(np.median(finite))
            record['inference_ms_max'] = float(np.max(finite))
            record['chunks_published'] = len(self.latencies)
            record['refusals'] = dict(self.refusals)
            print(f"episode {record['episode'] + 1}: task {record['task']} seed "
                  f"{record['seed']}: {'SUCCESS' if record['success'] else 'failure'} | "
                  f"chunks {record['chunks_accepted']}/{record['chunks_received']} executed "
                  f"({record['ticks_commanded']} ticks commanded) | inference p50 "
                  f"{record['inference_ms_p50']:.1f} ms, max {record['inference_ms_max']:.1f} ms "
                  f'over {len(self.latencies)} chunks', flush=True)
            self.latencies, self.refusals = [], {}

    def diagnostics_callback(self, msg) -> None:
        """Record inference time of published chunks and count refusal reasons."""
        for status in msg.status:
            if not status.name.startswith('policy_node') or \
                    status.hardware_id != self.policy_node:
                continue
            values = {kv.key: kv.value for kv in status.values}
            if status.message.startswith('chunk of'):
                self.latencies.append(float(values.get('inference_ms', 'nan')))
            elif status.message.startswith('refused'):
                reason = status.message[len('refused: '):][:80]
                self.refusals[reason] = self.refusals.get(reason, 0) + 1
                if ord(status.level) >= 2 and reason not in self.errors:
                    self.errors.append(reason)

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for about `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)


def _stop(process: subprocess.Popen, timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _tail(path: str, lines: int = 15) -> str:
    with open(path, errors='replace') as stream:
        return ''.join(stream.readlines()[-lines:])


def run_sim(args) -> int:
    """Start both nodes, follow the episodes, stop everything; return the exit code."""
    config = config_dir()
    profile = os.path.join(config, 'fastdds_shm.xml')
    domain_id = args.domain_id if args.domain_id is not None else random.randint(1, 101)
    env = ros_environment(profile, domain_id)
    os.environ.update({k: env[k] for k in ('FASTDDS_DEFAULT_PROFILES_FILE',
                                           'FASTRTPS_DEFAULT_PROFILES_FILE',
                                           'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                           'RMW_IMPLEMENTATION')})
    log_dir = args.log_dir or tempfile.mkdtemp(prefix='omegaq-bringup-')
    os.makedirs(log_dir, exist_ok=True)
    print(f'omegaq-bringup: ROS_DOMAIN_ID={domain_id}, config {config}, logs in {log_dir}',
          flush=True)
    import rclpy
    rclpy.init(args=[])
    processes, logs = {}, {}
    try:
        prefix = f'/{args.namespace}' if args.namespace else ''
        listener = Listener(f'{prefix}/{topics.TASK_STATUS}', f'{prefix}/policy_node')
        commands = node_commands(args, config)
        for name in ('policy_node', 'sim_node'):
            logs[name] = os.path.join(log_dir, f'{name}.log')
            with open(logs[name], 'w') as log:
                processes[name] = subprocess.Popen(commands[name], env=env, stdout=log,
                                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + args.timeout
        while processes['sim_node'].poll() is None and time.monotonic() < deadline:
            listener.spin_for(0.2)
            if processes['policy_node'].poll() is not None:
                print('omegaq-bringup: policy_node exited early:\n'
                      + _tail(logs['policy_node']), file=sys.stderr)
                break
        timed_out = processes['sim_node'].poll() is None
        listener.spin_for(1.0)
        codes = {name: _stop(process) for name, process in processes.items()}
        ends = [r for r in listener.records if r.get('event') == 'episode_end']
        wins = sum(r['success'] for r in ends)
        print(f'omegaq-bringup: {wins}/{len(ends)} episodes succeeded; exit codes {codes}',
              flush=True)
        for reason in listener.errors:
            print(f'omegaq-bringup: policy error: {reason}', file=sys.stderr)
        if timed_out:
            print(f'omegaq-bringup: timed out after {args.timeout} s', file=sys.stderr)
        if codes['sim_node'] != 0 or len(ends) < args.episodes or timed_out:
            for name in processes:
                print(f'--- {name} log tail ---\n{_tail(logs[name])}', file=sys.stderr)
            return 1
        return 0
    finally:
        for process in processes.values():
            _stop(process)
        rclpy.try_shutdown()


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the omegaq-bringup command line."""
    parser = argparse.ArgumentParser(prog='omegaq-bringup', description=__doc__.split('\n')[1])
    commands = parser.add_subparsers(dest='command', required=True)
    sim = commands.add_parser('sim', help='sim_node + policy_node, sim-in-the-loop episodes')
    sim.add_argument('--artifact', default='', help='W4A4 artifact or FP checkpoint '
                     '("" = bundled)')
    sim.add_argument('--episodes', type=int, default=3)
    sim.add_argument('--task', default='', help='lift | bin | handover (default: YAML)')
    sim.add_argument('--seed', type=int, default=0)
    sim.add_argument('--episode-length', type=float, default=None,
                     help="sim seconds per episode (default: YAML; 0 = the task's horizon)")
    sim.add_argument('--device', default='auto',
                     help='policy device: auto (cuda where available, the fast path) | cuda | cpu')
    sim.add_argument('--policy-param', action='append', metavar='NAME:=VALUE',
                     help='extra policy_node parameter override (repeatable)')
    sim.add_argument('--namespace', default='',
                     help='run both nodes under /NAMESPACE (their topics follow)')
    sim.add_argument('--domain-id', type=int, default=None, help='default: random 1..101')
    sim.add_argument('--log-dir', default='')
    sim.add_argument('--timeout', type=float, default=600.0, help='wall seconds at most')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f'expected --episodes >= 1, got {args.episodes}')
    args.namespace = args.namespace.strip('/')
    if args.namespace and not all(part.isidentifier() for part in args.namespace.split('/')):
        parser.error(f"--namespace: expected names of letters, digits and '_' separated by "
                     f"'/', got '{args.namespace}'")
    return args


def main(argv=None) -> int:
    """Run omegaq-bringup."""
    args = parse_args(argv)
    return run_sim(args)


if __name__ == '__main__':
    sys.exit(main())
