# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Demonstrations as rosbag2 (MCAP) with the real robot's topics, through `rosbags` (no rclpy).

One bag directory per episode. Per control tick k, stamped with the sim time k x period:
  /cam_high/image_raw, /cam_left_wrist/image_raw, /cam_right_wrist/image_raw
      sensor_msgs/msg/Image, rgb8, the observation the action was computed from
  /joint_states     sensor_msgs/msg/JointState, arx_r5.JOINT_NAMES, measured positions
  /joint_commands   sensor_msgs/msg/JointState, same names, the commanded 14-D action
Once per episode:
  /instruction      std_msgs/msg/String, at the first stamp
  /episode_info     std_msgs/msg/String holding JSON {"task", "seed", "success", ...}, at
                    the last stamp. A topic rather than bag metadata, so that every rosbag2
                    tool (ros2 bag play/info, Foxglove) shows it and robot bags can carry
                    the same record.
Grippers are normalized (0 = open .. 1 = closed) in both JointState topics. Bags are written
as rosbag2 version 8, which ROS 2 Humble reads too.
"""

from dataclasses import dataclass, field
import json
from pathlib import Path

import numpy as np
from omegaq_ros import topics
from omegaq_ros.payloads import image_to_rgb, nearest_stamps, stamp_to_nanoseconds
from omegaq_ros.robot import arx_r5
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

# Bags record fully qualified names: a demonstration recorded in the root namespace.
CAMERA_TOPICS = {name: topics.absolute(topics.camera_image(name))
                 for name in arx_r5.CAMERA_NAMES}
JOINT_STATES_TOPIC = topics.absolute(topics.JOINT_STATES)
JOINT_COMMANDS_TOPIC = topics.absolute(topics.JOINT_COMMANDS)
INSTRUCTION_TOPIC = topics.absolute(topics.INSTRUCTION)
EPISODE_INFO_TOPIC = topics.absolute(topics.EPISODE_INFO)
IMAGE_TYPE = 'sensor_msgs/msg/Image'
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
STRING_TYPE = 'std_msgs/msg/String'
BAG_VERSION = 8

_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)


def _header(stamp_ns: int, frame_id: str = ''):
    types = _TYPESTORE.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


class EpisodeBagWriter:
    """
    Write one episode as a rosbag2 MCAP directory.

    Usage: with EpisodeBagWriter(path) as bag: bag.write_instruction(text, stamp);
    bag.write_tick(stamp, images, state, action) per tick; bag.write_episode_info(info, stamp).
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'expected a new bag directory, but {self.path} exists')
        self._writer = Writer(self.path, version=BAG_VERSION,
                              storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {}
        self.ticks = 0

    def _write(self, topic: str, msgtype: str, message, stamp_ns: int):
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=_TYPESTORE)
        data = _TYPESTORE.serialize_cdr(message, msgtype)
        self._writer.write(self._connections[topic], int(stamp_ns), data)

    def _joint_state(self, stamp_ns: int, positions):
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(arx_r5.JOINT_NAMES),):
            raise ValueError(f'expected {len(arx_r5.JOINT_NAMES)} joint positions ordered '
                             f'{arx_r5.JOINT_NAMES}, got shape {positions.shape}')
        empty = np.zeros(0, dtype=np.float64)
        return _TYPESTORE.types[JOINT_STATE_TYPE](
            header=_header(stamp_ns), name=list(arx_r5.JOINT_NAMES), position=positions,
            velocity=empty, effort=empty)

    def write_instruction(self, text: str, stamp_ns: int):
        """Write the language instruction."""
        self._write(INSTRUCTION_TOPIC, STRING_TYPE, _TYPESTORE.types[STRING_TYPE](data=text),
                    stamp_ns)

    def write_tick(self, stamp_ns: int, images: dict, state, action):
        """Write one control tick: the observed images and joint state and the command."""
        missing = sorted(set(CAMERA_TOPICS) - set(images))
        if missing:
            raise ValueError(f'expected images from {sorted(CAMERA_TOPICS)}, got '
                             f'{sorted(images)} (missing {missing})')
        for camera, topic in CAMERA_TOPICS.items():
            image = np.ascontiguousarray(images[camera], dtype=np.uint8)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'expected {camera} as uint8 [H, W, 3] RGB, got shape '
                                 f'{image.shape}')
            height, width, _ = image.shape
            message = _TYPESTORE.types[IMAGE_TYPE](
                header=_header(stamp_ns, camera), height=height, width=width, encoding='rgb8',
                is_bigendian=0, step=3 * width, data=image.reshape(-1))
            self._write(topic, IMAGE_TYPE, message, stamp_ns)
        self._write(JOINT_STATES_TOPIC, JOINT_STATE_TYPE, self._joint_state(stamp_ns, state),
                    stamp_ns)
        self._write(JOINT_COMMANDS_TOPIC, JOINT_STATE_TYPE,
                    self._joint_state(stamp_ns, action), stamp_ns)
        self.ticks += 1

    def write_episode_info(self, info: dict, stamp_ns: int):
        """Write the episode record (task, seed, success, ...) as a JSON string message."""
        text = json.dumps(info, sort_keys=True)
        self._write(EPISODE_INFO_TOPIC, STRING_TYPE, _TYPESTORE.types[STRING_TYPE](data=text),
                    stamp_ns)

    def close(self):
        """Finish the bag (writes metadata.yaml)."""
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Episode:
    """
    Hold one episode read back from a bag, aligned on the /joint_commands stamps.

    images: {camera name: uint8 [T, H, W, 3]}; state, action: float32 [T, 14] in
    arx_r5.JOINT_NAMES order; stamps_ns: int64 [T]. task/seed/success come from
    /episode_info and are None when the bag has none (e.g. a robot bag).
    """

    images: dict
    state: np.ndarray
    action: np.ndarray
    stamps_ns: np.ndarray
    instruction: str
    task: str = None
    seed: int = None
    success: bool = None
    info: dict = field(default_factory=dict)


