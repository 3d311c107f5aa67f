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
from omegaq_ros.policy.recipes import method_recipe
from omegaq_ros.policy.synthetic import random_inputs, random_model
from omegaq_ros.quant import quantize, QuantLinear
from omegaq_ros.quant.memory import quantized_bytes, scope_fp16_bytes
import torch

FULL_DEPTH = 18


def build(depth: int, seed: int = 0):
    """Full-width pi0.5 with `depth` layers in every stack, random weights, and one input."""
    full = Pi05Config.pi05()
    config = replace(full, vision=replace(full.vision, depth=depth),
                     language=replace(full.language, depth=depth),
                     expert=replace(full.expert, depth=depth))
    return random_model(config, seed), config, random_inputs(config, seed=seed)


def measure(depth: int, share: bool) -> dict:
    """Quantize a fresh model with the omega scope and return the byte counts."""
    model, config, batch = build(depth)
    recipe = method_recipe('omega')
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
    recipe = method_recipe('omega')
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
