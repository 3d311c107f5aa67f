# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Reliability of policy_node against a running process, over real DDS.

One policy_node process serves the tests that feed it input (each starts with ~/reset): future
stamps must not lock a camera out, oversized images must not be buffered, ~/reset must cancel
an inference in flight, refusals must name what is wrong, a long instruction must not push the
state out of the prompt. Own processes: a failed artifact load repeats its ERROR at most once a
second; sim_node and policy_node in one process group exit 0 on SIGINT/SIGTERM, once or twice.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.robot import arx_r5
import pytest

import test_node_policy_inputs as inputs
from test_node_support import INSTRUCTIONS, ROOT, ros_env, shared_policy

SIZE = inputs.SIZE
WAIT_S = inputs.WAIT_S
LONG_INSTRUCTION = 'pick up the cube and put it down gently ' * 2500     # 100,000 characters


class Robot(inputs.Robot):
    """The fake robot of test_node_policy_inputs with the inputs the reliability checks need."""

    def __init__(self, domain_id: int):
        super().__init__(domain_id)
        self.arrivals = []                     # (monotonic time, chunk)
        self.node.create_subscription(
            conv.JointTrajectory, '/action_chunk',
            lambda msg: self.arrivals.append((time.monotonic(), msg)), 10)
        self.huge = np.zeros((1080, 1920, 3), np.uint8)
        self.reset_client = self.node.create_client(conv.Trigger, '/policy_node/reset')

    def publish(self, mode: str = 'good'):
        now = self.node.get_clock().now().nanoseconds * 1e-9
        self.stamps.add(round(now, 6))
        for name, pub in self.cameras.items():
            image, stamp = self.rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), now
            if name == 'cam_high' and mode == 'future':
                stamp = now + 3600.0
            if name == 'cam_high' and mode == 'huge':
                image = self.huge
            pub.publish(conv.image_from_array(image, stamp, name))
        positions, names = inputs.HOME.copy(), list(arx_r5.JOINT_NAMES)
        if mode == 'big_value':
            positions[3] = 1e300
        if mode == '13_joints':
            self.joints.publish(conv.joint_state_from_array(positions[:13], now, names[:13]))
            return
        for part in (slice(0, 7), slice(7, 14)):
            self.joints.publish(conv.joint_state_from_array(positions[part], now, names[part]))
        if mode == 'good_then_bad_joints':       # then a corrupt one: a joint named twice
            self.joints.publish(conv.joint_state_from_array(positions[:2], now,
                                                            [names[0], names[0]]))

    def spin(self, seconds: float):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def reset(self) -> float:
        """Call ~/reset; return the monotonic time its response arrived."""
        assert self.reset_client.wait_for_service(timeout_sec=10.0)
        future = self.reset_client.call_async(conv.Trigger.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.result() is not None and future.result().success
        return time.monotonic()

    def set_instruction(self, text: str):
        self.instruction.publish(conv.String(data=text))

    def warnings(self, text: str) -> list:
        return [m for level, m in self.messages() if level == bytes([1]) and text in m]


def rss_anon_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as stream:
        for line in stream:
            if line.startswith('RssAnon:'):
                return int(line.split()[1]) / 1024
    raise AssertionError('no RssAnon')


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    env = ros_env()
    log = str(tmp_path_factory.mktemp('reliability') / 'policy_node.log')
    params = [p for p in inputs.POLICY_PARAMS if not p.startswith('rate:=')] + ['rate:=20.0']
    saved, inputs.POLICY_PARAMS = inputs.POLICY_PARAMS, params
    try:
        process = inputs.start_policy_node(shared_policy()[1], env, log)
    finally:
        inputs.POLICY_PARAMS = saved
    robot = Robot(int(env['ROS_DOMAIN_ID']))
    try:
        assert robot.drive('good', WAIT_S, until_chunk=True), 'no chunk from good input'
        yield process, robot
    finally:
        robot.close()
        code = inputs.stop(process)
        assert code == 0, open(log).read()[-2000:]


@pytest.fixture
def robot(node):
    process, robot = node
    robot.set_instruction(INSTRUCTIONS[0])
    robot.reset()
    robot.clear()
    robot.arrivals.clear()
    yield robot
    assert process.poll() is None, 'policy_node died'


def test_future_stamps_do_not_lock_a_camera_out(robot):
    for _ in range(35):                        # more than the 30 buffered per camera
        robot.publish('future')
        robot.spin(0.03)
    # On a loaded CPU an inference can outlast the second a refusal names recent input
    # errors for: keep the future stamps coming until a refusal reports them.
    robot.drive('future', 30.0, until=lambda: robot.refusals("ahead of this node's clock"))
    assert robot.refusals("ahead of this node's clock"), robot.messages()[-3:]
    robot.clear()
    assert robot.drive('good', 30.0, until_chunk=True), robot.messages()[-3:]
    inputs.check_chunk(robot.chunks[-1], robot.stamps)


def test_oversized_images_are_refused_before_they_are_buffered(node, robot):
    process = node[0]
    robot.drive('good', 1.0)
    before = rss_anon_mb(process.pid)
    for _ in range(40):                        # 40 x 6.2 MB 1920x1080 images on one camera
        robot.publish('huge')
        robot.spin(0.1)
    grown = rss_anon_mb(process.pid) - before
    assert robot.refusals('expected size (height, width) (96, 96), got (1080, 1920)'), \
        robot.messages()[-3:]
    buffered = [int(kv.value) for array in robot.diagnostics for status in array.status
                for kv in status.values if kv.key == 'buffered_bytes']
    # Only the 96x96 images are held: 30 per camera at most (before: 30 x 6.2 MB on cam_high).
    assert buffered and max(buffered) <= 3 * 30 * 3 * SIZE * SIZE, max(buffered, default=None)
    # DDS and the allocator keep some of the 250 MB received; buffering them would add 186 MB.
    assert grown < 180.0, f'policy_node grew by {grown:.0f} MB while refusing 4K images'
    robot.clear()
    assert robot.drive('good', 30.0, until_chunk=True), robot.messages()[-3:]


def test_reset_cancels_an_inference_in_flight(robot):
    late = []
    for _ in range(5):
        robot.clear()
        assert robot.drive('good', 30.0, until_chunk=True)
        robot.drive('good', 0.3)               # the worker infers back to back at 20 Hz
        robot.arrivals.clear()
        answered = robot.reset()               # no observation is published after this
        robot.spin(1.5)
        late += [at - answered for at, _ in robot.arrivals if at > answered + 0.02]
    assert late == [], f'chunks published {late} s after ~/reset returned'


@pytest.mark.parametrize('mode,reason', [
    ('13_joints', "joint state incomplete: no recent value for ['right_gripper']"),
    ('big_value', 'joint state out of range: left_joint4 = 1e+300'),
    ('empty_instruction', 'the instruction received on /instruction is empty'),
])
def test_refusals_name_what_is_wrong(robot, mode, reason):
    if mode == 'empty_instruction':
        robot.set_instruction('')
        mode = 'good'
    robot.drive(mode, WAIT_S, until=lambda: robot.refusals(reason))
    assert robot.refusals(reason), robot.messages()[-3:]
    robot.drive(mode, 1.0)
    robot.chunks.clear()
    robot.drive(mode, 1.5)
    assert robot.chunks == []


def test_a_corrupt_message_among_good_ones_does_not_stall_the_arm(robot):
    """Refused on arrival and never buffered, bad messages leave the good observation usable."""
    assert robot.drive('good_then_bad_joints', 60.0, until_chunk=True), robot.messages()[-3:]
    inputs.check_chunk(robot.chunks[-1], robot.stamps)
    robot.spin(1.0)
    assert any('refused malformed input meanwhile' in message and 'duplicate' in message
               for _, message in robot.messages()), robot.messages()[-3:]


def test_a_long_instruction_keeps_the_state_and_warns(robot):
    robot.set_instruction(LONG_INSTRUCTION)
    text = 'instruction cut to fit the 96-token prompt with the whole state'
    robot.drive('good', WAIT_S, until=lambda: robot.chunks and robot.warnings(text))
    assert robot.chunks and robot.warnings(text), robot.messages()[-3:]
    assert 'chunk of 8 points published' in robot.warnings(text)[-1]


def test_a_failed_load_repeats_its_error_at_most_once_a_second(tmp_path):
    env = ros_env()
    process = inputs.start_policy_node(str(tmp_path / 'missing'), env,
                                       str(tmp_path / 'policy_node.log'))
    robot = Robot(int(env['ROS_DOMAIN_ID']))
    try:
        error = bytes([2])
        robot.drive('good', WAIT_S, until=lambda: robot.refusals('policy failed to load', error))
        robot.clear()
        robot.drive('good', 3.0)
        count = len(robot.refusals('policy failed to load', error))
        assert 2 <= count <= 4, f'{count} identical ERRORs in 3 s (rate 5 Hz)'
    finally:
        robot.close()
        assert inputs.stop(process) == 0


@pytest.mark.parametrize('stop_signal,count', [(signal.SIGINT, 2), (signal.SIGTERM, 1)])
def test_sim_and_policy_exit_cleanly_on_signals_to_their_process_group(
        tmp_path, stop_signal, count):
    env = ros_env()
    logs = {name: tmp_path / f'{name}.log' for name in ('policy_node', 'sim_node')}
    args = [sys.executable, '-m', 'omegaq_ros.nodes.policy_node', '--ros-args',
            '-p', f'artifact:={shared_policy()[1]}']
    for param in inputs.POLICY_PARAMS:             # the sim renders 224 x 224
        args += ['-p', param.replace(f':={SIZE}', ':=224')]
    policy = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(logs['policy_node'], 'w'),
                              stderr=subprocess.STDOUT, process_group=0)   # as a launch
    sim = subprocess.Popen(
        [sys.executable, '-m', 'omegaq_ros.nodes.sim_node', '--ros-args', '-p',
         'image_height:=224', '-p', 'image_width:=224'], cwd=ROOT, env=env,
        stdout=open(logs['sim_node'], 'w'), stderr=subprocess.STDOUT, process_group=policy.pid)
    try:
        deadline = time.monotonic() + WAIT_S
        while 'chunk' not in logs['sim_node'].read_text():      # accepted or dropped
            assert time.monotonic() < deadline and sim.poll() is None, \
                logs['sim_node'].read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.0)                        # chunks flow: inferences are running
        for _ in range(count):
            os.killpg(policy.pid, stop_signal)
            time.sleep(0.3)
        codes = {name: p.wait(60) for name, p in (('policy_node', policy), ('sim_node', sim))}
    finally:
        for p in (policy, sim):
            if p.poll() is None:
                p.kill()
    for name, code in codes.items():
        text = logs[name].read_text()
        assert code == 0 and 'Traceback' not in text and 'terminate called' not in text, \
            f'{name} exit {code}: {text[-2000:]}'


