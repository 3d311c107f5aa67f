# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Message payloads as arrays, for rclpy messages and rosbags records alike (no ROS imports).

The nodes (nodes/conversions.py), the bag reader (sim/bag.py) and the calibration reader
(policy/calibration.py) read the same fields (encoding, height, width, step, data; stamp sec
and nanosec), so one set of checks and decoders serves all of them; both bag readers match
messages to each other by nearest stamp with `nearest_stamps`.
"""

from typing import Optional, Sequence

import cv2
import numpy as np

IMAGE_ENCODINGS = ('rgb8', 'bgr8')
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


class ConversionError(ValueError):
    """A message cannot be converted: the text says what was expected and what arrived."""


def stamp_to_seconds(stamp) -> float:
    """Return a builtin_interfaces Time (or Duration) as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_to_nanoseconds(stamp) -> int:
    """Return a builtin_interfaces Time as integer nanoseconds (exact)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def nearest_stamps(stamps, wanted):
    """
    Return (index into stamps, |stamp - wanted|) of the stamp nearest to each wanted stamp.

    stamps need not be sorted and must not be empty; ties go to the first in stamps, as
    np.argmin over the distances would pick, in O((N + M) log N). Integer nanoseconds stay
    exact.
    """
    stamps, wanted = np.asarray(stamps), np.asarray(wanted)
    order = np.argsort(stamps, kind='stable')
    ordered = stamps[order]
    last = len(stamps) - 1
    right = np.clip(np.searchsorted(ordered, wanted), 0, last)
    left = np.clip(right - 1, 0, last)
    # The first of a run of equal stamps is, after a stable sort, the first in the input.
    left = np.searchsorted(ordered, ordered[left])
    right = np.searchsorted(ordered, ordered[right])
    below, above = np.abs(ordered[left] - wanted), np.abs(ordered[right] - wanted)
    first, second = order[left], order[right]
    pick = np.where(below < above, first,
                    np.where(above < below, second, np.minimum(first, second)))
    return pick, np.minimum(below, above)


def _check_shape(rgb: np.ndarray, expected_shape, what: str) -> np.ndarray:
    if expected_shape is not None and tuple(rgb.shape[:2]) != tuple(expected_shape):
        raise ConversionError(f'{what}: expected size (height, width) {tuple(expected_shape)}, '
                              f'got {tuple(rgb.shape[:2])}')
    return rgb


def check_image(msg, expected_shape: Optional[Sequence[int]] = None) -> int:
    """
    Check a sensor_msgs/Image's encoding, size, step and data length without converting it.

    Cheap enough for a subscription callback: a node checks before it buffers a message, so a
    wrong or huge image is never held. Returns the data size in bytes; raises ConversionError.
    """
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f'image encoding: expected one of {list(IMAGE_ENCODINGS)}, '
                              f'got {encoding!r}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f'image size: expected height > 0 and width > 0, '
                              f'got {height}x{width}')
    if expected_shape is not None and (height, width) != tuple(expected_shape):
        raise ConversionError(f'image: expected size (height, width) {tuple(expected_shape)}, '
                              f'got {(height, width)}')
    if step < 3 * width:
        raise ConversionError(f'image step: expected >= 3 * width = {3 * width} bytes, '
                              f'got {step}')
    size = len(msg.data)
    if size != step * height:
        raise ConversionError(f'image data: expected step * height = {step * height} bytes '
                              f'({height}x{width} {encoding}), got {size}')
    return size


def check_compressed_image(msg, max_bytes: int) -> int:
    """
    Check a sensor_msgs/CompressedImage's format and size (at most max_bytes) before decoding.

    Returns the data size in bytes; raises ConversionError.
    """
    fmt = str(msg.format).lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ConversionError(f'compressed image format: expected jpeg or png, got {msg.format!r}')
    size = len(msg.data)
    if size == 0:
        raise ConversionError('compressed image: expected encoded bytes, got an empty buffer')
    if size > max_bytes:
        raise ConversionError(f'compressed image: expected at most {max_bytes} bytes, '
                              f'got {size}')
    return size


def image_to_rgb(msg, expected_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """
    Return a sensor_msgs/Image (rgb8 or bgr8) as an RGB uint8 array [H, W, 3].

    rgb8 images with a tight row stride come back as a zero-copy view of msg.data; bgr8 and
    padded rows are copied. expected_shape = (height, width) also checks the size.
    """
    check_image(msg, expected_shape)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)
    rgb = rows[:, :3 * width].reshape(height, width, 3)
    if str(msg.encoding) == 'bgr8':
        rgb = np.ascontiguousarray(rgb[..., ::-1])
    elif step != 3 * width:
        rgb = np.ascontiguousarray(rgb)
    return rgb


def compressed_image_to_rgb(msg, expected_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Return a sensor_msgs/CompressedImage (jpeg or png) as an RGB uint8 array [H, W, 3]."""
    fmt = str(msg.format).lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ConversionError(f'compressed image format: expected jpeg or png, got {msg.format!r}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ConversionError('compressed image: expected encoded bytes, got an empty buffer')
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f'compressed image: {data.size} bytes do not decode as '
                              f'{msg.format!r}')
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return _check_shape(rgb, expected_shape, 'compressed image')
