# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Static weight memory of full-size pi0.5 under W4A4: quantized scope vs its FP16 size.

    python benchmarks/bench_weight_memory.py [--depth 1] [--json OUT.json]

Builds the full-width pi0.5 (Gemma-2B backbone, Gemma-300M expert, SigLIP So400m) with random
weights at `--depth` decoder layers (every layer of a stack has the same shapes, so one layer
measures them all; the table scales by 18), quantizes it with the real quantize() on random
calibration inputs (3 cameras, 10 denoising steps) and counts the bytes of every tensor the
quantized layers hold, as stored (what a GPU backend keeps resident). Weights are rounded with
MSE-RTN instead of GPTQ: the bytes are the same, GPTQ only changes the codes and takes hours
on a CPU at this size. Prints one row per storage choice, measured in the same run.
"""

import argparse
from dataclasses import replace
import json
import platform
import time

from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.runtime import pi05_recipe
from omegaq_ros.quant import quantize, QuantLinear
import torch
from torch import nn

FULL_DEPTH = 18
PARTS = {'weight_packed': 'int4 codes', 'weight_scale': 'weight scales',
         'rot_in': 'rotations', 'rot_in_scale': 'rotations', 'rot_out': 'rotations',
         'rot_out_scale': 'rotations', 'perm_in': 'permutations', 'act_scale': 'act tables',
         'smooth': 'act tables', 'bias': 'bias'}


def build(depth: int, seed: int = 0):
    """Full-width pi0.5 with `depth` layers in every stack, random weights, and inputs."""
    full = Pi05Config.pi05()
    config = replace(full, vision=replace(full.vision, depth=depth),
                     language=replace(full.language, depth=depth),
                     expert=replace(full.expert, depth=depth))
    torch.manual_seed(seed)
    model = Pi05Model(config).eval()
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and 'embed' not in name:
            nn.init.normal_(parameter, std=parameter.shape[1] ** -0.5)
    gen = torch.Generator().manual_seed(seed)
    size = config.vision.image_size
    batch = {
        'images': [torch.rand(1, 3, size, size, generator=gen) * 2 - 1 for _ in config.cameras],
        'image_masks': [torch.ones(1, dtype=torch.bool) for _ in config.cameras],
        'tokens': torch.randint(0, 1000, (1, 48), generator=gen),
        'token_masks': torch.ones(1, 48, dtype=torch.bool),
        'noise': torch.randn(1, config.horizon, config.max_action_dim, generator=gen),
    }
    return model, config, batch


def scope_fp16_bytes(model: nn.Module, recipe) -> int:
    """FP16 bytes of the linears the recipe quantizes (weight and bias)."""
    return sum(2 * sum(p.numel() for p in module.parameters())
               for name, module in model.named_modules()
               if type(module) is nn.Linear and recipe.selects(name))


def quantized_bytes(model: nn.Module) -> dict:
    """Bytes held by QuantLinear tensors, by part (each storage counted once)."""
    seen, parts = set(), {}
    for module in model.modules():
        if not isinstance(module, QuantLinear):
            continue
        for name, tensor in module.named_buffers(recurse=False):
            if tensor is None or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            part = PARTS[name]
            parts[part] = parts.get(part, 0) + tensor.numel() * tensor.element_size()
    return parts


def measure(depth: int, share: bool) -> dict:
    """Quantize a fresh model with the omega scope and return the byte counts."""
    model, config, batch = build(depth)
    recipe = pi05_recipe('omega')
    recipe = replace(recipe, weight_method='rtn', share_input_rotation=share)
    fp16 = scope_fp16_bytes(model, recipe)
    started = time.perf_counter()
    quantize(model, [batch], recipe)
    parts = quantized_bytes(model)
    return {'share_input_rotation': share, 'depth': depth, 'scope_fp16_bytes': fp16,
            'parts': parts, 'quantized_bytes': sum(parts.values()),
            'quantize_s': time.perf_counter() - started,
            'layers': sum(isinstance(m, QuantLinear) for m in model.modules())}


def full_size_rest_fp16() -> dict:
    """FP16 bytes of everything outside the quantized scope at full size (meta device)."""
    with torch.device('meta'):
        model = Pi05Model(Pi05Config.pi05())
    recipe = pi05_recipe('omega')
    total = 2 * sum(p.numel() for p in model.parameters())
    return {'total_fp16_bytes': total, 'scope_fp16_bytes': scope_fp16_bytes(model, recipe)}


def main():
    """Measure both storage choices and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--depth', type=int, default=1)
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    scale = FULL_DEPTH / args.depth
    full = full_size_rest_fp16()
    rows = [measure(args.depth, share) for share in (False, True)]
    gib = 1024 ** 3
    print(f'# {platform.node()} · torch {torch.__version__} · measured at depth {args.depth}, '
          f'scaled x{scale:g} to 18 layers per stack')
    parts = sorted({p for r in rows for p in r['parts']})
    print('| storage | ' + ' | '.join(parts) + ' | quantized scope | FP16 scope | ratio | '
          'whole model (rest FP16) |')
    print('|---|' + '---|' * (len(parts) + 4))
    for r in rows:
        fraction = {p: r['parts'].get(p, 0) / r['scope_fp16_bytes'] for p in parts}
        scope = r['quantized_bytes'] * scale
        rest = full['total_fp16_bytes'] - full['scope_fp16_bytes']
        label = ('one rotation per input (q/k/v, gate/up share)' if r['share_input_rotation']
                 else 'one rotation per linear')
        r.update({'scope_bytes_full': scope, 'ratio': r['quantized_bytes'] /
                  r['scope_fp16_bytes'], 'whole_model_bytes_full': scope + rest})
        print(f'| {label} | ' + ' | '.join(f'{fraction[p]:.4f}' for p in parts)
              + f' | {scope / gib:.3f} GiB | {full["scope_fp16_bytes"] / gib:.3f} GiB | '
              f'{r["ratio"]:.4f} | {(scope + rest) / gib:.2f} GiB of '
              f'{full["total_fp16_bytes"] / gib:.2f} GiB |')
    print('# part columns: bytes / FP16 bytes of the quantized scope; int4 codes alone are 0.25')
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump({'full': full, 'rows': rows}, stream, indent=1)


if __name__ == '__main__':
    main()
