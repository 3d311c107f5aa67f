# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Train a small pi0.5- or GR00T N1.5-architecture policy on expert demonstrations.

    python -m omegaq_ros.policy.train --out models/pi05_small --episodes-per-task 100 \
        --device cuda --minutes 6 [--family groot] [--bags DIR ...] [--resume]

Data: expert rollouts of the MuJoCo tasks made in-process (parallel workers), or rosbag2
episodes (`--bags`, sim or robot). Images are brought to the model's size once, with the
transform its runtime applies (pi0.5: resize-with-pad; GR00T: the Eagle square tile).
pi0.5: state and action normalized with their 1st/99th percentiles (LeRobot QUANTILES), the
state written into the prompt, openpi's flow matching (t ~ Beta(1.5, 1) * 0.999 + 0.001,
x_t = t noise + (1 - t) a, target noise - a). GR00T: min-max statistics, the state as its
own token, N1.5's flow matching (t = (0.999 - s) / 0.999 with s ~ Beta(1.5, 1),
x_t = (1 - t) noise + t a, target a - noise). The loss covers the robot's action dimensions.
Seeded; `--resume` continues from the last train_state.safetensors in --out. Writes the
family's checkpoint layout (fp16 weights, normalization statistics, prompt processing).
"""

import argparse
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
from omegaq_ros.policy.pi05_processing import (Normalizer, PromptTokenizer,
                                               tokenize_instruction, train_prompt_tokenizer)
from safetensors.torch import load_file, save_file
import torch

TASKS = ('lift', 'bin', 'handover')
FAMILIES = ('pi05', 'groot')


class DemoDataset:
    """
    All frames of all episodes on one device, ready for random batches.

    What the families share: per-camera images at the model's size [N, C, S, S, 3], the
    normalized state, and action chunks (the next horizon actions, the last one repeated)
    as targets [N, horizon, max_action_dim]. A family adds its normalizers, its prompt and
    the model inputs of a batch.
    """

    def __init__(self, episodes, config, state_norm, action_norm, device):
        self.config, self.state_norm, self.action_norm = config, state_norm, action_norm
        images, states, targets, prompts = [], [], [], []
        horizon = config.horizon
        for episode in episodes:
            steps = len(episode.state)
            images.append(np.stack([episode.images[c] for c in config.cameras], axis=1))
            normalized_state = state_norm.normalize(episode.state)
            normalized_action = action_norm.normalize(episode.action)
            states.append(normalized_state)
            for t in range(steps):
                prompts.append(self.prompt(episode.instruction, normalized_state[t]))
                index = np.minimum(np.arange(t, t + horizon), steps - 1)
                chunk = np.zeros((horizon, config.max_action_dim), np.float32)
                chunk[:, :config.action_dim] = normalized_action[index]
                targets.append(chunk)
        self.images = torch.from_numpy(np.concatenate(images)).to(device)  # [N, C, S, S, 3]
        self.states = torch.from_numpy(np.concatenate(states).astype(np.float32)).to(device)
        # Prompts of one length batch together, so no batch holds padding the runtime never
        # shows the model (GR00T's DiT attends to every VL token); pi0.5's have one length.
        lengths = np.array([len(tokens) for tokens, _ in prompts])
        tokens = np.zeros((len(prompts), lengths.max()), np.int64)
        masks = np.zeros(tokens.shape, bool)
        for row, (prompt_tokens, prompt_mask) in enumerate(prompts):
            tokens[row, :len(prompt_tokens)], masks[row, :len(prompt_mask)] = \
                prompt_tokens, prompt_mask
        self.tokens = torch.from_numpy(tokens).to(device)
        self.masks = torch.from_numpy(masks).to(device)
        self.lengths = lengths
        self.groups = [torch.from_numpy(np.flatnonzero(lengths == n)) for n in np.unique(lengths)]
        self.group_sizes = torch.tensor([len(group) for group in self.groups], dtype=torch.float)
        self.targets = torch.from_numpy(np.stack(targets)).to(device)
        self.size = len(self.tokens)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Return random frame indices [batch_size] whose prompts have one length."""
        group = self.groups[int(torch.multinomial(self.group_sizes, 1, generator=generator))]
        return group[torch.randint(0, len(group), (batch_size,), generator=generator)]

    def prompts(self, indices) -> tuple:
        """Return the token ids and masks [B, L] of frames whose prompts have one length."""
        length = int(self.lengths[int(indices[0])])
        return self.tokens[indices, :length], self.masks[indices, :length]

    def prompt(self, instruction: str, normalized_state: np.ndarray) -> tuple:
        """Return one frame's prompt tokens and mask."""
        raise NotImplementedError

    def batch(self, indices) -> tuple:
        """Return the model's flow_matching_loss inputs before (actions, noise, t)."""
        raise NotImplementedError


