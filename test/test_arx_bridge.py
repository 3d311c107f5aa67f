# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ARX R5 bridge mapping: trajectories to vendor commands, vendor status to joint states."""

import numpy as np
from omegaq_ros.robot import arx_bridge, arx_r5
import pytest


def test_arm_layout():
    assert arx_bridge.arm_joint_names('left') == (
        'left_joint1', 'left_joint2', 'left_joint3', 'left_joint4', 'left_joint5',
        'left_joint6', 'left_gripper')
    assert arx_bridge.arm_joint_names('right')[-1] == 'right_gripper'
    assert arx_bridge.arm_slice('right') == slice(7, 14)
    np.testing.assert_array_equal(arx_bridge.arm_limits('right')[:6], arx_r5.JOINT_LIMITS)
    np.testing.assert_array_equal(
        arx_bridge.combine_arms(np.zeros(7), np.ones(7)), [0] * 7 + [1] * 7)
    with pytest.raises(ValueError, match="expected one of \\['left', 'right'\\], got 'middle'"):
        arx_bridge.arm_slice('middle')


def test_command_fields_joint_mode_and_gripper_units():
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.0])
    fields = arx_bridge.command_fields(q)
    assert fields['mode'] == 5 and fields['end_pos'] == [0.0] * 6
    assert fields['joint_pos'] == pytest.approx(q[:6].tolist())
    assert fields['gripper'] == 5.0                       # open
    q[6] = 1.0
    assert arx_bridge.command_fields(q)['gripper'] == 0.0  # closed
    q[6] = 0.4
    assert arx_bridge.command_fields(q)['gripper'] == pytest.approx(3.0)
    with pytest.raises(ValueError, match='expected finite positions'):
        arx_bridge.command_fields(np.full(7, np.nan))
    with pytest.raises(ValueError, match='expected 7 values'):
        arx_bridge.command_fields(np.zeros(6))


def test_status_mapping_roundtrips_with_master_status():
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.3])
    status = arx_bridge.master_status_joint_pos(q)
    assert status[6] == pytest.approx(0.7)                 # 3.5 command units / 5
    np.testing.assert_allclose(arx_bridge.status_to_positions(status), q)
    # a follower reading of 1.0 x 5 = command 5 = fully open
    assert arx_bridge.status_to_positions(np.r_[np.zeros(6), 1.0])[6] == 0.0
    # another scale (driver variants that report command units directly)
    assert arx_bridge.status_to_positions(np.r_[np.zeros(6), 2.5], 1.0)[6] == pytest.approx(0.5)
    vel = arx_bridge.status_to_velocities(np.r_[np.ones(6), 0.2])
    assert vel[6] == pytest.approx(-0.2)                   # opening = closure decreasing


def test_resample_at_control_rate_from_header_stamp():
    stamp, dt, rate = 10.0, 0.1, 50.0
    tfs = dt * np.arange(1, 4)
    positions = np.zeros((3, 7))
    positions[:, 0] = [1.0, 2.0, 2.0]
    times, samples = arx_bridge.resample(stamp, tfs, positions, rate, initial=np.zeros(7))
    assert times[0] == stamp and times[-1] == pytest.approx(stamp + 0.3)
    np.testing.assert_allclose(np.diff(times), 1 / rate)
    assert samples.shape == (16, 7)
    expected = np.interp(times - stamp, [0, 0.1, 0.2, 0.3], [0, 1, 2, 2])
    np.testing.assert_allclose(samples[:, 0], expected, atol=1e-12)
    assert np.all(samples[:, 1:] == 0)


def test_plan_skips_elapsed_points_and_drops_past_chunks():
    tfs = np.array([0.1, 0.2, 0.3])
    positions = np.outer([1.0, 2.0, 3.0], np.ones(7))
    times, knots = arx_bridge.plan_knots(10.0, tfs, positions, now=10.15, current=np.zeros(7))
    np.testing.assert_allclose(times, [10.15, 10.2, 10.3])
    np.testing.assert_allclose(knots[:, 0], [0.0, 2.0, 3.0])
    times, _ = arx_bridge.plan_knots(10.0, tfs, positions, now=9.9, current=np.zeros(7))
    assert times[0] == 10.0                                 # starts at the stamp, not now
    with pytest.raises(ValueError, match='ends 50 ms in the past'):
        arx_bridge.plan_knots(10.0, tfs, positions, now=10.35, current=np.zeros(7))
    with pytest.raises(ValueError, match='finite'):
        arx_bridge.plan_knots(10.0, tfs, positions * np.nan, now=10.0, current=np.zeros(7))
    with pytest.raises(ValueError, match='increasing'):
        arx_bridge.plan_knots(10.0, np.array([0.1, 0.1, 0.3]), positions, 10.0, np.zeros(7))


def test_follower_replaces_clips_and_rate_limits():
    follower = arx_bridge.TrajectoryFollower('left', control_rate=100.0,
                                             max_joint_velocity=1.0, max_gripper_velocity=5.0)
    assert follower.command(0.0, np.zeros(7)) is None
    tfs = np.array([0.5, 1.0])
    target = np.zeros((2, 7))
    target[:, 0] = 0.5
    target[:, 1] = 1.0                    # joint2 upper limit is 0.1: clipped
    target[:, 6] = 2.0                    # gripper beyond 1: clipped
    assert follower.accept(0.0, tfs, target, now=0.0, measured=None) == \
        'no arm status received yet; chunk dropped'
    assert follower.accept(0.0, tfs, target, now=0.0, measured=np.zeros(7)) == ''
    commands = np.stack([follower.command(k / 100, np.zeros(7)) for k in range(1, 101)])
    assert np.all(np.abs(np.diff(commands[:, :6], axis=0)) <= 0.01 + 1e-12)
    assert commands[-1, 0] == pytest.approx(0.5)
    assert commands[:, 1].max() == pytest.approx(0.1)
    assert commands[-1, 6] == 1.0
    # a new chunk continues from the last command, not from the measured state
    reason = follower.accept(1.0, np.array([0.1]), np.zeros((1, 7)), now=1.0,
                             measured=np.full(7, 9.0))
    assert reason == ''
    first = follower.command(1.01, np.full(7, 9.0))
    assert first[0] == pytest.approx(0.5 - 0.01)
    # a stale chunk is dropped and the current one is kept
    assert 'in the past' in follower.accept(0.0, np.array([0.1]), np.ones((1, 7)), now=1.02,
                                            measured=None)
    assert follower.command(1.02, None)[0] == pytest.approx(0.5 - 0.02)
    follower.reset()
    assert follower.command(1.03, np.zeros(7)) is None


def test_pure_modules_import_without_ros():
    import subprocess
    import sys
    code = ('import sys\n'
            'import omegaq_ros.robot.arx_bridge, omegaq_ros.robot.safety, omegaq_ros.robot.urdf\n'
            'import omegaq_ros.nodes.observation_sync, omegaq_ros.nodes.parameters\n'
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', "
            "'trajectory_msgs', 'std_msgs', 'rcl_interfaces')]\n"
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True)
