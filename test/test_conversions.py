# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Message <-> numpy conversions with real rclpy message types."""

import math
import time

import cv2
import numpy as np
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.robot import arx_r5
import pytest
from rclpy.serialization import deserialize_message, serialize_message

RNG = np.random.default_rng(0)


def _rgb(height=48, width=64):
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _roundtrip(msg):
    return deserialize_message(serialize_message(msg), type(msg))


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_image_roundtrip_through_cdr(encoding):
    rgb = _rgb()
    raw = rgb if encoding == 'rgb8' else rgb[..., ::-1]
    msg = _roundtrip(conv.image_from_array(raw, stamp=12.5, frame_id='cam', encoding=encoding))
    assert (msg.height, msg.width, msg.step, msg.encoding) == (48, 64, 192, encoding)
    assert conv.stamp_to_seconds(msg.header.stamp) == 12.5
    np.testing.assert_array_equal(conv.image_to_rgb(msg, expected_shape=(48, 64)), rgb)


def test_image_with_padded_rows():
    rgb = _rgb(4, 5)
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = rgb.reshape(4, 15)
    msg = conv.Image(height=4, width=5, encoding='rgb8', step=20)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


def test_image_build_uses_bytes_not_ndarray():
    frame = _rgb(480, 640)
    start = time.perf_counter()
    msg = conv.image_from_array(frame)
    assert time.perf_counter() - start < 0.05      # ndarray assignment takes ~160 ms
    assert len(msg.data) == frame.nbytes


@pytest.mark.parametrize('change, expected', [
    ({'encoding': 'mono8'}, "expected one of ['rgb8', 'bgr8'], got 'mono8'"),
    ({'encoding': '16UC1'}, "got '16UC1'"),
    ({'step': 100}, 'expected >= 3 * width = 192 bytes, got 100'),
    ({'height': 47}, 'expected step * height = 9024 bytes'),
    ({'width': 0}, 'expected height > 0 and width > 0'),
])
def test_malformed_images_are_refused(change, expected):
    msg = conv.image_from_array(_rgb())
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(conv.ConversionError, match=expected.replace('[', r'\[').replace(
            ']', r'\]').replace('*', r'\*')):
        conv.image_to_rgb(msg)


def test_wrong_image_size_is_refused():
    msg = conv.image_from_array(_rgb(48, 64))
    with pytest.raises(conv.ConversionError,
                       match=r'expected size .* \(480, 640\), got \(48, 64\)'):
        conv.image_to_rgb(msg, expected_shape=(480, 640))


def test_compressed_png_is_lossless_and_jpeg_close():
    rgb = _rgb()
    png = _roundtrip(conv.compressed_image_from_array(rgb, stamp=1.0, fmt='png'))
    np.testing.assert_array_equal(conv.compressed_image_to_rgb(png), rgb)
    smooth = cv2.GaussianBlur(rgb, (9, 9), 3)
    jpeg = conv.compressed_image_from_array(smooth, fmt='jpeg', quality=95)
    # image_transport style format strings are accepted too
    jpeg.format = 'rgb8; jpeg compressed bgr8'
    decoded = conv.compressed_image_to_rgb(jpeg, expected_shape=(48, 64))
    assert np.abs(decoded.astype(int) - smooth).mean() < 4.0


def test_bad_compressed_images_are_refused():
    msg = conv.compressed_image_from_array(_rgb())
    msg.format = 'tiff'
    with pytest.raises(conv.ConversionError, match="expected jpeg or png, got 'tiff'"):
        conv.compressed_image_to_rgb(msg)
    msg.format = 'jpeg'
    msg.data = b'not a jpeg at all'
    with pytest.raises(conv.ConversionError, match='do not decode'):
        conv.compressed_image_to_rgb(msg)
    with pytest.raises(conv.ConversionError, match=r'expected uint8 \[H, W, 3\]'):
        conv.image_from_array(np.zeros((4, 4), np.uint8))