REFUSAL_GARBAGE = r"""
import gc, sys, time
import numpy as np
import rclpy
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.nodes.policy_node import PolicyNode
rclpy.init(args=['--ros-args', '-p', 'start_enabled:=false', '-p', 'artifact:=' + sys.argv[1]])
node = PolicyNode()
deadline = time.monotonic() + 60.0
while not node.load_error and time.monotonic() < deadline:   # the worker gives up loading
    time.sleep(0.05)
gc.collect()
gc.disable()
gc.set_debug(gc.DEBUG_SAVEALL)
for _ in range(5):                   # as the executor does: the node holds the only reference
    node.image_callback('cam_high', conv.image_from_array(
        np.zeros((64, 48, 3), np.uint8), time.time(), 'cam_high'))
gc.collect()
print(sum(isinstance(obj, conv.Image) for obj in gc.garbage), node.input_errors and 'refused')
node.destroy_node()
rclpy.shutdown()
"""


def test_refused_images_are_freed_at_once_not_by_the_garbage_collector(tmp_path):
    """A refused message must not sit in a reference cycle (before: 1.1 GB under a 4K flood)."""
    run = subprocess.run([sys.executable, '-c', REFUSAL_GARBAGE, str(tmp_path / 'missing')],
                         capture_output=True, text=True, env=ros_env(), cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    in_cycles, refused = run.stdout.split()[-2:]
    assert refused == 'refused', run.stdout
    assert in_cycles == '0', f'{in_cycles} refused images were only reachable through cycles'
