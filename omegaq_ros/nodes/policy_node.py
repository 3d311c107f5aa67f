# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Policy node: cameras + joint states + instruction -> action chunks (JointTrajectory).

Callbacks only buffer messages (ObservationSync, JointStateAssembler) and set flags; a timer
at `rate` wakes one worker thread, which selects the newest time-aligned observation set,
converts it, runs the policy, applies the safety filter and publishes the chunk stamped with
the observation time (point k at (k + 1) * dt, the first `chunk_horizon` points). The
executor thread never runs inference, so subscriptions and services stay responsive.

Refusals: stale, missing, malformed or non-finite input, an unknown joint name, a policy that
is not loaded, a safety-filter refusal. The node then publishes no chunk, says why on
/diagnostics (level WARN; ERROR while no policy is loaded) and in a throttled log line, and
tries again on the next tick: good input makes it publish again. An unchanged status is
repeated on /diagnostics at most once a second (as diagnostic_updater does).

Messages are checked on arrival, before they are buffered: a wrong image encoding or size, or
a stamp more than max_obs_age ahead of this node's clock, is refused and reported, so it never
holds memory nor pushes valid messages out of the (count- and byte-bounded) buffers. The whole
joint state is always in the prompt: a too long instruction is cut to fit the token budget and
the chunk's status is WARN saying so.

The artifact is loaded by the worker at start-up. If that fails (missing, corrupt, checksum
mismatch) the node stays up on purpose: /diagnostics carries the ERROR and the reason at the
node's rate, a supervisor sees it, and ~/reset retries the load (after the file was fixed)
without restarting the process. It never publishes a chunk without a loaded policy. Only bad
parameters (a configuration error) make it exit with code 1.