def test_joint_state_matched_by_name_in_any_order():
    values = np.arange(14, dtype=float) / 10
    order = RNG.permutation(14)
    msg = conv.JointState()
    msg.name = [arx_r5.JOINT_NAMES[i] for i in order]
    msg.position = values[order].tolist()
    np.testing.assert_array_equal(conv.joint_state_to_array(_roundtrip(msg)), values)
    built = conv.joint_state_from_array(values, stamp=3.0)
    assert list(built.name) == list(arx_r5.JOINT_NAMES)
    np.testing.assert_array_equal(conv.joint_state_to_array(built), values)


def test_joint_state_nan_passes_through_for_the_safety_filter():
    values = np.zeros(14)
    values[3] = np.nan
    out = conv.joint_state_to_array(conv.joint_state_from_array(values))
    assert math.isnan(out[3])


def test_joint_state_errors_list_names():
    msg = conv.joint_state_from_array(np.zeros(14))
    msg.name = list(msg.name[:13]) + ['elbow']
    with pytest.raises(conv.ConversionError, match=r"missing \['right_gripper'\], "
                                                   r"unknown \['elbow'\]"):
        conv.joint_state_to_array(msg)
    msg = conv.joint_state_from_array(np.zeros(14))
    msg.position = [0.0] * 13
    with pytest.raises(conv.ConversionError, match='expected one position per name'):
        conv.joint_state_to_array(msg)
    msg = conv.joint_state_from_array(np.zeros(2), joint_names=['a', 'a'])
    with pytest.raises(conv.ConversionError, match=r"duplicate joint names \['a'\]"):
        conv.joint_state_positions(msg)


def test_chunk_to_trajectory_and_back():
    chunk = RNG.normal(size=(5, 14))
    msg = _roundtrip(conv.chunk_to_joint_trajectory(chunk, stamp=100.25, dt=0.02))
    assert list(msg.joint_names) == list(arx_r5.JOINT_NAMES)
    assert conv.stamp_to_seconds(msg.header.stamp) == pytest.approx(100.25)
    times = [conv.duration_to_seconds(p.time_from_start) for p in msg.points]
    np.testing.assert_allclose(times, 0.02 * np.arange(1, 6), atol=1e-9)
    assert all(len(p.velocities) == 0 and len(p.accelerations) == 0 for p in msg.points)
    stamp, tfs, positions = conv.joint_trajectory_to_arrays(msg)
    assert stamp == pytest.approx(100.25)
    np.testing.assert_allclose(tfs, times)
    np.testing.assert_array_equal(positions, chunk)
    right = arx_r5.JOINT_NAMES[7:]
    _, _, right_positions = conv.joint_trajectory_to_arrays(msg, right)
    np.testing.assert_array_equal(right_positions, chunk[:, 7:])


def test_bad_chunks_and_trajectories_are_refused():
    with pytest.raises(conv.ConversionError, match=r'expected \[H >= 1, 14\], got \[5, 7\]'):
        conv.chunk_to_joint_trajectory(np.zeros((5, 7)), 0.0, 0.02)
    with pytest.raises(conv.ConversionError, match='NaN or inf'):
        conv.chunk_to_joint_trajectory(np.full((2, 14), np.inf), 0.0, 0.02)
    with pytest.raises(conv.ConversionError, match='dt'):
        conv.chunk_to_joint_trajectory(np.zeros((2, 14)), 0.0, 0.0)
    msg = conv.chunk_to_joint_trajectory(np.zeros((3, 14)), 1.0, 0.1)
    msg.points[2].time_from_start = msg.points[1].time_from_start
    with pytest.raises(conv.ConversionError, match='strictly increasing'):
        conv.joint_trajectory_to_arrays(msg)
    msg = conv.chunk_to_joint_trajectory(np.zeros((3, 14)), 1.0, 0.1)
    msg.joint_names = list(msg.joint_names[:-1]) + ['x']
    with pytest.raises(conv.ConversionError, match=r"missing \['right_gripper'\]"):
        conv.joint_trajectory_to_arrays(msg)
    msg = conv.chunk_to_joint_trajectory(np.zeros((3, 14)), 1.0, 0.1)
    msg.points[1].positions = [0.0] * 13
    with pytest.raises(conv.ConversionError, match='point 1: expected 14 positions, got 13'):
        conv.joint_trajectory_to_arrays(msg)


