# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Convert ROS 2 messages to numpy arrays and back: the one module that touches message types.

Nodes import the message classes from here (``conversions.Image`` ...), so a reader finds every
field access in one file. Readers are duck-typed on attributes, so they also accept the message
objects that ``rosbags`` deserializes (the quantizer reads calibration bags that way). Every
malformed input raises ConversionError with what was expected and what arrived; a node catches
it and refuses to act instead of crashing.

Vendor messages (``arx5_arm_msg``) cannot be installed on pip-only machines: the ARX bridge
imports them lazily and passes instances to fill_robot_cmd / fill_robot_status /
robot_status_arrays below.
"""

import math
from typing import Mapping, Optional, Sequence

from builtin_interfaces.msg import Duration, Time
import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from omegaq_ros.payloads import (check_compressed_image, check_image, compressed_image_to_rgb,
                                 ConversionError, IMAGE_ENCODINGS, image_to_rgb,
                                 stamp_to_seconds)
from omegaq_ros.robot import arx_r5
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

__all__ = [
    'CameraInfo', 'CompressedImage', 'ConversionError', 'DiagnosticArray', 'DiagnosticStatus',
    'Image', 'JointState', 'JointTrajectory', 'ParameterDescriptor', 'SetBool', 'String',
    'Trigger',
    'camera_info', 'check_compressed_image', 'check_image', 'chunk_to_joint_trajectory',
    'compressed_image_from_array',
    'compressed_image_to_rgb', 'diagnostic_array', 'diagnostic_status', 'duration_to_seconds',
    'fill_robot_cmd', 'fill_robot_status', 'image_from_array', 'image_to_rgb',
    'joint_state_from_array', 'joint_state_positions', 'joint_state_to_array',
    'joint_trajectory_to_arrays', 'robot_status_arrays', 'seconds_to_duration',
    'seconds_to_stamp', 'stamp_to_seconds',
]

DIAGNOSTIC_LEVELS = {'ok': 0, 'warn': 1, 'error': 2, 'stale': 3}


# ---------------------------------------------------------------------------- time


def _split_seconds(seconds: float, what: str):
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ConversionError(f'{what}: expected a finite time >= 0 s, got {seconds}')
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    if sec > 2**31 - 1:
        raise ConversionError(f'{what}: {seconds} s does not fit a 32-bit sec field')
    return sec, nanosec


def seconds_to_stamp(seconds: float) -> Time:
    """Return float seconds as a builtin_interfaces Time."""
    sec, nanosec = _split_seconds(seconds, 'stamp')
    return Time(sec=sec, nanosec=nanosec)


def seconds_to_duration(seconds: float) -> Duration:
    """Return non-negative float seconds as a builtin_interfaces Duration."""
    sec, nanosec = _split_seconds(seconds, 'duration')
    return Duration(sec=sec, nanosec=nanosec)


def duration_to_seconds(duration) -> float:
    """Return a builtin_interfaces Duration as float seconds."""
    return stamp_to_seconds(duration)


def _header(msg, stamp: Optional[float], frame_id: str):
    if stamp is not None:
        msg.header.stamp = seconds_to_stamp(stamp)
    msg.header.frame_id = frame_id
    return msg


# ---------------------------------------------------------------------------- images


def _check_image_array(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ConversionError(f'image array: expected uint8 [H, W, 3], '
                              f'got {array.dtype} {list(array.shape)}')
    return np.ascontiguousarray(array)


def image_from_array(array: np.ndarray, stamp: Optional[float] = None, frame_id: str = '',
                     encoding: str = 'rgb8') -> Image:
    """
    Return a sensor_msgs/Image holding a uint8 [H, W, 3] array whose channels are `encoding`.

    The bytes go in with ``tobytes()``: assigning an ndarray to msg.data is ~1000x slower.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f'image encoding: expected one of {list(IMAGE_ENCODINGS)}, '
                              f'got {encoding!r}')
    array = _check_image_array(array)
    msg = _header(Image(), stamp, frame_id)
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = array.tobytes()
    return msg


