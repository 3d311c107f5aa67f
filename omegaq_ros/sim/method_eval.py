# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
omegaq-eval: closed-loop success of FP against every quantization method, paired by seed.

    omegaq-eval --policy models/pi05_small/checkpoint --methods fp,rtn,omega --episodes 50 \
        --tasks all [--seeds 100000:100050] [--workers 8] [--out reports/eval]
        [--device cuda --dtype bfloat16]

A method is a recipe preset, optionally with Recipe fields changed after '+'
(`omega-group+act_clip=mse`), so ablations run paired against the presets.

A method may name the QuantLinear backend that runs it, METHOD@BACKEND: on a GPU,
`--methods omega-dynamic,omega-dynamic@triton` runs one artifact on the reference and the
Triton backend over the same episodes (a paired check that the fast kernels keep success).

The policy is a pi0.5 or GR00T N1.5 checkpoint (the registry tells which). Every method is
built from the same FP checkpoint: quantized with its family's recipe scope on 10
calibration trajectories (expert rollouts on calibration seeds, disjoint from training and
evaluation seeds). Each episode runs the policy in the MuJoCo scene: one chunk per
`--execute` control ticks, the same sampling noise per (episode, chunk) for every method, so
comparisons are paired. Printed per task and on average: success rate with a 95% Wilson
interval, open-loop action error vs FP on held-out expert frames, mean inference time.
"""

import argparse
from dataclasses import dataclass
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch

TASKS = ('lift', 'bin', 'handover')
EVAL_SEEDS = (100000, 100050)        # training uses 0.., calibration 1000.., held-out 2000..
CALIBRATION_SEEDS = (1000, 1004)
HELD_OUT_SEEDS = (2000, 2003)


@dataclass
class EpisodeResult:
    """One closed-loop episode."""

    method: str
    task: str
    seed: int
    success: bool
    steps: int
    inference_ms: float
    # The policy returned NaN/inf actions: the episode ends there, failed (a robot's bridge
    # refuses such a chunk), and the table says how many.
    nonfinite: bool = False


def wilson_interval(successes: int, total: int, z: float = 1.96):
    """95% Wilson score interval of a success rate."""
    if total == 0:
        return (0.0, 0.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # The interval always holds the rate (rounding can put a bound just inside 0 or 1).
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def calibration_batches(policy, episodes, frames_per_episode: int = 8, seed: int = 0):
    """Model calls (the policy's model_call) from frames of calibration episodes, with noise."""
    from omegaq_ros.policy.calibration import calibration_batch
    rng = np.random.default_rng(seed)
    batches = []
    for episode in episodes:
        steps = len(episode.state)
        for t in np.linspace(0, steps - 1, frames_per_episode).astype(int):
            images = [episode.images[name][t] for name in policy.config.cameras]
            batches.append(calibration_batch(policy, images, episode.state[t],
                                             episode.instruction, rng))
    return batches


def split_method(label: str):
    """Split 'METHOD@BACKEND' (or plain 'METHOD', the reference backend) into its parts."""
    method, _, backend = label.partition('@')
    return method, backend or 'reference'


def build_methods(checkpoint: str, methods, calibration_episodes, out_dir: str):
    """Write one artifact per quantized method (the FP method is the checkpoint itself)."""
    import re
    from omegaq_ros.policy.calibration import quantize_policy
    from omegaq_ros.policy.recipes import method_recipe
    from omegaq_ros.policy.registry import load_policy
    policy = load_policy(checkpoint)
    batches = calibration_batches(policy, calibration_episodes)
    paths = {}
    for method in dict.fromkeys(methods):
        if method == 'fp':
            paths[method] = checkpoint
            continue
        folder = os.path.join(out_dir, re.sub(r'[^A-Za-z0-9_.-]', '_', method))
        quantize_policy(policy, batches, method_recipe(method, policy.family), folder,
                        overwrite=True, copy=True)
        paths[method] = folder
    return paths


def run_episode(policy, method: str, task: str, seed: int, execute: int) -> EpisodeResult:
    """Run one closed-loop episode; the noise depends only on (seed, chunk index)."""
    from omegaq_ros.sim.env import BimanualEnv
    config = policy.config
    times = []
    with BimanualEnv(task) as env:
        observation = env.reset(seed, render=True)
        success, chunk_index = False, 0
        while env.step_count < env.max_steps and not success:
            noise = np.random.default_rng([seed, chunk_index]).standard_normal(
                (config.horizon, config.max_action_dim)).astype(np.float32)
            images = [observation.images[name] for name in config.cameras]
            started = time.perf_counter()
            chunk = policy.predict(images, observation.state, observation.instruction,
                                   noise=noise)
            times.append((time.perf_counter() - started) * 1000)
            if not np.isfinite(chunk).all():
                return EpisodeResult(method, task, seed, False, env.step_count,
                                     float(np.mean(times)), nonfinite=True)
            for k in range(min(execute, len(chunk))):
                last = k == execute - 1 or env.step_count + 1 >= env.max_steps
                observation = env.step(chunk[k], render=last)
                success = env.success()
                if success or env.step_count >= env.max_steps:
                    break
            chunk_index += 1
    return EpisodeResult(method, task, seed, bool(success), env.step_count,
                         float(np.mean(times)) if times else 0.0)


_WORKER_POLICIES = {}


def _worker_init():
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


def load_method(label: str, path: str, load_options: dict):
    """Load the policy of a method label with its backend and the run's device and dtype."""
    from omegaq_ros.policy.registry import load_policy
    options = dict(load_options)
    device = options.pop('device', 'cpu')
    return load_policy(path, device, backend=split_method(label)[1], **options)


def _episode_job(job):
    label, path, task, seed, execute, load_options = job
    if label not in _WORKER_POLICIES:
        _WORKER_POLICIES[label] = load_method(label, path, load_options)
    return run_episode(_WORKER_POLICIES[label], label, task, seed, execute)


def open_loop_errors(paths, held_out_episodes, checkpoint: str, frames: int = 6,
                     load_options=None):
    """
    Return mean |a_method - a_fp| over held-out frames, in normalized action units.

    The FP reference is the checkpoint, whether or not 'fp' is among the methods.
    """
    policies = {m: load_method(m, p, load_options or {}) for m, p in paths.items()}
    reference = policies.get('fp') or load_method('fp', checkpoint, load_options or {})
    config = reference.config
    errors = {m: [] for m in policies}
    for index, episode in enumerate(held_out_episodes):
        for t in np.linspace(0, len(episode.state) - 1, frames).astype(int):
            images = [episode.images[name][t] for name in config.cameras]
            noise = np.random.default_rng([index, int(t)]).standard_normal(
                (config.horizon, config.max_action_dim)).astype(np.float32)
            base = reference.predict(images, episode.state[t], episode.instruction,
                                     noise=noise, normalized=True)
            for method, policy in policies.items():
                out = policy.predict(images, episode.state[t], episode.instruction,
                                     noise=noise, normalized=True)
                errors[method].append(float(np.abs(out - base).mean()))
    return {m: float(np.mean(v)) for m, v in errors.items()}


def summarize(results, errors, methods, tasks):
    """Rows per (method, task) and per method on average."""
    rows = []
    for method in methods:
        mine = [r for r in results if r.method == method]
        for task in list(tasks) + ['average']:
            chosen = mine if task == 'average' else [r for r in mine if r.task == task]
            wins = sum(r.success for r in chosen)
            low, high = wilson_interval(wins, len(chosen))
            rows.append({'method': method, 'task': task, 'episodes': len(chosen),
                         'success': wins / max(1, len(chosen)), 'ci_low': low, 'ci_high': high,
                         'open_loop_error': errors.get(method, float('nan')),
                         'nonfinite': sum(r.nonfinite for r in chosen),
                         'inference_ms': float(np.mean([r.inference_ms for r in chosen]))
                         if chosen else float('nan')})
    return rows


def markdown(rows, tasks) -> str:
    """Render the table (one row per method, one column per task and the average)."""
    methods = list(dict.fromkeys(r['method'] for r in rows))
    head = '| method | ' + ' | '.join(list(tasks) + ['average']) + \
        ' | open-loop error | inference ms |'
    lines = [head, '|' + '---|' * (len(tasks) + 4)]
    for method in methods:
        cells = []
        for task in list(tasks) + ['average']:
            r = next(x for x in rows if x['method'] == method and x['task'] == task)
            # --episodes 0 measures the open-loop error alone: no success rate to show.
            cells.append(f"{100 * r['success']:.0f}% [{100 * r['ci_low']:.0f}, "
                         f"{100 * r['ci_high']:.0f}] (n={r['episodes']})" if r['episodes']
                         else '–')
        average = next(x for x in rows if x['method'] == method and x['task'] == 'average')
        inference = f"{average['inference_ms']:.0f}" if average['episodes'] else '–'
        lines.append(f'| {method} | ' + ' | '.join(cells) +
                     f" | {average['open_loop_error']:.4f} | {inference} |")
    for r in rows:
        if r['task'] == 'average' and r['nonfinite']:
            lines.append(f"\n{r['nonfinite']} of {r['episodes']} episodes of {r['method']} "
                         'ended on a chunk with NaN/inf actions (counted as failures).')
    return '\n'.join(lines) + '\n'


def plot(rows, path):
    """Bar chart of average success by method with the 95% intervals."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    average = [r for r in rows if r['task'] == 'average']
    figure, axis = pyplot.subplots(figsize=(1.1 * len(average) + 2, 3.5))
    x = np.arange(len(average))
    values = [100 * r['success'] for r in average]
    # Wilson bounds can miss a rate of 0 or 1 by a rounding error: bars are never negative.
    errors = [[max(0.0, 100 * (r['success'] - r['ci_low'])) for r in average],
              [max(0.0, 100 * (r['ci_high'] - r['success'])) for r in average]]
    axis.bar(x, values, yerr=errors, capsize=4)
    axis.set_xticks(x)
    axis.set_xticklabels([r['method'] for r in average], rotation=30)
    axis.set_ylabel('closed-loop success [%]')
    axis.set_ylim(0, 100)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def parse_range(text: str):
    """Parse 'A:B' into (A, B)."""
    start, _, stop = text.partition(':')
    return int(start), int(stop)


def main(argv=None) -> int:
    """Command-line entry point."""
    args, labels, tasks, load_options = parse_args(argv)
    start, stop = parse_range(args.seeds) if args.seeds else (
        EVAL_SEEDS[0], EVAL_SEEDS[0] + args.episodes)
    seeds = list(range(start, stop))[:args.episodes]
    os.makedirs(args.out, exist_ok=True)
    calibration, held_out = expert_episodes(args.policy, tasks, args.calibration_seeds,
                                            args.held_out_seeds, args.workers)
    artifacts = tempfile.mkdtemp(prefix='omegaq-eval-')
    started = time.time()
    built = build_methods(args.policy, [split_method(m)[0] for m in labels], calibration,
                          artifacts)
    paths = {label: built[split_method(label)[0]] for label in labels}
    print(f'built {len(built)} methods in {time.time() - started:.0f} s', flush=True)
    errors = open_loop_errors(paths, held_out, args.policy, load_options=load_options)
    jobs = [(m, paths[m], task, seed, args.execute, load_options) for m in labels
            for task in tasks for seed in seeds]
    results = run_episodes(jobs, args.workers)
    rows = summarize(results, errors, labels, tasks)
    write_results(args.out, rows, markdown(rows, tasks), results, 'omegaq-eval ' + ' '.join(
        argv if argv is not None else sys.argv[1:]))
    return 0


def parse_args(argv=None):
    """Parse and check the command line; return (args, method labels, tasks, load options)."""
    from omegaq_ros.policy.recipes import method_recipe
    from omegaq_ros.policy.registry import policy_family
    from omegaq_ros.policy.runtime import BACKENDS, DTYPES, policy_options
    from omegaq_ros.quant import PRESETS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--policy', required=True,
                        help='FP checkpoint directory (pi0.5 or GR00T N1.5)')
    parser.add_argument('--methods', default=','.join(PRESETS))
    parser.add_argument('--episodes', type=int, default=50,
                        help='per task (0: the open-loop error alone, no closed loop)')
    parser.add_argument('--tasks', default='all')
    parser.add_argument('--seeds', default=None, help=f'A:B (default {EVAL_SEEDS[0]}:...)')
    parser.add_argument('--calibration-seeds', default='%d:%d' % CALIBRATION_SEEDS)
    parser.add_argument('--held-out-seeds', default='%d:%d' % HELD_OUT_SEEDS,
                        help='expert episodes for the open-loop error')
    parser.add_argument('--execute', type=int, default=10, help='ticks executed per chunk')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument('--out', default='reports/eval')
    parser.add_argument('--device', default='auto',
                        help='the policies: auto (cuda where available) | cuda | cpu; on CUDA '
                        'with CUDA graphs and fused pointwise kernels')
    parser.add_argument('--dtype', default='auto', choices=['auto'] + list(DTYPES),
                        help='auto: bfloat16 on CUDA, float32 on the CPU')
    args = parser.parse_args(argv)
    tasks = TASKS if args.tasks == 'all' else tuple(args.tasks.split(','))
    labels = list(dict.fromkeys(m for m in args.methods.split(',') if m))
    try:
        family = policy_family(args.policy)
        for label in labels:
            method_recipe(split_method(label)[0], family)
    except ValueError as error:
        parser.error(str(error))
    bad = [m for m in labels if split_method(m)[1] not in BACKENDS]
    if bad:
        parser.error(f'unknown backends in {bad}; known {list(BACKENDS)}')
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if not args.device.startswith(('cpu', 'cuda')):
        parser.error(f"--device must be auto, cpu or cuda[:N], got '{args.device}'")
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available on this machine')
    if (any(split_method(m)[1] == 'triton' for m in labels) and args.device == 'cpu'
            and os.environ.get('TRITON_INTERPRET') != '1'):
        parser.error('the triton backend needs --device cuda (or TRITON_INTERPRET=1)')
    resolved = policy_options(args.device, args.dtype)
    load_options = {name: resolved[name]
                    for name in ('device', 'dtype', 'cuda_graph', 'fused_pointwise')}
    print(f"omegaq-eval: {family} policy, on {args.device}, {resolved['dtype']} towers"
          + (', CUDA graphs' if resolved['cuda_graph'] else '')
          + (', fused pointwise kernels' if resolved['fused_pointwise'] else '')
          + '; the backend of each method comes from its label (METHOD@BACKEND)', flush=True)
    return args, labels, tasks, load_options


def expert_episodes(checkpoint: str, tasks, calibration_seeds: str, held_out_seeds: str,
                    workers: int):
    """Return (calibration, held-out) expert episodes (seeds 'A:B'), images at policy size."""
    from omegaq_ros.policy.registry import load_policy
    from omegaq_ros.sim.demos import collect_expert_episodes
    policy = load_policy(checkpoint)
    shrink = policy.image_transform(policy.config)
    calibration = collect_expert_episodes(tasks, range(*parse_range(calibration_seeds)),
                                          shrink, workers=min(workers, 4))
    # Ten trajectories, as in the paper, spread over the tasks.
    calibration = calibration[::max(1, len(calibration) // 10)][:10]
    held_out = collect_expert_episodes(tasks, range(*parse_range(held_out_seeds)), shrink,
                                       workers=min(workers, 4))
    return calibration, held_out


def run_episodes(jobs, workers: int) -> list:
    """Run the episode jobs, in `workers` spawned processes when more than one."""
    results = []
    from tqdm import tqdm
    if workers > 1:
        from multiprocessing import get_context
        with get_context('spawn').Pool(workers, initializer=_worker_init) as pool:
            for result in tqdm(pool.imap_unordered(_episode_job, jobs), total=len(jobs)):
                results.append(result)
    else:
        for job in tqdm(jobs):
            results.append(_episode_job(job))
    return results


def write_results(out: str, rows, table: str, results, command: str) -> None:
    """Write table.md, results.json and success.png to out and print the table."""
    with open(os.path.join(out, 'table.md'), 'w') as stream:
        stream.write(table)
    with open(os.path.join(out, 'results.json'), 'w') as stream:
        json.dump({'rows': rows, 'episodes': [r.__dict__ for r in results],
                   'command': command}, stream, indent=1)
    print(table, flush=True)
    try:                                   # the table and results.json are already written
        plot(rows, os.path.join(out, 'success.png'))
    except Exception as error:             # a plot must never cost the results
        print(f'omegaq-eval: success.png not written: {type(error).__name__}: {error}',
              file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
