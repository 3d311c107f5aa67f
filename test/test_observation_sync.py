# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Approximate-time observation synchronization and per-arm joint state assembly."""

import numpy as np
from omegaq_ros.nodes.observation_sync import JointStateAssembler, ObservationSync
import pytest

TOPICS = ['cam_high', 'cam_left_wrist', 'cam_right_wrist', 'joint_states']


def _sync(**kwargs):
    args = {'sync_slop': 0.02, 'max_obs_age': 0.2}
    args.update(kwargs)
    return ObservationSync(TOPICS, **args)


def test_missing_topic_is_named():
    sync = _sync()
    for topic in TOPICS[:3]:
        sync.add(topic, 10.0, topic)
    result = sync.select(now=10.01)
    assert not result.ok
    assert result.reason == "missing topic(s) ['joint_states']: no message received yet"


def test_newest_matching_set_is_selected():
    sync = _sync()
    # 30 Hz cameras, 100 Hz joint states with a small offset
    for k in range(10):
        for topic in TOPICS[:3]:
            sync.add(topic, 10.0 + k / 30 + 0.003 * TOPICS.index(topic), (topic, k))
    for k in range(35):
        sync.add('joint_states', 10.0 + k / 100, ('joint_states', k))
    now = 10.35
    result = sync.select(now)
    assert result.ok, result.reason
    assert result.messages['cam_high'] == ('cam_high', 9)
    assert result.messages['cam_right_wrist'] == ('cam_right_wrist', 9)
    # the newest set: joint state 10.32 with cameras 10.300 .. 10.306 (10.33, 10.34 have none)
    assert result.messages['joint_states'] == ('joint_states', 32)
    assert result.spread == pytest.approx(0.02)
    assert result.stamp == min(result.stamps.values())
    assert result.age == pytest.approx(now - result.stamp)


def test_out_of_order_arrival_is_sorted():
    sync = _sync()
    for topic in TOPICS:
        sync.add(topic, 5.05, 'new')
        sync.add(topic, 5.00, 'old')
    result = sync.select(now=5.06)
    assert result.ok and set(result.messages.values()) == {'new'}


def test_stale_topic_reports_age():
    sync = _sync()
    for topic in TOPICS:
        sync.add(topic, 10.0)
    sync.add('cam_high', 9.5)
    for topic in TOPICS[1:]:
        sync.add(topic, 10.35)
    result = sync.select(now=10.4)
    assert not result.ok
    assert 'stale input (max_obs_age 200 ms)' in result.reason
    assert 'cam_high newest is 400 ms old' in result.reason
    assert 'joint_states' not in result.reason


def test_no_match_within_slop():
    sync = _sync()
    sync.add('cam_high', 10.00)
    sync.add('cam_left_wrist', 10.05)
    sync.add('cam_right_wrist', 10.10)
    sync.add('joint_states', 10.10)
    result = sync.select(now=10.12)
    assert not result.ok
    assert result.reason.startswith('no match within sync_slop 20 ms')
    assert 'spread 100 ms' in result.reason


def test_set_must_be_fresh_even_if_older_set_matches():
    sync = _sync(max_obs_age=0.1)
    for topic in TOPICS:
        sync.add(topic, 10.0)           # a perfect but old set
    sync.add('cam_high', 10.25)
    for topic in TOPICS[1:]:
        sync.add(topic, 10.21)
    result = sync.select(now=10.26)
    assert not result.ok and 'no match' in result.reason
    sync.add('cam_high', 10.22)
    result = sync.select(now=10.26)
    assert result.ok and result.stamps['cam_high'] == 10.22


def test_future_stamps_are_not_used():
    sync = _sync()
    for topic in TOPICS:
        sync.add(topic, 11.0)
    result = sync.select(now=10.0)
    assert not result.ok and 'in the future' in result.reason


def test_buffer_is_bounded_and_reset_clears():
    sync = _sync(buffer_size=3)
    for k in range(10):
        sync.add('cam_high', float(k))
    assert sync.newest_stamps() == {'cam_high': 9.0}
    assert len(sync._stamps['cam_high']) == 3
    sync.reset()
    assert sync.newest_stamps() == {}


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='distinct topic names'):
        ObservationSync(['a', 'a'], 0.02, 0.1)
    with pytest.raises(ValueError, match='max_obs_age > 0'):
        ObservationSync(['a'], 0.02, 0.0)
    sync = _sync()
    with pytest.raises(ValueError, match="got topic 'cam_low'"):
        sync.add('cam_low', 1.0)
    with pytest.raises(ValueError, match='not finite'):
        sync.add('cam_high', float('nan'))


def test_joint_state_assembler_merges_two_arms():
    names = [f'left_{i}' for i in range(7)] + [f'right_{i}' for i in range(7)]
    assembler = JointStateAssembler(names, slop=0.02)
    assert assembler.update(1.000, dict.fromkeys(names[:7], 1.0)) is None
    assert assembler.missing() == names[7:]
    stamp, state = assembler.update(1.005, dict.fromkeys(names[7:], 2.0))
    assert stamp == 1.000
    np.testing.assert_array_equal(state, [1.0] * 7 + [2.0] * 7)
    # the left arm went silent: parts no longer agree within the slop
    assert assembler.update(1.100, dict.fromkeys(names[7:], 3.0)) is None
    with pytest.raises(ValueError, match=r"unknown joint names \['elbow'\]"):
        assembler.update(1.1, {'elbow': 0.0})
    stamp, state = JointStateAssembler(names, 0.0).update(2.0, dict.fromkeys(names, 0.5))
    assert stamp == 2.0 and state.shape == (14,)


def test_future_stamps_are_refused_on_arrival_and_cannot_lock_a_topic_out():
    """31 images stamped an hour ahead, then good ones: the good ones must still be selected."""
    sync = _sync()
    now = 1000.0
    for k in range(31):
        with pytest.raises(ValueError, match=r'ahead of this node.s clock .*message refused'):
            sync.add('cam_high', now + 3600.0 + k, 'future', now=now + k * 0.01)
    assert sync.newest_stamps() == {}
    sync.add('cam_high', now + 0.05, 'skewed', now=now)     # within max_future (max_obs_age)
    for k in range(40):
        for topic in TOPICS:
            sync.add(topic, now + 1.0 + k * 0.05, ('good', k), now=now + 1.0 + k * 0.05)
    result = sync.select(now + 1.0 + 39 * 0.05)
    assert result.ok and result.messages['cam_high'] == ('good', 39), result.reason


def test_buffers_are_bounded_in_bytes():
    sync = _sync(max_bytes=1000)
    for k in range(10):
        sync.add('cam_high', 10.0 + k * 0.01, k, nbytes=300)
    assert sync.buffered_bytes()['cam_high'] == 900            # the 3 newest
    assert sync.newest_stamps()['cam_high'] == pytest.approx(10.09)
    with pytest.raises(ValueError, match='expected at most 1000 bytes per cam_high buffer'):
        sync.add('cam_high', 11.0, 'huge', nbytes=1001)
    assert sync.buffered_bytes()['cam_high'] == 900


def test_joint_state_assembler_names_the_joints_a_message_lacks():
    names = [f'j{i}' for i in range(4)]
    assembler = JointStateAssembler(names, 0.02)
    assert assembler.incomplete() == names
    assert assembler.update(1.0, dict.fromkeys(names, 0.0)) is not None
    for k in range(1, 5):                 # three-joint messages: j3 goes missing
        assert assembler.update(1.0 + k * 0.1, dict.fromkeys(names[:3], 0.0)) is None
    assert assembler.incomplete() == ['j3']