Services: ~/enable (std_srvs/SetBool) starts/stops publishing; ~/reset (std_srvs/Trigger)
forgets buffered input and retries loading a policy that failed to load; a chunk computed from
observations taken before a reset is never published after it.
"""

import threading
import time
from typing import Optional

import numpy as np
from omegaq_ros import topics
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.nodes.observation_sync import JointStateAssembler, ObservationSync
from omegaq_ros.nodes.parameters import declare_table, POLICY_NODE
from omegaq_ros.nodes.spin import spin_node, StartupError
from omegaq_ros.robot import arx_r5
from omegaq_ros.robot.safety import load_joint_limits, SafetyFilter
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

JOINT_STATES_KEY = 'joint_states'
STATUS_NAME = 'policy_node: inference'
INPUT_ERROR_WINDOW_S = 1.0          # an input error this recent is reported on diagnostics
LOG_THROTTLE_S = 2.0
DIAGNOSTICS_REPEAT_S = 1.0          # an unchanged status is republished at most this often
BUFFER_FRAMES = 30                  # messages buffered per topic (also bounded in bytes)
STATE_LIMIT_MARGIN = 0.5            # a joint state further outside its limits is refused


class _Stopping(Exception):
    """The node is being destroyed: the worker must not touch ROS objects any more."""


class PolicyNode(Node):
    """Run a pi0.5 policy on synchronized observations and publish safe action chunks."""

    def __init__(self):
        """Declare parameters, topics, services and the timer; start the worker thread."""
        super().__init__('policy_node')
        self.params = p = declare_table(self, POLICY_NODE)
        names, image_topics = list(p['camera_names']), list(p['camera_topics'])
        if len(names) != len(image_topics) or not names:
            raise StartupError(f'camera_names and camera_topics: expected one topic per camera,'
                               f' got {names} and {image_topics}')
        if not (p['rate'] > 0 and p['dt'] > 0 and p['chunk_horizon'] >= 1
                and p['image_height'] > 0 and p['image_width'] > 0):
            raise StartupError('rate, dt, chunk_horizon, image_height and image_width must be '
                               f"> 0, got {p['rate']}, {p['dt']}, {p['chunk_horizon']}, "
                               f"{p['image_height']}, {p['image_width']}")
        try:
            limits = (load_joint_limits(p['joint_limits_file']) if p['joint_limits_file']
                      else None)
            self.safety = SafetyFilter(p['max_delta_per_step'], p['max_gripper_delta_per_step'],
                                       limits)
            # The largest camera message accepted: the raw image, or an encoded one a bit larger.
            self.max_image_bytes = int(3 * p['image_height'] * p['image_width'] * 1.25) + 65536
            self.sync = ObservationSync([*names, JOINT_STATES_KEY], p['sync_slop'],
                                        p['max_obs_age'], BUFFER_FRAMES,
                                        max_bytes=BUFFER_FRAMES * self.max_image_bytes)
        except (OSError, ValueError) as error:
            raise StartupError(str(error)) from None
        self.camera_names = names
        self.joints = JointStateAssembler(arx_r5.JOINT_NAMES, p['sync_slop'])
        self.lock = threading.Lock()          # guards sync, joints, instruction, input_errors
        self.instruction = p['default_instruction']
        self.instruction_received = False     # one arrived on instruction_topic
        self.generation = 0                   # +1 per ~/reset: older inferences never publish
        self.last_diagnostics = (None, 0.0)   # (level, message), monotonic time published
        self.input_errors = {}                # source -> (wall time, reason)
        self.enabled = bool(p['start_enabled'])
        self.policy = None
        self.load_error = ''                  # why no policy is loaded ('' while loading)
        self.reload = threading.Event()
        self.reload.set()                     # first load happens in the worker
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.ros_lock = threading.Lock()       # worker's ROS calls vs destroy_node
        self.stats = {'chunks_published': 0, 'refusals': 0, 'inference_ms': float('nan'),
                      'observation_age_ms': float('nan'), 'last_refusal': ''}
        # Messages taken off each camera topic (benchmarks compare them with what was sent).
        self.stats.update({f'received_{name}': 0 for name in names})

        image_type = conv.CompressedImage if p['compressed_images'] else conv.Image
        suffix = '/compressed' if p['compressed_images'] else ''
        # Sensor-data QoS kept to the newest image: the observation buffer holds the recent
        # ones, and each sample the middleware queues costs a full frame of memory (a 4K flood
        # held five 25 MB frames per camera at the default depth of 5).
        newest_image = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                                  durability=DurabilityPolicy.VOLATILE)
        self.image_subs = [
            self.create_subscription(image_type, topic + suffix,
                                     lambda msg, name=name: self.image_callback(name, msg),
                                     newest_image)
            for name, topic in zip(names, image_topics)]
        # Diagnostics name topics as resolved (namespace and remapping applied), as users see
        # them in `ros2 topic list`.
        self.image_topics = {name: sub.topic_name for name, sub in zip(names, self.image_subs)}
        self.joint_state_sub = self.create_subscription(
            conv.JointState, p['joint_states_topic'], self.joint_state_callback,
            qos_profile_sensor_data)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction_sub = self.create_subscription(
            conv.String, p['instruction_topic'], self.instruction_callback, latched)
        self.chunk_pub = self.create_publisher(conv.JointTrajectory, p['action_topic'], 10)
        self.diagnostics_pub = self.create_publisher(conv.DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.enable_srv = self.create_service(conv.SetBool, '~/enable', self.enable_callback)
        self.reset_srv = self.create_service(conv.Trigger, '~/reset', self.reset_callback)
        self.timer = self.create_timer(1.0 / p['rate'], self.timer_callback)
        self.worker = threading.Thread(target=self.worker_loop, name='policy_worker',
                                       daemon=True)
        self.worker.start()

    # ------------------------------------------------------------------ callbacks (short)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _guarded(self, function, *args, **kwargs):
        """Call a ROS function from the worker unless the node is being destroyed."""
        with self.ros_lock:
            if self.stopping.is_set():
                raise _Stopping()
            return function(*args, **kwargs)

    def _worker_now(self) -> float:
        return self._guarded(self._now)

    def _input_error(self, source: str, reason: str) -> None:
        with self.lock:
            self.input_errors[source] = (time.monotonic(), reason)

    def image_callback(self, name: str, msg) -> None:
        """Check one camera message and buffer it by its stamp (converted in the worker)."""
        # Reasons are kept as strings, never as exceptions: a kept exception's traceback holds
        # this frame and so the message, a cycle only the garbage collector frees, and under
        # a flood of refused 4K images dozens of 25 MB messages waited for it.
        reason = None
        try:                                   # header checks only: no copy, no decoding
            if self.params['compressed_images']:
                nbytes = conv.check_compressed_image(msg, self.max_image_bytes)
            else:
                nbytes = conv.check_image(msg, (self.params['image_height'],
                                                self.params['image_width']))
        except conv.ConversionError as error:
            reason = str(error)
        stamp, now = conv.stamp_to_seconds(msg.header.stamp), self._now()
        with self.lock:
            self.stats[f'received_{name}'] += 1
            if reason is None:
                try:
                    self.sync.add(name, stamp, msg, now=now, nbytes=nbytes)
                except ValueError as error:        # stamp ahead of the clock, too large
                    reason = str(error)
        if reason is not None:
            self._input_error(self.image_topics[name], reason)

    def joint_state_callback(self, msg) -> None:
        """Add a (possibly per-arm) JointState; buffer the full 14-D state when complete."""
        stamp, now = conv.stamp_to_seconds(msg.header.stamp), self._now()
        try:
            positions = conv.joint_state_positions(msg)
            with self.lock:
                self.sync.check_stamp(JOINT_STATES_KEY, stamp, now)
                full = self.joints.update(stamp, positions)
                if full is not None:
                    self.sync.add(JOINT_STATES_KEY, full[0], full[1], now=now)
        except ValueError as error:            # ConversionError, unknown joints, future stamp
            self._input_error(self.joint_state_sub.topic_name, str(error))

    def instruction_callback(self, msg) -> None:
        """Use the newest instruction for the following chunks."""
        with self.lock:
            self.instruction = str(msg.data)
            self.instruction_received = True

    def timer_callback(self) -> None:
        """Wake the worker for one inference attempt (skipped while it is still busy)."""
        self.wake.set()

    def enable_callback(self, request, response):
        """Start (data true) or stop publishing chunks."""
        self.enabled = bool(request.data)
        response.success = True
        response.message = 'publishing chunks' if self.enabled else 'chunk publishing stopped'
        self.get_logger().info(response.message)
        return response

    def reset_callback(self, request, response):
        """Forget buffered input; retry loading the policy if it failed to load."""
        with self.lock:
            self.sync.reset()
            self.joints.reset()
            self.input_errors.clear()
            self.generation += 1               # an inference in flight must not publish
        response.success = True
        response.message = 'input buffers cleared'
        if self.policy is None and self.load_error:
            self.load_error = ''
            self.reload.set()
            self.wake.set()
            response.message += '; reloading the policy'
        return response

    # ------------------------------------------------------------------ worker thread

    def worker_loop(self) -> None:
        """Load the policy, then run one attempt per timer tick until the node stops."""
        while not self.stopping.is_set():
            try:
                self._worker_step()
            except _Stopping:
                break
            except Exception as error:         # never let the worker die: refuse instead
                try:
                    self._refuse(f'internal error {type(error).__name__}: {error}', 'error')
                except Exception:
                    pass

    def _worker_step(self) -> None:
        if self.reload.is_set():
            self.reload.clear()
            self._load_policy()
        self.wake.wait(timeout=0.5)
        if self.wake.is_set() and not self.stopping.is_set():
            self.wake.clear()
            self._attempt()

    def _load_policy(self) -> None:
        from omegaq_ros.policy.bundled import bundled_model
        from omegaq_ros.policy.registry import load_policy
        from omegaq_ros.policy.runtime import policy_options
        path = self.params['artifact']
        try:
            path = path or bundled_model('artifact')
            options = policy_options(*(self.params[name] for name in (
                'device', 'dtype', 'backend', 'cuda_graph', 'fused_pointwise')))
            self.get_logger().info(f"loading {path}; {options.pop('text')}")
            embodiment = self.params['embodiment'] or None
            policy = load_policy(path, embodiment=embodiment, **options)  # path's type picks
            missing = [c for c in policy.config.cameras if c not in self.camera_names]
            if missing:
                raise ValueError(f'the policy expects cameras {list(policy.config.cameras)}, '
                                 f'camera_names has {self.camera_names}')
            if policy.tokenizer is None:
                raise ValueError('the policy has no tokenizer (its tokenizer files are missing)')
            # Compiles and captures the GPU path now rather than on the first observation,
            # and refuses a policy whose chunk is not finite before it can drive anything.
            warm = policy.warm_up(self.params['default_instruction'] or 'warm up')
            self.get_logger().info(f'warm-up chunk in {warm:.1f} s')
        except Exception as error:             # any load failure keeps the node up, refusing
            self.load_error = f'policy failed to load from {path!r}: {error}'
            self.get_logger().error(self.load_error)
            return
        self.policy, self.load_error = policy, ''
        self.stats['artifact'] = path
        self.get_logger().info(f'policy loaded ({"W4A4" if policy.quantized else "FP"}, '
                               f'horizon {policy.config.horizon}, cameras '
                               f'{list(policy.config.cameras)})')
        summary = policy.backend_summary
        if summary['quantized_layers']:
            log = (self.get_logger().warning if summary['reference_arithmetic'] and
                   summary['backend'] == 'triton' else self.get_logger().info)
            log(summary['text'])

    def _refuse(self, reason: str, level: str = 'warn') -> None:
        self.stats['refusals'] += 1
        self.stats['last_refusal'] = reason
        if not self.stopping.is_set():
            self.get_logger().warn(f'no chunk: {reason}', throttle_duration_sec=LOG_THROTTLE_S)
        self._publish_diagnostics(level, f'refused: {reason}')

    def _publish_diagnostics(self, level: str, message: str) -> None:
        """Publish the status; an unchanged (level, message) at most once per second."""
        now = time.monotonic()
        if (self.last_diagnostics[0] == (level, message)
                and now - self.last_diagnostics[1] < DIAGNOSTICS_REPEAT_S):
            return
        self.last_diagnostics = ((level, message), now)
        values = dict(self.stats)
        values['enabled'] = self.enabled
        values['policy_loaded'] = self.policy is not None
        msg = conv.diagnostic_array(
            {STATUS_NAME: {'level': level, 'message': message, 'values': values,
                           'hardware_id': self.get_fully_qualified_name()}}, self._worker_now())
        self._guarded(self.diagnostics_pub.publish, msg)

    def _recent_input_error(self) -> str:
        cutoff = time.monotonic() - INPUT_ERROR_WINDOW_S
        with self.lock:
            errors = [f'{source}: {reason}' for source, (at, reason) in
                      self.input_errors.items() if at >= cutoff]
        return '; '.join(errors)

    def _attempt(self) -> None:
        """Select, convert, infer, filter, publish; or refuse saying why."""
        if not self._ready():
            return
        observation = self._observation()
        if observation is None:
            return
        result, instruction, generation, images, state, input_note = observation
        started = time.perf_counter()
        try:
            prompt = self.policy.prompt(instruction, state)
            chunk = self.policy.predict(images, state, tokens=prompt.tokens,
                                        token_mask=prompt.mask)
        except ValueError as error:            # ObservationError and input checks
            self._refuse(f'observation refused by the policy: {error}')
            return
        inference_ms = (time.perf_counter() - started) * 1e3
        chunk = chunk[:self.params['chunk_horizon']]
        safe, report = self.safety(chunk, state)
        self.stats['inference_ms'] = inference_ms
        self.stats['observation_age_ms'] = (self._worker_now() - result.stamp) * 1e3
        if safe is None:
            self._refuse(f'safety filter: {report.reason}')
            return
        if not self.enabled:
            return
        self._publish_chunk(safe, result.stamp, generation, report,
                            '; '.join(note for note in (prompt.note, input_note) if note))

    def _ready(self) -> bool:
        """Return whether a policy is loaded and enabled; say on /diagnostics why not."""
        if self.policy is None:
            if self.load_error:
                self._refuse(self.load_error, level='error')
            else:
                self._publish_diagnostics('warn', 'loading the policy')
            return False
        if not self.enabled:
            self._publish_diagnostics('ok', 'disabled: call ~/enable true to publish chunks')
            return False
        return True

    def _observation(self):
        """
        Return (sync result, instruction, generation, images, state, note) to infer on, or None.

        None after a refusal that says why: malformed or missing input, an incomplete joint
        state, no instruction, bad images or a state the policy cannot take. Malformed
        messages are refused on arrival and never buffered, so a complete observation of
        valid messages is used even while another message was just refused (one bad frame
        must not stall the arm); the note then names what was refused, for the diagnostics.
        """
        now = self._worker_now()
        with self.lock:
            result = self.sync.select(now)
            instruction = self.instruction
            instruction_received = self.instruction_received
            generation = self.generation
            incomplete = self.joints.incomplete()
            self.stats['buffered_bytes'] = sum(self.sync.buffered_bytes().values())
        input_error = self._recent_input_error()
        if input_error and not result.ok:
            self._refuse(f'malformed input: {input_error} ({result.reason})')
            return None
        if not result.ok:
            if 0 < len(incomplete) < len(arx_r5.JOINT_NAMES):
                self._refuse(f'joint state incomplete: no recent value for {incomplete} on '
                             f'{self.joint_state_sub.topic_name} (expected the '
                             f'{len(arx_r5.JOINT_NAMES)} joints {list(arx_r5.JOINT_NAMES)} '
                             f'by name; {result.reason})')
            else:
                self._refuse(result.reason)
            return None
        if not instruction.strip():
            topic = self.instruction_sub.topic_name
            self._refuse(f'the instruction received on {topic} is empty: expected a task '
                         'description' if instruction_received else
                         f'no instruction yet on {topic} and no default_instruction')
            return None
        images = self._images(result.messages)
        if images is None:
            return None
        state = np.asarray(result.messages[JOINT_STATES_KEY], dtype=np.float64)
        reason = self._state_problem(state)
        if reason:
            self._refuse(reason)
            return None
        note = f'refused malformed input meanwhile: {input_error}' if input_error else ''
        return result, instruction, generation, images, state.astype(np.float32), note

    def _publish_chunk(self, safe: np.ndarray, stamp: float, generation: int, report,
                       note: str) -> None:
        """Publish the filtered chunk unless ~/reset came during its inference."""
        msg = conv.chunk_to_joint_trajectory(safe, stamp, self.params['dt'])
        with self.lock:                        # ~/reset cannot slip between check and publish
            current = generation == self.generation
            if current:
                self._guarded(self.chunk_pub.publish, msg)
        if not current:
            self._publish_diagnostics('ok', 'chunk discarded: ~/reset was called during its '
                                            'inference')
            return
        self.stats['chunks_published'] += 1
        self.stats['safety_clipped'] = report.clipped
        message = f'chunk of {len(safe)} points published'
        if note:
            self._publish_diagnostics('warn', f'{message}; {note}')
        else:
            self._publish_diagnostics('ok', message)

    def _state_problem(self, state: np.ndarray) -> str:
        """Return why a joint state cannot be used ('' if it can)."""
        names = arx_r5.JOINT_NAMES
        if not np.all(np.isfinite(state)):
            bad = [names[i] for i in np.flatnonzero(~np.isfinite(state))]
            return f'non-finite joint state (NaN or inf) at {bad}'
        lower = self.safety.limits[:, 0] - STATE_LIMIT_MARGIN
        upper = self.safety.limits[:, 1] + STATE_LIMIT_MARGIN
        bad = np.flatnonzero((state < lower) | (state > upper))
        if bad.size:
            limits = self.safety.limits
            values = ', '.join(f'{names[i]} = {state[i]:.6g} (limits [{limits[i, 0]:.4g}, '
                               f'{limits[i, 1]:.4g}])' for i in bad[:4])
            return (f'joint state out of range: {values}; expected positions within the joint '
                    f'limits +- {STATE_LIMIT_MARGIN}')
        return ''

    def _images(self, messages) -> Optional[list]:
        """Return RGB arrays in the policy's camera order, or refuse and return None."""
        expected = (self.params['image_height'], self.params['image_width'])
        convert = (conv.compressed_image_to_rgb if self.params['compressed_images']
                   else conv.image_to_rgb)
        images = []
        for name in self.policy.config.cameras:
            try:
                images.append(convert(messages[name], expected))
            except conv.ConversionError as error:
                self._refuse(f'camera {name}: {error}')
                return None
        return images

    def destroy_node(self):
        """Stop the worker thread, then destroy the node."""
        with self.ros_lock:                    # after this the worker touches no ROS object
            self.stopping.set()
        self.wake.set()
        self.worker.join(timeout=60.0)         # at most one inference to finish
        return super().destroy_node()


def main(args=None) -> int:
    """Run the policy node; exit code 1 only for bad parameters."""
    return spin_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
