# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ARX R5 joint/command mapping: arm slices, vendor commands, vendor status to joint states."""

import numpy as np
from omegaq_ros.robot import arx_r5, arx_r5_mapping
import pytest


def test_arm_layout():
    assert arx_r5_mapping.arm_joint_names('left') == (
        'left_joint1', 'left_joint2', 'left_joint3', 'left_joint4', 'left_joint5',
        'left_joint6', 'left_gripper')
    assert arx_r5_mapping.arm_joint_names('right')[-1] == 'right_gripper'
    assert arx_r5_mapping.arm_slice('right') == slice(7, 14)
    np.testing.assert_array_equal(arx_r5_mapping.arm_limits('right')[:6], arx_r5.JOINT_LIMITS)
    with pytest.raises(ValueError, match="expected one of \\['left', 'right'\\], got 'middle'"):
        arx_r5_mapping.arm_slice('middle')


def test_command_fields_joint_mode_and_gripper_units():
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.0])
    fields = arx_r5_mapping.command_fields(q)
    assert fields['mode'] == 5 and fields['end_pos'] == [0.0] * 6
    assert fields['joint_pos'] == pytest.approx(q[:6].tolist())
    assert fields['gripper'] == 5.0                       # open
    q[6] = 1.0
    assert arx_r5_mapping.command_fields(q)['gripper'] == 0.0  # closed
    q[6] = 0.4
    assert arx_r5_mapping.command_fields(q)['gripper'] == pytest.approx(3.0)
    with pytest.raises(ValueError, match='expected finite positions'):
        arx_r5_mapping.command_fields(np.full(7, np.nan))
    with pytest.raises(ValueError, match='expected 7 values'):
        arx_r5_mapping.command_fields(np.zeros(6))


def test_status_mapping_roundtrips_with_master_status():
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.3])
    status = arx_r5_mapping.master_status_joint_pos(q)
    assert status[6] == pytest.approx(0.7)                 # 3.5 command units / 5
    np.testing.assert_allclose(arx_r5_mapping.status_to_positions(status), q)
    # a follower reading of 1.0 x 5 = command 5 = fully open
    assert arx_r5_mapping.status_to_positions(np.r_[np.zeros(6), 1.0])[6] == 0.0
    # another scale (driver variants that report command units directly)
    half = arx_r5_mapping.status_to_positions(np.r_[np.zeros(6), 2.5], 1.0)[6]
    assert half == pytest.approx(0.5)
    vel = arx_r5_mapping.status_to_velocities(np.r_[np.ones(6), 0.2])
    assert vel[6] == pytest.approx(-0.2)                   # opening = closure decreasing


def test_pure_modules_import_without_ros():
    import subprocess
    import sys
    code = ('import sys\n'
            'import omegaq_ros.robot.arx_r5_mapping, omegaq_ros.robot.trajectory_follower\n'
            'import omegaq_ros.robot.safety, omegaq_ros.robot.urdf\n'
            'import omegaq_ros.nodes.observation_sync, omegaq_ros.nodes.parameters\n'
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', "
            "'trajectory_msgs', 'std_msgs', 'rcl_interfaces')]\n"
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True)
