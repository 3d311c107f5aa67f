# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Demonstration bags: real rosbag2 MCAP files written and read back exactly."""

import numpy as np
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim import bag, scene
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.expert import ScriptedExpert
from omegaq_ros.sim.record import main, record_episode
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores


def _expected_topics():
    topics = {topic: bag.IMAGE_TYPE for topic in bag.CAMERA_TOPICS.values()}
    topics.update({'/joint_states': bag.JOINT_STATE_TYPE, '/joint_commands': bag.JOINT_STATE_TYPE,
                   '/instruction': bag.STRING_TYPE, '/episode_info': bag.STRING_TYPE})
    return topics


def test_round_trip_returns_the_exact_arrays(tmp_path):
    recorded = {'images': [], 'state': [], 'action': [], 'stamps': []}
    with BimanualEnv('handover') as env:
        observation = env.reset(seed=2)
        expert = ScriptedExpert(env)
        expert.reset()
        with bag.EpisodeBagWriter(tmp_path / 'episode') as writer:
            writer.write_instruction(env.instruction, stamp_ns=0)
            for _ in range(6):
                action = expert.act()
                writer.write_tick(observation.stamp_ns, observation.images, observation.state,
                                  action)
                for key, value in (('images', observation.images), ('state', observation.state),
                                   ('action', action), ('stamps', observation.stamp_ns)):
                    recorded[key].append(value)
                observation = env.step(action, render=True)
            writer.write_episode_info({'task': 'handover', 'seed': 2, 'success': False},
                                      stamp_ns=observation.stamp_ns)

    with Reader(tmp_path / 'episode') as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == _expected_topics()
        assert reader.message_count == 6 * 5 + 2
    assert (tmp_path / 'episode' / 'metadata.yaml').is_file()
    assert len(list((tmp_path / 'episode').glob('*.mcap'))) == 1

    episode = bag.read_episode(tmp_path / 'episode')
    for camera in bag.CAMERA_TOPICS:
        np.testing.assert_array_equal(episode.images[camera],
                                      np.stack([i[camera] for i in recorded['images']]))
    np.testing.assert_array_equal(episode.state, np.stack(recorded['state']))
    np.testing.assert_array_equal(episode.action, np.stack(recorded['action']))
    np.testing.assert_array_equal(episode.stamps_ns, recorded['stamps'])
    assert episode.state.dtype == episode.action.dtype == np.float32
    assert episode.instruction == env.instruction
    assert (episode.task, episode.seed, episode.success) == ('handover', 2, False)


def _write_robot_like_bag(path):
    """Write a bag as another recorder would: joints in another order, states 10 ms late."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    types = typestore.types
    names = list(reversed(arx_r5.JOINT_NAMES))

    def header(stamp):
        return types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=0, nanosec=stamp), frame_id='')

    def joint_state(stamp, positions):
        empty = np.zeros(0)
        return types[bag.JOINT_STATE_TYPE](header=header(stamp), name=names,
                                           position=positions[::-1].astype(np.float64),
                                           velocity=empty, effort=empty)

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in _expected_topics().items()
                       if topic not in ('/instruction', '/episode_info')}
        for tick in range(3):
            stamp = tick * 50_000_000
            image = np.zeros((4, 6, 3), np.uint8)
            image[..., 0], image[..., 2] = tick, 200          # bgr8: blue = tick, red = 200
            messages = {'/joint_states': joint_state(stamp + 10_000_000, np.arange(14.0) + tick),
                        '/joint_commands': joint_state(stamp, -np.arange(14.0))}
            for topic in bag.CAMERA_TOPICS.values():
                messages[topic] = types[bag.IMAGE_TYPE](
                    header=header(stamp), height=4, width=6, encoding='bgr8', is_bigendian=0,
                    step=18, data=image.reshape(-1))
            for topic, message in messages.items():
                data = typestore.serialize_cdr(message, connections[topic].msgtype)
                writer.write(connections[topic], stamp, data)


def test_reader_matches_joints_by_name_and_stamps_within_the_skew(tmp_path):
    _write_robot_like_bag(tmp_path / 'robot')
    with pytest.raises(ValueError, match='/joint_states message within 0 ns'):
        bag.read_episode(tmp_path / 'robot')
    episode = bag.read_episode(tmp_path / 'robot', max_skew_s=0.02)
    np.testing.assert_array_equal(episode.state, [np.arange(14.0) + t for t in range(3)])
    np.testing.assert_array_equal(episode.action, [-np.arange(14.0)] * 3)
    assert episode.task is None and episode.success is None and episode.instruction == ''
    assert episode.images['cam_high'].shape == (3, 4, 6, 3)
    np.testing.assert_array_equal(episode.images['cam_high'][:, 0, 0],
                                  [(200, 0, tick) for tick in range(3)])


def test_writer_refuses_bad_input(tmp_path):
    with bag.EpisodeBagWriter(tmp_path / 'bad') as writer:
        images = {'cam_high': np.zeros((2, 2, 3), np.uint8)}
        with pytest.raises(ValueError, match='missing'):
            writer.write_tick(0, images, np.zeros(14), np.zeros(14))
        images = {name: np.zeros((2, 2, 3), np.uint8) for name in bag.CAMERA_TOPICS}
        with pytest.raises(ValueError, match='14 joint positions'):
            writer.write_tick(0, images, np.zeros(13), np.zeros(14))
    with pytest.raises(FileExistsError):
        bag.EpisodeBagWriter(tmp_path / 'bad')


def test_record_episode_and_cli_store_task_seed_and_success(tmp_path, capsys):
    with BimanualEnv('lift') as env:
        path, success = record_episode(env, seed=8, out_dir=tmp_path)
    episode = bag.read_episode(path)
    assert success and (episode.task, episode.seed, episode.success) == ('lift', 8, True)
    assert len(episode.action) == episode.info['steps'] == len(episode.stamps_ns)
    np.testing.assert_array_equal(np.diff(episode.stamps_ns), 50_000_000)
    # The first recorded state is the home pose with open grippers, where every episode starts.
    home = np.concatenate([scene.HOME_JOINTS, [0.0]] * 2).astype(np.float32)
    np.testing.assert_allclose(episode.state[0], home, atol=1e-6)

    assert main(['--task', 'bin', '--episodes', '1', '--seed-start', '5',
                 '--out', str(tmp_path / 'cli')]) == 0
    assert 'bin: expert succeeded in 1/1' in capsys.readouterr().out
    episode = bag.read_episode(tmp_path / 'cli' / 'bin_seed000005')
    assert (episode.task, episode.seed, episode.success) == ('bin', 5, True)
    assert episode.images['cam_left_wrist'].shape[1:] == (224, 224, 3)
