# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
CPU time of one pi0.5 action chunk: FP checkpoint vs W4A4 artifact (reference backend).

    python benchmarks/bench_pi05_cpu.py --policy models/pi05_small/checkpoint \
        [--artifact models/pi05_small_w4a4] [--repeats 10] [--threads N]

Prints a table (median and p90 over repeats, after one warm-up) measured side by side in one
run, with the prefix / denoising split from a separate timing of the prefix pass.
"""

import argparse
import platform
import time

import numpy as np
from omegaq_ros.policy.pi05_processing import prepare_images
from omegaq_ros.policy.pi05_runtime import Pi05Policy
import torch


def time_policy(policy, repeats, rng):
    """Return per-chunk and prefix-only times in ms."""
    config = policy.config
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in config.cameras]
    state = rng.uniform(-0.5, 0.5, config.state_dim).astype(np.float32)
    noise = rng.standard_normal((config.horizon, 32)).astype(np.float32)
    chunk, prefix = [], []
    policy.predict(images, state, 'lift the red cube', noise=noise)
    tokens, mask = policy.tokenizer('Task: lift the red cube;\nAction: ')
    image_list, masks = prepare_images(images, [True] * 3, config.vision.image_size,
                                       policy.device)
    for _ in range(repeats):
        started = time.perf_counter()
        policy.predict(images, state, 'lift the red cube', noise=noise)
        chunk.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        with torch.no_grad():
            policy.model.prefix_context(image_list, masks, torch.from_numpy(tokens)[None],
                                        torch.from_numpy(mask)[None])
        prefix.append((time.perf_counter() - started) * 1000)
    return np.array(chunk), np.array(prefix)


def main():
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--policy', default='models/pi05_small/checkpoint')
    parser.add_argument('--artifact', default='models/pi05_small_w4a4')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for label, path in (('FP32', args.policy), ('W4A4 omega (reference backend)',
                                                args.artifact)):
        policy = Pi05Policy.load(path)
        chunk, prefix = time_policy(policy, args.repeats, rng)
        rows.append((label, np.median(chunk), np.percentile(chunk, 90), np.median(prefix)))
    config = policy.config
    print(f'pi0.5 small ({config.horizon}-step chunk, {config.num_steps} denoising steps, '
          f'3 cameras at 224 px -> {config.vision.image_size}); {platform.machine()} '
          f'{args.threads} threads, torch {torch.__version__}')
    print('| model | chunk p50 ms | chunk p90 ms | prefix p50 ms | denoising p50 ms |')
    print('|---|---|---|---|---|')
    for label, p50, p90, prefix in rows:
        print(f'| {label} | {p50:.0f} | {p90:.0f} | {prefix:.0f} | {p50 - prefix:.0f} |')


if __name__ == '__main__':
    main()