def _ordered_positions(message) -> np.ndarray:
    """Return positions ordered as arx_r5.JOINT_NAMES, matched by name."""
    index = {name: i for i, name in enumerate(message.name)}
    missing = [name for name in arx_r5.JOINT_NAMES if name not in index]
    if missing:
        raise ValueError(f'expected joints {arx_r5.JOINT_NAMES}, got {list(message.name)} '
                         f'(missing {missing})')
    return np.array([message.position[index[name]] for name in arx_r5.JOINT_NAMES])


def _nearest(stamps: np.ndarray, wanted: np.ndarray, max_skew_ns: int, topic: str):
    """Return, for every wanted stamp, the index of the nearest stamp within max_skew_ns."""
    if len(stamps) == 0:
        raise ValueError(f'expected messages on {topic}, found none')
    picks, skew = nearest_stamps(stamps, wanted)
    if np.any(skew > max_skew_ns):
        worst = int(np.argmax(skew))
        raise ValueError(f'expected a {topic} message within {max_skew_ns} ns of every '
                         f'command stamp, but the nearest to {int(wanted[worst])} ns is '
                         f'{int(skew[worst])} ns away')
    return picks


def read_episode(path, max_skew_s: float = 0.0) -> Episode:
    """
    Read one episode bag written by EpisodeBagWriter (or a robot bag with the same topics).

    Every /joint_commands message defines one step; images and /joint_states are matched to
    it by nearest header stamp, at most max_skew_s away (0: sim bags share exact stamps).
    """
    stamps, messages = {}, {}
    with Reader(Path(path)) as reader:
        for connection, _, raw in reader.messages():
            message = _TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append(message)
    for topic, items in messages.items():
        if hasattr(items[0], 'header'):
            stamps[topic] = np.array([stamp_to_nanoseconds(m.header.stamp) for m in items],
                                     dtype=np.int64)
    if JOINT_COMMANDS_TOPIC not in messages:
        raise ValueError(f'expected {JOINT_COMMANDS_TOPIC} in {path}, got topics '
                         f'{sorted(messages)}')
    command_order = np.argsort(stamps[JOINT_COMMANDS_TOPIC], kind='stable')
    command_stamps = stamps[JOINT_COMMANDS_TOPIC][command_order]
    commands = [messages[JOINT_COMMANDS_TOPIC][i] for i in command_order]
    max_skew_ns = int(round(max_skew_s * 1e9))

    def aligned(topic):
        picks = _nearest(stamps.get(topic, np.zeros(0, np.int64)), command_stamps,
                         max_skew_ns, topic)
        return [messages[topic][i] for i in picks]

    images = {camera: np.stack([image_to_rgb(m) for m in aligned(topic)])
              for camera, topic in CAMERA_TOPICS.items()}
    state = np.stack([_ordered_positions(m) for m in aligned(JOINT_STATES_TOPIC)])
    action = np.stack([_ordered_positions(m) for m in commands])
    instructions = messages.get(INSTRUCTION_TOPIC, [])
    info = json.loads(messages[EPISODE_INFO_TOPIC][-1].data) \
        if EPISODE_INFO_TOPIC in messages else {}
    return Episode(
        images=images, state=state.astype(np.float32), action=action.astype(np.float32),
        stamps_ns=command_stamps, instruction=instructions[-1].data if instructions else '',
        task=info.get('task'), seed=info.get('seed'), success=info.get('success'), info=info)