class Pi05Demos(DemoDataset):
    """pi0.5 frames: quantile statistics, the state inside the prompt."""

    def __init__(self, episodes, config: Pi05Config, tokenizer: PromptTokenizer, device):
        self.tokenizer = tokenizer
        states = np.concatenate([e.state for e in episodes])
        actions = np.concatenate([e.action for e in episodes])
        super().__init__(episodes, config, quantile_normalizer(states),
                         quantile_normalizer(actions), device)

    def prompt(self, instruction, normalized_state):
        return tokenize_instruction(self.tokenizer, instruction, normalized_state)

    def batch(self, indices):
        """Image list, image masks, tokens, masks, targets."""
        frames = self.images[indices].permute(1, 0, 4, 2, 3).float() * (2.0 / 255.0) - 1.0
        ones = torch.ones(len(indices), dtype=torch.bool, device=frames.device)
        return (list(frames), [ones] * frames.shape[0], *self.prompts(indices),
                self.targets[indices])


class GrootDemos(DemoDataset):
    """GR00T frames: min-max statistics, the Eagle prompt, the state as a token."""

    def __init__(self, episodes, config, processor, device):
        from omegaq_ros.policy.groot_processing import MinMaxNormalizer
        self.processor = processor
        self._prompts = {}
        states = np.concatenate([e.state for e in episodes])
        actions = np.concatenate([e.action for e in episodes])
        super().__init__(episodes, config,
                         MinMaxNormalizer({'min': states.min(0), 'max': states.max(0)}),
                         MinMaxNormalizer({'min': actions.min(0), 'max': actions.max(0)}),
                         device)

    def prompt(self, instruction, normalized_state):
        if instruction not in self._prompts:
            tokens = self.processor.encode(instruction, len(self.config.cameras))
            self._prompts[instruction] = (tokens, np.ones(tokens.shape, dtype=bool))
        return self._prompts[instruction]

    def batch(self, indices):
        """Pixel values [B * C, 3, S, S], token ids, masks, state tokens, targets."""
        tiles = self.images[indices].permute(0, 1, 4, 2, 3).flatten(0, 1)
        state = torch.zeros(len(indices), 1, self.config.max_state_dim,
                            device=self.states.device)
        state[:, 0, :self.config.state_dim] = self.states[indices]
        return (self.processor.normalize(tiles), *self.prompts(indices), state,
                self.targets[indices])


