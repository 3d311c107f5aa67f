# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Train a pi0.5-architecture policy on expert demonstrations with flow matching.

    python -m omegaq_ros.policy.train --out models/pi05_small --episodes-per-task 100 \
        --device cuda --minutes 6 [--bags DIR ...] [--resume]

Data: expert rollouts of the MuJoCo tasks made in-process (parallel workers), or rosbag2
episodes (`--bags`, sim or robot). Images are resized-with-pad to the model's size once
(the same transform the runtime applies); state and action are normalized with their
1st/99th percentiles (LeRobot QUANTILES); the state is written into the prompt.
Loss: openpi's flow matching, t ~ Beta(1.5, 1) * 0.999 + 0.001, x_t = t noise + (1 - t) a,
target noise - a, on the robot's action dimensions. Seeded; `--resume` continues from the
last train_state.safetensors in --out. Writes a LeRobot-layout checkpoint (fp16 weights,
normalization statistics, tokenizer.model).
"""

import argparse
import functools
import glob
import json
import math
import os
import sys
import time

import numpy as np
from omegaq_ros.policy.checkpoint import save_lerobot_checkpoint
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import (Normalizer, PromptTokenizer, shrink_image,
                                               tokenize_instruction, train_prompt_tokenizer)
from safetensors.torch import load_file, save_file
import torch

TASKS = ('lift', 'bin', 'handover')


class DemoDataset:
    """All frames of all episodes on one device, ready for random batches."""

    def __init__(self, episodes, config: Pi05Config, tokenizer: PromptTokenizer, device):
        cameras = config.cameras
        states = np.concatenate([e.state for e in episodes])
        actions = np.concatenate([e.action for e in episodes])
        self.state_norm = Normalizer('QUANTILES', {'q01': np.quantile(states, 0.01, axis=0),
                                                   'q99': np.quantile(states, 0.99, axis=0)})
        self.action_norm = Normalizer('QUANTILES', {'q01': np.quantile(actions, 0.01, axis=0),
                                                    'q99': np.quantile(actions, 0.99, axis=0)})
        images, tokens, masks, targets = [], [], [], []
        horizon = config.horizon
        for episode in episodes:
            steps = len(episode.state)
            images.append(np.stack([episode.images[c] for c in cameras], axis=1))
            normalized_state = self.state_norm.normalize(episode.state)
            normalized_action = self.action_norm.normalize(episode.action)
            for t in range(steps):
                token, mask = tokenize_instruction(tokenizer, episode.instruction,
                                                   normalized_state[t])
                tokens.append(token)
                masks.append(mask)
                index = np.minimum(np.arange(t, t + horizon), steps - 1)
                chunk = np.zeros((horizon, config.max_action_dim), np.float32)
                chunk[:, :config.action_dim] = normalized_action[index]
                targets.append(chunk)
        self.images = torch.from_numpy(np.concatenate(images)).to(device)  # [N, C, H, W, 3]
        self.tokens = torch.from_numpy(np.stack(tokens)).to(device)
        self.masks = torch.from_numpy(np.stack(masks)).to(device)
        self.targets = torch.from_numpy(np.stack(targets)).to(device)
        self.size = len(self.tokens)

    def batch(self, indices):
        """Model inputs for frame indices: image list, image masks, tokens, masks, targets."""
        frames = self.images[indices].permute(1, 0, 4, 2, 3).float() * (2.0 / 255.0) - 1.0
        ones = torch.ones(len(indices), dtype=torch.bool, device=frames.device)
        return (list(frames), [ones] * frames.shape[0], self.tokens[indices],
                self.masks[indices], self.targets[indices])


def save_train_state(path, model, optimizer, step, seed):
    """Resumable state as safetensors + JSON (no pickle)."""
    tensors = {f'model.{k}': v.detach().cpu() for k, v in model.state_dict().items()}
    for index, (name, param) in enumerate(model.named_parameters()):
        state = optimizer.state.get(param, {})
        for key in ('exp_avg', 'exp_avg_sq'):
            if key in state:
                tensors[f'adam.{key}.{name}'] = state[key].detach().cpu()
    save_file(tensors, os.path.join(path, 'train_state.safetensors'))
    with open(os.path.join(path, 'train_state.json'), 'w') as stream:
        json.dump({'step': step, 'seed': seed}, stream)


def load_train_state(path, model, optimizer):
    """Restore model and Adam moments; return the step to continue from."""
    tensors = load_file(os.path.join(path, 'train_state.safetensors'))
    model.load_state_dict({k[len('model.'):]: v for k, v in tensors.items()
                           if k.startswith('model.')})
    with open(os.path.join(path, 'train_state.json')) as stream:
        step = json.load(stream)['step']
    for name, param in model.named_parameters():
        moments = {key: tensors.get(f'adam.{key}.{name}') for key in ('exp_avg', 'exp_avg_sq')}
        if all(v is not None for v in moments.values()):
            optimizer.state[param] = {'step': torch.tensor(float(step)),
                                      **{k: v.to(param.device) for k, v in moments.items()}}
    return step


def learning_rate(step, total, peak, warmup=300):
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main(argv=None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    started = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    config = Pi05Config.small()
    tasks = [t for t in args.tasks.split(',') if t]
    episodes = load_demonstrations(args, tasks, config.vision.image_size, started)
    print(f'{len(episodes)} episodes, {sum(len(e.state) for e in episodes)} frames',
          flush=True)
    tokenizer_path = prompt_tokenizer_file(args.out, args.init, episodes)
    tokenizer = PromptTokenizer(tokenizer_path, config.tokenizer_max_length)
    config = Pi05Config.small(vocab_size=tokenizer.vocab_size)
    data = DemoDataset(episodes, config, tokenizer, args.device)
    model = initial_model(config, args.device, args.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0
    if args.resume and os.path.isfile(os.path.join(args.out, 'train_state.safetensors')):
        step = load_train_state(args.out, model, optimizer)
        print(f'resumed at step {step}')
    step, final_loss = train_steps(model, optimizer, data, args, step, started)
    model.eval()
    save_lerobot_checkpoint(model.cpu(), os.path.join(args.out, 'checkpoint'),
                            {'observation.state': data.state_norm, 'action': data.action_norm},
                            tokenizer_path, store_dtype=torch.float16)
    with open(os.path.join(args.out, 'training.json'), 'w') as stream:
        json.dump({'steps': step, 'final_loss': final_loss,
                   'episodes': len(episodes), 'frames': data.size, 'tasks': tasks,
                   'seeds': [args.seed_start, args.seed_start + args.episodes_per_task - 1],
                   'seconds': time.time() - started, 'device': args.device,
                   'command': ' '.join(sys.argv)}, stream, indent=1)
    print(f'checkpoint written to {args.out}/checkpoint after {step} steps')
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--out', required=True)
    parser.add_argument('--tasks', default=','.join(TASKS))
    parser.add_argument('--episodes-per-task', type=int, default=100)
    parser.add_argument('--seed-start', type=int, default=0)
    parser.add_argument('--bags', nargs='*', default=None, help='rosbag2 episodes instead')
    parser.add_argument('--steps', type=int, default=20000)
    parser.add_argument('--minutes', type=float, default=None, help='stop after this long')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--init', default=None,
                        help='start from this checkpoint (its tokenizer; fresh optimizer)')
    return parser.parse_args(argv)


def load_demonstrations(args, tasks, image_size: int, started: float) -> list:
    """Return the training episodes: rosbag2 files (--bags) or fresh expert rollouts."""
    transform = functools.partial(shrink_image, size=image_size)
    if args.bags:
        from omegaq_ros.sim.demos import read_episodes
        paths = sorted(p for pattern in args.bags for p in glob.glob(pattern))
        return read_episodes(paths, image_transform=transform)
    from omegaq_ros.sim.demos import collect_expert_episodes
    seeds = range(args.seed_start, args.seed_start + args.episodes_per_task)

    def progress(done, total):
        if done % 25 == 0 or done == total:
            print(f'demos {done}/{total} ({time.time() - started:.0f} s)', flush=True)
    return collect_expert_episodes(tasks, seeds, transform, args.workers, progress)


def prompt_tokenizer_file(out: str, init: str, episodes) -> str:
    """Return out/tokenizer.model: --init's, one kept from a resumed run, or trained anew."""
    tokenizer_path = os.path.join(out, 'tokenizer.model')
    if init:
        import shutil
        shutil.copyfile(os.path.join(init, 'tokenizer.model'), tokenizer_path)
    if not os.path.isfile(tokenizer_path):
        train_prompt_tokenizer(sorted({e.instruction for e in episodes}), tokenizer_path,
                               vocab_size=256)
    return tokenizer_path


