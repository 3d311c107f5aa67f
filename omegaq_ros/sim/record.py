# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Record scripted-expert demonstrations as rosbag2 MCAP, one bag directory per episode.

omegaq-sim-record --task lift|bin|handover|all --episodes N --seed-start S --out DIR
                  [--image-size 224|640x480]
Episode seeds are S .. S+N-1 for every task; bags are named <task>_seed<seed> (six digits).
"""

import argparse
from pathlib import Path
import sys

from omegaq_ros.sim.bag import EpisodeBagWriter
from omegaq_ros.sim.env import BimanualEnv
from omegaq_ros.sim.expert import run_episode
from omegaq_ros.sim.tasks import TASKS
from tqdm import tqdm

IMAGE_SIZE_ARGUMENTS = {'224': (224, 224), '224x224': (224, 224), '640x480': (480, 640)}


def bag_name(task: str, seed: int) -> str:
    """Return the directory name of one episode's bag."""
    return f'{task}_seed{seed:06d}'


def record_episode(env: BimanualEnv, seed: int, out_dir) -> tuple:
    """Run the expert on one seed with all cameras rendered; return (bag path, success)."""
    path = Path(out_dir) / bag_name(env.task.name, seed)
    with EpisodeBagWriter(path) as bag:
        bag.write_instruction(env.instruction, stamp_ns=0)

        def write(observation, action):
            bag.write_tick(observation.stamp_ns, observation.images, observation.state, action)

        success = run_episode(env, seed, render=True, on_tick=write)
        height, width = env.image_size
        bag.write_episode_info({
            'task': env.task.name, 'seed': int(seed), 'success': bool(success),
            'instruction': env.instruction, 'steps': bag.ticks,
            'control_period_s': env.control_period_s, 'image_height': height,
            'image_width': width, 'source': 'omegaq_ros.sim.expert.ScriptedExpert',
        }, stamp_ns=env.observe(render=False).stamp_ns)
    return path, success


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog='omegaq-sim-record', description='Record scripted-expert demonstrations of the '
        'bimanual ARX R5 simulation as rosbag2 MCAP (one bag per episode).')
    parser.add_argument('--task', choices=[*TASKS, 'all'], default='all')
    parser.add_argument('--episodes', type=int, required=True, help='episodes per task')
    parser.add_argument('--seed-start', type=int, default=0)
    parser.add_argument('--out', type=Path, required=True, help='directory for the bags')
    parser.add_argument('--image-size', choices=sorted(IMAGE_SIZE_ARGUMENTS), default='224',
                        help='camera resolution, WIDTHxHEIGHT or one number for a square')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f'expected --episodes >= 1, got {args.episodes}')
    return args


def main(argv=None) -> int:
    """Record the requested episodes and print the expert's success count per task."""
    args = parse_args(argv)
    tasks = list(TASKS) if args.task == 'all' else [args.task]
    image_size = IMAGE_SIZE_ARGUMENTS[args.image_size]
    args.out.mkdir(parents=True, exist_ok=True)
    successes = dict.fromkeys(tasks, 0)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    with tqdm(total=len(tasks) * len(seeds), unit='episode') as progress:
        for task in tasks:
            with BimanualEnv(task, image_size=image_size) as env:
                for seed in seeds:
                    path, success = record_episode(env, seed, args.out)
                    successes[task] += int(success)
                    if not success:
                        tqdm.write(f'expert failed: {path}')
                    progress.set_postfix({name: f'{count}' for name, count in successes.items()})
                    progress.update()
    for task in tasks:
        print(f'{task}: expert succeeded in {successes[task]}/{len(seeds)} episodes '
              f'(seeds {seeds.start}..{seeds.stop - 1}), bags in {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