def quantile_normalizer(values: np.ndarray) -> Normalizer:
    """Return LeRobot's QUANTILES normalizer of values [N, D] (1st and 99th percentiles)."""
    return Normalizer('QUANTILES', {'q01': np.quantile(values, 0.01, axis=0),
                                    'q99': np.quantile(values, 0.99, axis=0)})


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
    tasks = [t for t in args.tasks.split(',') if t]
    family = FAMILY_TRAINING[args.family]
    episodes = load_demonstrations(args, tasks, family.image_transform(), started)
    print(f'{len(episodes)} episodes, {sum(len(e.state) for e in episodes)} frames',
          flush=True)
    processing = family.processing(args.out, args.init, episodes)
    config = family.config(processing, args)
    data = family.dataset(episodes, config, processing, args.device)
    model = initial_model(family, config, args.device, args.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0
    if args.resume and os.path.isfile(os.path.join(args.out, 'train_state.safetensors')):
        step = load_train_state(args.out, model, optimizer)
        print(f'resumed at step {step}')
    step, final_loss = train_steps(model, optimizer, data, args, step, started)
    model.eval()
    family.save(model.cpu(), os.path.join(args.out, 'checkpoint'), data, processing)
    with open(os.path.join(args.out, 'training.json'), 'w') as stream:
        json.dump({'family': args.family, 'steps': step, 'final_loss': final_loss,
                   'episodes': len(episodes), 'frames': data.size, 'tasks': tasks,
                   'seeds': [args.seed_start, args.seed_start + args.episodes_per_task - 1],
                   'seconds': time.time() - started, 'device': args.device,
                   'command': ' '.join(sys.argv)}, stream, indent=1)
    print(f'checkpoint written to {args.out}/checkpoint after {step} steps')
    return 0


class Pi05Training:
    """How a small pi0.5 is set up, fed and saved (a SentencePiece prompt tokenizer)."""

    @staticmethod
    def image_transform():
        from omegaq_ros.policy.pi05_runtime import Pi05Policy
        return Pi05Policy.image_transform(Pi05Config.small())

    @staticmethod
    def processing(out: str, init: str, episodes) -> str:
        """Return out/tokenizer.model: --init's, one kept from a resumed run, or trained anew."""
        tokenizer_path = os.path.join(out, 'tokenizer.model')
        if init:
            import shutil
            shutil.copyfile(os.path.join(init, 'tokenizer.model'), tokenizer_path)
        if not os.path.isfile(tokenizer_path):
            train_prompt_tokenizer(sorted({e.instruction for e in episodes}), tokenizer_path,
                                   vocab_size=256)
        return tokenizer_path

    @staticmethod
    def config(tokenizer_path: str, args) -> Pi05Config:
        vocab = PromptTokenizer(tokenizer_path, Pi05Config.small().tokenizer_max_length)
        return Pi05Config.small(vocab_size=vocab.vocab_size)

    @staticmethod
    def dataset(episodes, config, tokenizer_path, device) -> Pi05Demos:
        tokenizer = PromptTokenizer(tokenizer_path, config.tokenizer_max_length)
        return Pi05Demos(episodes, config, tokenizer, device)

    model_class = Pi05Model

    @staticmethod
    def initialize(model: Pi05Model, path: str):
        """Copy the weights of the checkpoint at path (the same configuration) into model."""
        from omegaq_ros.policy.checkpoint import load_lerobot_checkpoint
        initial, config, _, _ = load_lerobot_checkpoint(path)
        if config != model.config:
            raise ValueError(f'--init checkpoint config differs: {config} vs {model.config}')
        model.load_state_dict(initial.state_dict())

    @staticmethod
    def save(model, path: str, data: DemoDataset, tokenizer_path: str):
        save_lerobot_checkpoint(model, path, {'observation.state': data.state_norm,
                                              'action': data.action_norm},
                                tokenizer_path, store_dtype=torch.float16)


class GrootTraining:
    """How a small GR00T N1.5 is set up, fed and saved (Eagle processor files of its own)."""

    @staticmethod
    def image_transform():
        from omegaq_ros.policy.groot_config import GrootConfig
        from omegaq_ros.policy.groot_runtime import GrootPolicy
        return GrootPolicy.image_transform(GrootConfig.small())

    @staticmethod
    def processing(out: str, init: str, episodes):
        """Return the Eagle processor in out/eagle: --init's, a resumed run's, or new."""
        import shutil
        from omegaq_ros.policy.groot_config import GrootConfig
        from omegaq_ros.policy.groot_processing import EagleProcessor, write_eagle_processor
        folder = os.path.join(out, 'eagle')
        if init:
            shutil.copytree(os.path.join(init, 'eagle'), folder, dirs_exist_ok=True)
        if not os.path.isfile(os.path.join(folder, 'chat_template.json')):
            c = GrootConfig.small()
            write_eagle_processor(folder, c.image_token_index, c.tokens_per_image,
                                  c.vision.image_size, sorted({e.instruction for e in episodes}))
        return EagleProcessor(folder)

    @staticmethod
    def config(processor, args):
        from dataclasses import replace
        from omegaq_ros.policy.groot_config import GrootConfig
        if not args.dit_width:
            return GrootConfig.small()
        # Heads of 32 as the small default has; the action encoder and decoder follow the
        # DiT's width so every DiT linear is args.dit_width (or 4x that) wide.
        width = args.dit_width
        dit = replace(GrootConfig.small().dit, num_heads=width // 32, head_dim=32,
                      output_dim=width)
        return GrootConfig.small(dit=dit, hidden_size=width, input_embedding_dim=width)

    @staticmethod
    def dataset(episodes, config, processor, device) -> GrootDemos:
        return GrootDemos(episodes, config, processor, device)

    @staticmethod
    def model_class(config):
        from omegaq_ros.policy.groot_model import GrootModel
        return GrootModel(config)

    @staticmethod
    def initialize(model, path: str):
        """
        Copy the weights of the checkpoint at path into model.

        The loader keeps only the embodiment's slot of the per-embodiment tables; it goes back
        into the model's slot embodiment_id (the other slots keep their initial values).
        """
        from dataclasses import replace
        from omegaq_ros.policy.groot_checkpoint import EMBODIMENT_TABLE, load_groot_checkpoint
        initial, config, _, _ = load_groot_checkpoint(path, model.config.embodiment)
        expected = replace(model.config, max_num_embodiments=1, embodiment_id=0)
        if config != expected:
            raise ValueError(f'--init checkpoint config differs: {config} vs {expected}')
        state = model.state_dict()
        with torch.no_grad():
            for key, tensor in initial.state_dict().items():
                if EMBODIMENT_TABLE.match(key):
                    state[key][model.config.embodiment_id] = tensor[0]
                else:
                    state[key].copy_(tensor)

    @staticmethod
    def save(model, path: str, data: DemoDataset, processor):
        import shutil
        from omegaq_ros.policy.groot_checkpoint import EAGLE_DIR, save_groot_checkpoint
        statistics = {modality: {'joints': {k: v.tolist() for k, v in normalizer.stats.items()}}
                      for modality, normalizer in (('state', data.state_norm),
                                                   ('action', data.action_norm))}
        save_groot_checkpoint(model, path, statistics, shard_bytes=15 * 2 ** 20,
                              store_dtype=torch.float16)
        for name, file in processor.files.items():
            shutil.copyfile(file, os.path.join(path, EAGLE_DIR, name))


FAMILY_TRAINING = {'pi05': Pi05Training, 'groot': GrootTraining}


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--out', required=True)
    parser.add_argument('--family', default='pi05', choices=FAMILIES,
                        help='the architecture to train (at its small size)')
    parser.add_argument('--tasks', default=','.join(TASKS))
    parser.add_argument('--episodes-per-task', type=int, default=100)
    parser.add_argument('--seed-start', type=int, default=0)
    parser.add_argument('--bags', nargs='*', default=None, help='rosbag2 episodes instead')
    parser.add_argument('--steps', type=int, default=20000)
    parser.add_argument('--minutes', type=float, default=None, help='stop after this long')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--warmup', type=int, default=300, help='steps of linear warm-up')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--init', default=None,
                        help='start from this checkpoint (its tokenizer; fresh optimizer)')
    parser.add_argument('--dit-width', type=int, default=0,
                        help="groot: the DiT's width, a multiple of 64 (default: the small "
                             "size's 128)")
    args = parser.parse_args(argv)
    if args.dit_width and (args.family != 'groot' or args.dit_width % 64):
        parser.error('--dit-width takes a multiple of 64, with --family groot')
    return args


def load_demonstrations(args, tasks, transform, started: float) -> list:
    """Return the training episodes: rosbag2 files (--bags) or fresh expert rollouts."""
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


def initial_model(family, config, device: str, init: str):
    """Return a fresh model, or one with the weights of the --init checkpoint."""
    model = family.model_class(config).to(device)
    if init:
        family.initialize(model, init)
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
        *inputs, targets = data.batch(data.sample(args.batch, generator).to(args.device))
        noise = torch.randn(targets.shape, generator=generator).to(args.device)
        t = model.training_times(beta.sample((args.batch,))).to(args.device)
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(step, args.steps, args.lr, args.warmup)
        with autocast:
            loss = model.flow_matching_loss(*inputs, targets, noise,
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