def initial_model(config: Pi05Config, device: str, init: str) -> Pi05Model:
    """Return a fresh model, or one with the weights of the --init checkpoint."""
    model = Pi05Model(config).to(device)
    if init:
        from omegaq_ros.policy.checkpoint import load_lerobot_checkpoint
        initial, initial_config, _, _ = load_lerobot_checkpoint(init)
        if initial_config != config:
            raise ValueError(f'--init checkpoint config differs: {initial_config} vs {config}')
        model.load_state_dict(initial.state_dict())
        print(f'initialized from {init}')
    return model


def train_steps(model, optimizer, data, args, step: int, started: float):
    """
    Run flow-matching steps from `step` to args.steps (or the time budget).

    Saves the train state every 2000 steps and at the end; returns (steps done, mean loss of
    the last 100 steps).
    """
    config = model.config
    generator = torch.Generator(device='cpu').manual_seed(args.seed + step)
    beta = torch.distributions.Beta(torch.tensor(1.5), torch.tensor(1.0))
    model.train()
    autocast = torch.autocast('cuda', dtype=torch.bfloat16, enabled=args.device == 'cuda')
    log_every, losses = 100, []
    while step < args.steps:
        if args.minutes and time.time() - started > args.minutes * 60:
            print(f'time budget reached at step {step}')
            break
        indices = torch.randint(0, data.size, (args.batch,), generator=generator)
        images, image_masks, tokens, masks, targets = data.batch(indices.to(args.device))
        noise = torch.randn(targets.shape, generator=generator).to(args.device)
        t = (beta.sample((args.batch,)) * 0.999 + 0.001).to(args.device)
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(step, args.steps, args.lr)
        with autocast:
            loss = model.flow_matching_loss(images, image_masks, tokens, masks, targets, noise,
                                            t)[..., :config.action_dim].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % log_every == 0:
            print(f'step {step} loss {np.mean(losses[-log_every:]):.4f} '
                  f'({time.time() - started:.0f} s)', flush=True)
        if step % 2000 == 0:
            save_train_state(args.out, model, optimizer, step, args.seed)
    save_train_state(args.out, model, optimizer, step, args.seed)
    return step, float(np.mean(losses[-log_every:]))


if __name__ == '__main__':
    sys.exit(main())
