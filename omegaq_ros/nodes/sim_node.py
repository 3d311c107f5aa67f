# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Sim node: the MuJoCo bimanual ARX R5 scene (omegaq_ros.sim) over ROS 2.

Every control tick (1 / rate, the env's control period) it executes the current action chunk,
steps the physics, renders the cameras and publishes them (rgb8, sensor-data QoS) with the
14-D /joint_states, all stamped with the tick time. Chunks (trajectory_msgs/JointTrajectory)
are executed per arm by robot/trajectory_follower.TrajectoryFollower, with
JointTrajectoryController semantics: a chunk starts at its header stamp, points already
elapsed are skipped, a chunk that ends in the past is dropped, a new chunk replaces the
current one; without a chunk the arms hold their last command. The follower's velocity
limits are the ARX bridge's defaults.

Time: with publish_clock false, stamps are this node's clock (wall time, so the policy node's
observation age and the chunk stamps are comparable); with publish_clock true the node
publishes /clock with sim time (tick index x period, from 1 s) and stamps with it; run the
other nodes with use_sim_time:=true then.

The scene is held (observations republished with fresh stamps, no physics) until the first
chunk is accepted, so a policy that is still loading does not lose the first episode.
Episodes: `episode_length` seconds of sim time (0 = the task's own horizon), then success is
evaluated and reported on `status_topic` (std_msgs/String JSON, reliable, transient-local,
depth 50): {"event": "episode_end", "episode", "seed", "task", "success", "steps",
"chunks_received", "chunks_accepted", "chunks_dropped", "ticks_commanded"}; an
{"event": "episode_start", ...} line opens each episode and {"event": "finished", ...} ends the
run. Episode i uses seed `seed` + i. After `episodes` episodes (0 = forever) the node exits
with code 0. ~/reset (std_srvs/Trigger) restarts the current episode from the current value
of the `seed` parameter (set it first with `ros2 param set /sim_node seed N`).
"""

import json
import sys

from omegaq_ros import sim                           # noqa: F401  (MUJOCO_GL=egl first)
from omegaq_ros import topics
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.nodes.parameters import ARX_R5_BRIDGE, declare_table, SIM_NODE
from omegaq_ros.nodes.spin import spin_node, StartupError
from omegaq_ros.robot import arx_r5
from omegaq_ros.robot.arx_r5_mapping import arm_slice
from omegaq_ros.robot.trajectory_follower import TrajectoryFollower
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.tasks import TASKS
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

CLOCK_START_S = 1.0                     # stamp 0 means "now" to a JTC, so sim time starts at 1


class SimNode(Node):
    """Publish the simulated robot's sensors, execute chunks, run and score episodes."""

    def __init__(self):
        """Declare parameters, build the env, publishers, subscription, service and timer."""
        super().__init__('sim_node')
        self.params = p = declare_table(self, SIM_NODE)
        if p['task'] not in TASKS:
            raise StartupError(f"task: expected one of {sorted(TASKS)}, got {p['task']!r}")
        names, image_topics = list(p['camera_names']), list(p['camera_topics'])
        if len(names) != len(image_topics) or not (
                p['rate'] > 0 and p['episode_length'] >= 0 and p['episodes'] >= 0):
            raise StartupError(f'expected one topic per camera, rate > 0, episode_length >= 0, '
                               f"episodes >= 0; got {names}, {image_topics}, {p['rate']}, "
                               f"{p['episode_length']}, {p['episodes']}")
        try:
            self.env = BimanualEnv(p['task'], (p['image_height'], p['image_width']),
                                   control_period_s=1.0 / p['rate'])
        except ValueError as error:
            raise StartupError(f'cannot build the scene: {error}') from None
        unknown = [name for name in names if name not in self.env.camera_names]
        if unknown:
            raise StartupError(f'camera_names: {unknown} are not scene cameras '
                               f'{list(self.env.camera_names)}')
        self.camera_names = names
        self.period = 1.0 / p['rate']
        bridge = {key: ARX_R5_BRIDGE[key][0] for key in
                  ('max_joint_velocity', 'max_gripper_velocity')}
        self.followers = {arm: TrajectoryFollower(
            arm, p['rate'], bridge['max_joint_velocity'], bridge['max_gripper_velocity'])
            for arm in arx_r5.ARMS}
        self.finished = False
        self.started = False                 # True once the first chunk was accepted
        self.episode = 0
        self.ticks = 0                       # ticks since start (sim clock)
        self.results = []

        self.image_pubs = {name: self.create_publisher(conv.Image, topic,
                                                       qos_profile_sensor_data)
                           for name, topic in zip(names, image_topics)}
        self.joint_state_pub = self.create_publisher(conv.JointState, p['joint_states_topic'],
                                                     10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction_pub = self.create_publisher(conv.String, p['instruction_topic'],
                                                     latched)
        status_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = self.create_publisher(conv.String, p['status_topic'], status_qos)
        self.clock_pub = None
        if p['publish_clock']:
            from rosgraph_msgs.msg import Clock
            self.clock_pub = self.create_publisher(Clock, topics.CLOCK, 10)
            self.clock_type = Clock
        self.action_sub = self.create_subscription(
            conv.JointTrajectory, p['action_topic'], self.action_callback, 10)
        self.reset_srv = self.create_service(conv.Trigger, '~/reset', self.reset_callback)
        self._start_episode(p['seed'])
        self.timer = self.create_timer(self.period, self.tick_callback)

    # ------------------------------------------------------------------ time and episodes

    def _now(self) -> float:
        if self.clock_pub is not None:
            return CLOCK_START_S + self.ticks * self.period
        return self.get_clock().now().nanoseconds * 1e-9

    def _start_episode(self, seed: int) -> None:
        self.seed = int(seed)
        self.observation = self.env.reset(self.seed, render=True)
        self.command = self.observation.state.astype(float).copy()
        for follower in self.followers.values():
            follower.reset()
        self.counts = dict.fromkeys(('chunks_received', 'chunks_accepted', 'chunks_dropped',
                                     'ticks_commanded'), 0)
        length = self.params['episode_length']
        self.episode_steps = (int(round(length / self.period)) if length > 0
                              else self.env.max_steps)
        self.instruction_pub.publish(conv.String(data=self.env.instruction))
        self._status({'event': 'episode_start', 'episode': self.episode, 'seed': self.seed,
                      'task': self.env.task.name, 'instruction': self.env.instruction,
                      'steps': self.episode_steps})
        self._publish_observation(self._now())

    def _status(self, record: dict) -> None:
        self.status_pub.publish(conv.String(data=json.dumps(record, sort_keys=True)))

    def _end_episode(self) -> None:
        success = bool(self.env.success())
        record = {'event': 'episode_end', 'episode': self.episode, 'seed': self.seed,
                  'task': self.env.task.name, 'success': success,
                  'steps': self.env.step_count, **self.counts}
        self.results.append(record)
        self._status(record)
        self.get_logger().info(
            f"episode {self.episode + 1}: task {record['task']} seed {self.seed} "
            f"{'SUCCESS' if success else 'failure'} ({record['steps']} steps, "
            f"{self.counts['chunks_accepted']}/{self.counts['chunks_received']} chunks "
            f"accepted, {self.counts['ticks_commanded']} ticks commanded)")
        self.episode += 1
        episodes = self.params['episodes']
        if episodes and self.episode >= episodes:
            wins = sum(r['success'] for r in self.results)
            self._status({'event': 'finished', 'episodes': len(self.results),
                          'successes': wins})
            self.get_logger().info(f'finished: {wins}/{len(self.results)} episodes succeeded')
            self.finished = True
            self.timer.cancel()
            return
        self._start_episode(self.params['seed'] + self.episode)

    # ------------------------------------------------------------------ callbacks

    def action_callback(self, msg) -> None:
        """Replace the executed trajectory of both arms (JointTrajectoryController rules)."""
        self.counts['chunks_received'] += 1
        try:
            stamp, times, positions = conv.joint_trajectory_to_arrays(msg)
        except conv.ConversionError as error:
            self.counts['chunks_dropped'] += 1
            self.get_logger().warn(f'chunk dropped: {error}', throttle_duration_sec=2.0)
            return
        now = self._now()
        reasons = []
        for arm, follower in self.followers.items():
            part = arm_slice(arm)
            reason = follower.accept(stamp, times, positions[:, part], now, self.command[part])
            if reason:
                reasons.append(f'{arm}: {reason}')
        if reasons:
            for follower in self.followers.values():
                follower.reset()            # both arms follow one chunk or neither does
            self.counts['chunks_dropped'] += 1
            self.get_logger().warn(f"chunk dropped: {'; '.join(reasons)}",
                                   throttle_duration_sec=2.0)
            return
        self.counts['chunks_accepted'] += 1
        if not self.started:
            self.started = True
            self.get_logger().info('first action chunk accepted: episodes start')

    def tick_callback(self) -> None:
        """Advance one control period: command, physics, render, publish, episode end."""
        if self.finished:
            return
        if not self.started:                 # hold the scene until a policy is running
            self.ticks += 1
            self._publish_observation(self._now())
            return
        now = self._now()
        commanded = False
        for arm, follower in self.followers.items():
            part = arm_slice(arm)
            target = follower.command(now, self.command[part])
            if target is not None:
                self.command[part] = target
                commanded = True
        self.counts['ticks_commanded'] += int(commanded)
        self.observation = self.env.step(self.command, render=True)
        self.ticks += 1
        self._publish_observation(self._now())
        if self.env.step_count >= self.episode_steps:
            self._end_episode()

    def reset_callback(self, request, response):
        """Restart the current episode from the `seed` parameter's current value."""
        seed = int(self.get_parameter('seed').value)
        self._start_episode(seed)
        response.success = True
        response.message = f'episode {self.episode + 1} restarted with seed {seed}'
        return response

    def _publish_observation(self, stamp: float) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(self.clock_type(clock=conv.seconds_to_stamp(stamp)))
        for name in self.camera_names:
            self.image_pubs[name].publish(conv.image_from_array(
                self.observation.images[name], stamp, name))
        self.joint_state_pub.publish(conv.joint_state_from_array(self.observation.state, stamp))

    def destroy_node(self):
        """Release the renderer, then destroy the node."""
        self.env.close()
        return super().destroy_node()


def main(args=None) -> int:
    """Run the sim until `episodes` episodes are done (or Ctrl-C); exit code 0."""
    return spin_node(SimNode, 'sim_node', args, done=lambda node: node.finished,
                     linger_s=0.5)


if __name__ == '__main__':
    sys.exit(main())