def compressed_image_from_array(rgb: np.ndarray, stamp: Optional[float] = None,
                                frame_id: str = '', fmt: str = 'jpeg',
                                quality: int = 90) -> CompressedImage:
    """Return a sensor_msgs/CompressedImage (jpeg or png) encoding an RGB uint8 array."""
    rgb = _check_image_array(rgb)
    if fmt not in ('jpeg', 'png'):
        raise ConversionError(f'compressed image format: expected jpeg or png, got {fmt!r}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', rgb[..., ::-1], params)
    if not ok:
        raise ConversionError(f'compressed image: OpenCV could not encode {fmt}')
    msg = _header(CompressedImage(), stamp, frame_id)
    msg.format = fmt
    msg.data = encoded.tobytes()
    return msg


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                distortion: Sequence[float] = (), distortion_model: str = 'plumb_bob',
                stamp: Optional[float] = None, frame_id: str = '') -> CameraInfo:
    """Return a sensor_msgs/CameraInfo for a pinhole camera (no rectification)."""
    values = [fx, fy, cx, cy, *distortion]
    if width <= 0 or height <= 0 or not all(math.isfinite(float(v)) for v in values):
        raise ConversionError(f'camera info: expected a positive size and finite intrinsics, '
                              f'got {width}x{height}, fx={fx} fy={fy} cx={cx} cy={cy}, '
                              f'distortion={list(distortion)}')
    msg = _header(CameraInfo(), stamp, frame_id)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = distortion_model
    msg.d = [float(v) for v in distortion]
    msg.k = [float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(fx), 0.0, float(cx), 0.0, 0.0, float(fy), float(cy), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# ---------------------------------------------------------------------------- joints


def joint_state_positions(msg) -> dict:
    """Return {joint name: position} of a sensor_msgs/JointState after checking its arrays."""
    names = [str(name) for name in msg.name]
    positions = np.asarray(msg.position, dtype=float)
    if positions.shape != (len(names),):
        raise ConversionError(f'joint state: expected one position per name ({len(names)}), '
                              f'got {positions.size} positions')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConversionError(f'joint state: duplicate joint names {duplicates}')
    return dict(zip(names, positions.tolist()))


def joint_state_to_array(msg, joint_names: Sequence[str] = arx_r5.JOINT_NAMES) -> np.ndarray:
    """
    Return the positions of a JointState ordered as joint_names (default: the 14 ALOHA names).

    Names are matched, never positions: a missing or unknown name raises ConversionError.
    Non-finite values pass through (the safety filter refuses them).
    """
    positions = joint_state_positions(msg)
    missing = [name for name in joint_names if name not in positions]
    unknown = [name for name in positions if name not in joint_names]
    if missing or unknown:
        raise ConversionError(f'joint state: expected the {len(joint_names)} joints '
                              f'{list(joint_names)}; missing {missing}, unknown {unknown}')
    return np.array([positions[name] for name in joint_names], dtype=float)


def joint_state_from_array(positions: np.ndarray, stamp: Optional[float] = None,
                           joint_names: Sequence[str] = arx_r5.JOINT_NAMES,
                           velocities: Optional[np.ndarray] = None,
                           efforts: Optional[np.ndarray] = None,
                           frame_id: str = '') -> JointState:
    """Return a sensor_msgs/JointState with positions (and optional velocities/efforts)."""
    msg = _header(JointState(), stamp, frame_id)
    msg.name = [str(name) for name in joint_names]
    for field, values in (('position', positions), ('velocity', velocities),
                          ('effort', efforts)):
        if values is None:
            continue
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.size != len(msg.name):
            raise ConversionError(f'joint state {field}: expected {len(msg.name)} values '
                                  f'for {list(msg.name)}, got {values.size}')
        setattr(msg, field, values.tolist())
    return msg


def chunk_to_joint_trajectory(chunk: np.ndarray, stamp: float, dt: float,
                              joint_names: Sequence[str] = arx_r5.JOINT_NAMES,
                              frame_id: str = '') -> JointTrajectory:
    """
    Return an action chunk [H, len(joint_names)] as a trajectory_msgs/JointTrajectory.

    header.stamp = the observation time `stamp`; point k has time_from_start (k + 1) * dt and
    positions only, so a JointTrajectoryController-like executor skips what already elapsed
    and drops a chunk that ends in the past.
    """
    chunk = np.asarray(chunk, dtype=float)
    if chunk.ndim != 2 or chunk.shape[1] != len(joint_names) or chunk.shape[0] == 0:
        raise ConversionError(f'action chunk: expected [H >= 1, {len(joint_names)}], '
                              f'got {list(chunk.shape)}')
    if not np.all(np.isfinite(chunk)):
        raise ConversionError('action chunk: expected finite values, got NaN or inf')
    if not (math.isfinite(float(dt)) and dt > 0.0):
        raise ConversionError(f'action chunk dt: expected a finite value > 0 s, got {dt}')
    msg = _header(JointTrajectory(), stamp, frame_id)
    msg.joint_names = [str(name) for name in joint_names]
    points = []
    for k, row in enumerate(chunk):
        point = JointTrajectoryPoint()
        point.positions = row.tolist()
        point.time_from_start = seconds_to_duration((k + 1) * float(dt))
        points.append(point)
    msg.points = points
    return msg


def joint_trajectory_to_arrays(msg, joint_names: Sequence[str] = arx_r5.JOINT_NAMES):
    """
    Return (stamp [s], times_from_start [H], positions [H, len(joint_names)]) of a trajectory.

    Columns are picked by name, so a per-arm consumer may ask for 7 of the 14 names; names the
    message lacks raise ConversionError, and so do empty, ragged, non-finite or non-increasing
    trajectories.
    """
    names = [str(name) for name in msg.joint_names]
    missing = [name for name in joint_names if name not in names]
    if missing:
        raise ConversionError(f'joint trajectory: expected joints {list(joint_names)}; '
                              f'missing {missing} (message has {names})')
    if len(set(names)) != len(names):
        raise ConversionError(f'joint trajectory: duplicate joint names in {names}')
    if len(msg.points) == 0:
        raise ConversionError('joint trajectory: expected at least one point, got none')
    columns = [names.index(name) for name in joint_names]
    rows, times = [], []
    for k, point in enumerate(msg.points):
        positions = np.asarray(point.positions, dtype=float)
        if positions.shape != (len(names),):
            raise ConversionError(f'joint trajectory point {k}: expected {len(names)} positions, '
                                  f'got {positions.size}')
        rows.append(positions[columns])
        times.append(duration_to_seconds(point.time_from_start))
    positions = np.stack(rows)
    times = np.asarray(times)
    if not np.all(np.isfinite(positions)):
        raise ConversionError('joint trajectory: expected finite positions, got NaN or inf')
    if times[0] < 0.0 or np.any(np.diff(times) <= 0.0):
        raise ConversionError(f'joint trajectory: expected strictly increasing times_from_start '
                              f'>= 0, got {times.tolist()}')
    return stamp_to_seconds(msg.header.stamp), times, positions


# ---------------------------------------------------------------------------- diagnostics


def _level(level) -> bytes:
    if isinstance(level, str):
        if level.lower() not in DIAGNOSTIC_LEVELS:
            raise ConversionError(f'diagnostic level: expected one of '
                                  f'{list(DIAGNOSTIC_LEVELS)}, got {level!r}')
        level = DIAGNOSTIC_LEVELS[level.lower()]
    if int(level) not in DIAGNOSTIC_LEVELS.values():
        raise ConversionError(f'diagnostic level: expected 0..3, got {level!r}')
    return bytes([int(level)])


def _value_text(value) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def diagnostic_status(name: str, level='ok', message: str = '',
                      values: Optional[Mapping] = None, hardware_id: str = '') -> DiagnosticStatus:
    """Return a DiagnosticStatus; level is 'ok' | 'warn' | 'error' | 'stale' or 0..3."""
    status = DiagnosticStatus()
    status.name, status.message, status.hardware_id = str(name), str(message), str(hardware_id)
    status.level = _level(level)
    status.values = [KeyValue(key=str(key), value=_value_text(value))
                     for key, value in (values or {}).items()]
    return status


def diagnostic_array(statuses: Mapping[str, Mapping], stamp: Optional[float] = None
                     ) -> DiagnosticArray:
    """
    Return a DiagnosticArray from {status name: {level, message, values, hardware_id}}.

    Example: ``{'policy_node: inference': {'level': 'ok', 'values': {'inference_ms': 41.2}}}``.
    """
    msg = DiagnosticArray()
    if stamp is not None:
        msg.header.stamp = seconds_to_stamp(stamp)
    allowed = {'level', 'message', 'values', 'hardware_id'}
    status_list = []
    for name, fields in statuses.items():
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ConversionError(f'diagnostic {name!r}: expected keys {sorted(allowed)}, '
                                  f'got unknown {unknown}')
        status_list.append(diagnostic_status(name, **fields))
    msg.status = status_list
    return msg


# ---------------------------------------------------------------------------- ARX vendor fields


def fill_robot_cmd(msg, fields: Mapping, stamp: Optional[float] = None):
    """Fill an arx5_arm_msg/RobotCmd from arx_r5_mapping.command_fields(...) and return it."""
    if stamp is not None:
        msg.header.stamp = seconds_to_stamp(stamp)
    msg.end_pos = [float(v) for v in fields['end_pos']]
    msg.joint_pos = [float(v) for v in fields['joint_pos']]
    msg.gripper = float(fields['gripper'])
    msg.mode = int(fields['mode'])
    return msg


def fill_robot_status(msg, joint_pos: Sequence[float], stamp: Optional[float] = None):
    """Fill an arx5_arm_msg/RobotStatus joint_pos[7] (ALOHA master topic) and return it."""
    joint_pos = np.asarray(joint_pos, dtype=float).reshape(-1)
    if joint_pos.size != 7:
        raise ConversionError(f'RobotStatus joint_pos: expected 7 values, got {joint_pos.size}')
    if stamp is not None:
        msg.header.stamp = seconds_to_stamp(stamp)
    msg.joint_pos = joint_pos.tolist()
    return msg


def robot_status_arrays(msg):
    """Return (joint_pos[7], joint_vel[7], joint_cur[7]) of an arx5_arm_msg/RobotStatus."""
    arrays = []
    for field in ('joint_pos', 'joint_vel', 'joint_cur'):
        values = np.asarray(getattr(msg, field), dtype=float).reshape(-1)
        if values.size != 7:
            raise ConversionError(f'RobotStatus {field}: expected 7 values (index 6 = gripper), '
                                  f'got {values.size}')
        arrays.append(values)
    return tuple(arrays)