@pytest.mark.parametrize('seconds', [0.0, 1.5, 1e9 + 0.999999999, 0.9999999999])
def test_stamps_roundtrip(seconds):
    stamp = conv.seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert conv.stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-9)
    with pytest.raises(conv.ConversionError, match='finite time >= 0'):
        conv.seconds_to_stamp(-1.0)
    with pytest.raises(conv.ConversionError, match='finite time >= 0'):
        conv.seconds_to_duration(float('nan'))


def test_diagnostics_from_dict():
    msg = _roundtrip(conv.diagnostic_array({
        'policy_node: inference': {'level': 'ok', 'message': 'running',
                                   'values': {'inference_ms': 41.25, 'chunks': 3}},
        'policy_node: input': {'level': 'error', 'message': 'stale input',
                               'hardware_id': 'arx_r5'},
    }, stamp=5.0))
    assert [s.name for s in msg.status] == ['policy_node: inference', 'policy_node: input']
    assert msg.status[0].level == conv.DiagnosticStatus.OK
    assert msg.status[1].level == conv.DiagnosticStatus.ERROR
    assert {(kv.key, kv.value) for kv in msg.status[0].values} == {
        ('inference_ms', '41.25'), ('chunks', '3')}
    with pytest.raises(conv.ConversionError, match="got 'fatal'"):
        conv.diagnostic_status('x', level='fatal')
    with pytest.raises(conv.ConversionError, match=r"unknown \['lvl'\]"):
        conv.diagnostic_array({'x': {'lvl': 'ok'}})


def test_camera_info():
    msg = _roundtrip(conv.camera_info(640, 480, 600.0, 601.0, 320.5, 240.5,
                                      distortion=[0.1, -0.2, 0.0, 0.0, 0.01],
                                      stamp=2.0, frame_id='cam_high'))
    assert (msg.width, msg.height, msg.distortion_model) == (640, 480, 'plumb_bob')
    np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3),
                                  [[600, 0, 320.5], [0, 601, 240.5], [0, 0, 1]])
    assert msg.p[0] == 600.0 and msg.p[10] == 1.0 and len(msg.d) == 5
    with pytest.raises(conv.ConversionError, match='finite intrinsics'):
        conv.camera_info(640, 480, float('nan'), 1.0, 1.0, 1.0)


class _VendorStatus:
    """Attribute layout of arx5_arm_msg/RobotStatus (the vendor package is not installable)."""

    def __init__(self, size=7):
        self.joint_pos = np.arange(size, dtype=float)
        self.joint_vel = np.ones(size)
        self.joint_cur = np.zeros(size)


def test_vendor_field_helpers_check_lengths():
    pos, vel, cur = conv.robot_status_arrays(_VendorStatus())
    assert pos.tolist() == list(range(7)) and vel.sum() == 7 and cur.sum() == 0
    with pytest.raises(conv.ConversionError, match='joint_pos: expected 7 values'):
        conv.robot_status_arrays(_VendorStatus(6))


def test_nearest_stamps_pick_the_nearest_in_any_order():
    from omegaq_ros.payloads import nearest_stamps
    rng = np.random.default_rng(0)
    stamps = rng.uniform(0.0, 10.0, 200)             # unsorted, as bags from several sources
    wanted = rng.uniform(-1.0, 11.0, 500)
    picks, skew = nearest_stamps(stamps, wanted)
    brute = np.abs(stamps[None, :] - wanted[:, None])
    np.testing.assert_array_equal(picks, brute.argmin(axis=1))
    np.testing.assert_array_equal(skew, brute.min(axis=1))
    picks, skew = nearest_stamps(np.array([30, 10, 20, 10], np.int64), np.array([15, 10, 99]))
    assert picks.tolist() == [1, 1, 0] and skew.tolist() == [5, 0, 69]   # ties: the first
    stamps = rng.integers(0, 20, 300)                # many equal stamps and equal distances
    wanted = rng.integers(-5, 25, 300)
    picks, skew = nearest_stamps(stamps, wanted)
    brute = np.abs(stamps[None, :] - wanted[:, None])
    np.testing.assert_array_equal(picks, brute.argmin(axis=1))
    np.testing.assert_array_equal(skew, brute.min(axis=1))
