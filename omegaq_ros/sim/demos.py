# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Expert demonstrations as arrays, straight from the sim or from rosbag2 files.

Both sources give the same Episode arrays (images per camera [T, H, W, 3], state [T, 14],
action [T, 14], instruction), so training and calibration read sim bags, robot bags and
in-process sim rollouts alike. `image_transform` shrinks images as they are produced
(demonstrations at full camera size do not fit in memory by the hundred).
"""

from multiprocessing import get_context
import os
from typing import Callable, Optional, Sequence

import numpy as np
from omegaq_ros.sim.bag import Episode, read_episode


def rollout_expert(task: str, seed: int,
                   image_transform: Optional[Callable] = None) -> Optional[Episode]:
    """Run the scripted expert for one seed; return the episode, or None if it failed."""
    from omegaq_ros.sim.env import BimanualEnv
    from omegaq_ros.sim.expert import run_episode
    frames = {'images': [], 'state': [], 'action': []}

    def on_tick(observation, action):
        images = observation.images
        if image_transform is not None:
            images = {name: image_transform(image) for name, image in images.items()}
        frames['images'].append(images)
        frames['state'].append(observation.state)
        frames['action'].append(np.asarray(action, dtype=np.float32))

    with BimanualEnv(task) as env:
        success = run_episode(env, seed, render=True, on_tick=on_tick)
        instruction = env.instruction
        cameras = env.camera_names
    if not success:
        return None
    images = {name: np.stack([f[name] for f in frames['images']]) for name in cameras}
    steps = len(frames['state'])
    return Episode(images=images, state=np.stack(frames['state']),
                   action=np.stack(frames['action']),
                   stamps_ns=np.arange(steps, dtype=np.int64) * 50_000_000,
                   instruction=instruction, task=task, seed=seed, success=True,
                   info={'source': 'sim-expert'})


def _rollout(args):
    return rollout_expert(*args)


def _single_threaded_worker():
    # Many workers each running torch/BLAS with a thread per core oversubscribe the machine
    # (seen: 60x slower rollouts with 15 workers on 16 cores).
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)


def collect_expert_episodes(tasks: Sequence[str], seeds: Sequence[int],
                            image_transform: Optional[Callable] = None, workers: int = 1,
                            progress: Optional[Callable] = None):
    """Roll out the expert on every (task, seed) in parallel processes; keep the successes."""
    jobs = [(task, seed, image_transform) for task in tasks for seed in seeds]
    episodes = []
    if workers <= 1:
        results = map(_rollout, jobs)
    else:
        pool = get_context('spawn').Pool(workers, initializer=_single_threaded_worker)
        results = pool.imap(_rollout, jobs, chunksize=1)
    for index, episode in enumerate(results):
        if episode is not None:
            episodes.append(episode)
        if progress is not None:
            progress(index + 1, len(jobs))
    if workers > 1:
        pool.close()
        pool.join()
    return episodes


def read_episodes(paths: Sequence[str], max_skew_s: float = 0.0,
                  image_transform: Optional[Callable] = None):
    """Read rosbag2 episodes (sim or robot) and shrink their images."""
    episodes = []
    for path in paths:
        episode = read_episode(path, max_skew_s=max_skew_s)
        if image_transform is not None:
            episode.images = {name: np.stack([image_transform(i) for i in frames])
                              for name, frames in episode.images.items()}
        episodes.append(episode)
    return episodes
