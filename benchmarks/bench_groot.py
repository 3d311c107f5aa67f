# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 latency and memory: FP vs W4A4, random weights, one device.

    python benchmarks/bench_groot.py [--config n1_5|small] [--depth D] [--repeats 10] [--json OUT]

Full-size GR00T N1.5 (or the small config) with random weights (normal, std 0.02; norm scales
1), 3 cameras at 224 px, a 32-token instruction, 4 denoising steps, batch 1. Rows: the towers
in BF16 on a GPU (FP32 on the CPU), eager; then per method in --methods the model quantized
with the GR00T scope (groot_recipe.yaml) from two random observations with MSE-RTN weights
(same bytes and kernels as GPTQ), on the Triton backend on a GPU (the reference backend on
the CPU). On a GPU the BF16 towers also run replayed as CUDA graphs (policy.graphed, the
prefix and the 4 steps), and so do the W4A4 rows; then both again with the norms, RoPE,
gated MLPs and residuals compiled (use_fused_pointwise): the fast path a GPU user gets.
Per row: p50 / p90 ms per chunk and the VL-prefix / per-step split, static weight memory of
the whole model and of the quantized scope (against its FP16 size: the paper quotes 1.99 GB ->
0.586 GB for its scope), and the parameter counts of models.md 1.3.

--depth D keeps D layers in every stack (D Qwen3 layers, D VL self-attention layers, D
cross-/self-attention block pairs of the DiT, D SigLIP layers): the layers of a stack share
their shapes, so each stack's quantized/FP16 byte ratio at depth D is its ratio at full depth,
and the scope table scales it to the full-size stacks (the latency rows stay those of the
reduced model). The table splits the scope by stack: the paper's scope is the Qwen3 layers and
the DiT blocks (their AdaLayerNorm projections stay FP), 1.99 GiB in FP16; ours adds the VL
self-attention.
"""

import argparse
import copy
from dataclasses import replace
import json
import platform
import statistics
import time

import numpy as np
from omegaq_ros.policy.graphed import StaticChunkSampler
from omegaq_ros.policy.groot_config import GrootConfig
from omegaq_ros.policy.groot_model import GrootModel
from omegaq_ros.policy.recipes import load_recipe
from omegaq_ros.policy.runtime import set_backend
from omegaq_ros.quant import quantize, QuantLinear
from omegaq_ros.quant.memory import model_bytes, quantized_bytes, scope_fp16_bytes
import torch


def random_model(config: GrootConfig, seed: int = 0) -> GrootModel:
    """Return GR00T with random weights: linears and tables N(0, 0.02), norm scales 1."""
    torch.manual_seed(seed)
    model = GrootModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.normal_(0.0, 0.02)
            elif name.endswith('weight'):
                param.fill_(1.0)
            else:
                param.zero_()
    return model.eval()


def random_call(config: GrootConfig, device: str, seed: int, text: int = 32) -> dict:
    """One model call: images, a prompt of `text` tokens around the image tokens, state, noise."""
    generator = torch.Generator().manual_seed(seed)
    size = config.vision.image_size
    images = torch.rand(len(config.cameras), 3, size, size, generator=generator) * 2 - 1
    words = torch.randint(0, min(config.language.vocab_size, config.image_token_index),
                          (text,), generator=generator)
    image_tokens = torch.full((len(config.cameras) * config.tokens_per_image,),
                              config.image_token_index)
    ids = torch.cat((words[:8], image_tokens, words[8:]))[None]
    state = torch.zeros(1, 1, config.max_state_dim)
    state[0, 0, :config.state_dim] = torch.rand(config.state_dim, generator=generator) * 2 - 1
    noise = torch.randn(1, config.horizon, config.max_action_dim, generator=generator)
    return {'pixel_values': images.to(device), 'input_ids': ids.to(device),
            'token_masks': torch.ones_like(ids, dtype=torch.bool).to(device),
            'state': state.to(device), 'noise': noise.to(device)}


# The quantized stacks, by module-name prefix; the paper's scope is the first two.
STACKS = {'qwen3_layers': 'backbone.eagle_model.language_model.',
          'dit_blocks': 'action_head.model.transformer_blocks.',
          'vl_self_attention': 'action_head.vl_self_attention.'}
PAPER_STACKS = ('qwen3_layers', 'dit_blocks')


def stack_of(name: str) -> str:
    """Return the stack a module name lies in ('' for none)."""
    return next((stack for stack, prefix in STACKS.items() if name.startswith(prefix)), '')


def stack_fp16_bytes(model: GrootModel, recipe) -> dict:
    """FP16 bytes of the linears the recipe quantizes, by stack."""
    sizes = dict.fromkeys(STACKS, 0)
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear and recipe.selects(name) and stack_of(name):
            sizes[stack_of(name)] += 2 * sum(p.numel() for p in module.parameters())
    return sizes


def stack_quantized_bytes(model: GrootModel) -> dict:
    """Bytes the QuantLinear layers hold, by stack."""
    sizes = dict.fromkeys(STACKS, 0)
    for name, module in model.named_modules():
        if isinstance(module, QuantLinear) and stack_of(name):
            sizes[stack_of(name)] += sum(quantized_bytes(module).values())
    return sizes


def scope_table(measured_fp16: dict, measured_quantized: dict, full_fp16: dict) -> list:
    """Full-size scope rows: each stack's measured ratio applied to its full-size FP16 bytes."""
    rows = []
    for stack in STACKS:
        ratio = measured_quantized[stack] / measured_fp16[stack]
        rows.append({'scope': stack, 'fp16_bytes': full_fp16[stack], 'ratio': ratio,
                     'w4a4_bytes': ratio * full_fp16[stack]})
    for label, stacks in (('paper scope (Qwen3 layers + DiT blocks)', PAPER_STACKS),
                          ('our scope (+ VL self-attention)', tuple(STACKS))):
        fp16 = sum(r['fp16_bytes'] for r in rows if r['scope'] in stacks)
        w4a4 = sum(r['w4a4_bytes'] for r in rows if r['scope'] in stacks)
        rows.append({'scope': label, 'fp16_bytes': fp16, 'ratio': w4a4 / fp16,
                     'w4a4_bytes': w4a4})
    return rows


def timed(fn, cuda: bool) -> float:
    """Return the milliseconds one call of fn takes (CUDA events on a GPU)."""
    if cuda:
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def run_row(label: str, model: GrootModel, call: dict, repeats: int, cuda: bool,
            graph: bool = False) -> dict:
    """Time the VL prefix and the K steps of one configuration (graph: replayed); the row."""
    sampler = StaticChunkSampler(model, tuple(call.values()), capture=graph)
    with torch.no_grad():
        sampler.run_prefix()
        sampler.run_denoise()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = [(timed(sampler.run_prefix, cuda), timed(sampler.run_denoise, cuda))
                 for _ in range(repeats)]
    chunk = sorted(p + s for p, s in times)
    return {'method': label, 'p50_ms': statistics.median(chunk),
            'p90_ms': chunk[min(len(chunk) - 1, int(round(0.9 * (len(chunk) - 1))))],
            'prefix_ms': statistics.median(p for p, _ in times),
            'step_ms': statistics.median(s for _, s in times) / model.config.num_steps,
            'weights_bytes': model_bytes(model),
            'scope_bytes': sum(quantized_bytes(model).values()),
            'peak_bytes': torch.cuda.max_memory_allocated() if cuda else float('nan')}


def main():
    """Build, quantize, time every row, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--config', default='n1_5', choices=('n1_5', 'small'))
    parser.add_argument('--depth', type=int, default=None,
                        help='layers per stack (DiT: block pairs); the scope table scales up')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--methods', default='omega-dynamic',
                        help='presets, comma separated (omega-dynamic, omega-group, ...)')
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = 'cuda' if cuda else 'cpu'
    config = GrootConfig.n1_5() if args.config == 'n1_5' else GrootConfig.small()
    config = replace(config, max_num_embodiments=1, embodiment_id=0)   # as the loader keeps it
    with torch.device('meta'):
        full_fp16 = stack_fp16_bytes(GrootModel(config), load_recipe('omega', 'groot'))
    if args.depth:
        d = args.depth
        config = replace(config, vision=replace(config.vision, depth=d),
                         language=replace(config.language, depth=d),
                         vl_self_attention=replace(config.vl_self_attention, depth=d),
                         dit=replace(config.dit, depth=2 * d))
    started = time.perf_counter()
    fp = random_model(config)
    counts = fp.parameter_counts()
    fp16_scope = scope_fp16_bytes(fp, load_recipe('omega', 'groot'))
    measured_fp16 = stack_fp16_bytes(fp, load_recipe('omega', 'groot'))
    call = random_call(config, device, seed=1)
    print(f'# built {args.config} ({counts["total"] / 1e9:.3f} B parameters with one embodiment '
          f'slot) in {time.perf_counter() - started:.0f} s', flush=True)
    rows = []
    dtype = torch.bfloat16 if cuda else torch.float32
    base = copy.deepcopy(fp).to(device).set_compute_dtype(dtype) if cuda else fp
    rows.append(run_row(f"{'BF16' if cuda else 'FP32'} eager", base, call, args.repeats, cuda))
    if cuda:
        rows.append(run_row('BF16 + CUDA graph', base, call, args.repeats, cuda, graph=True))
    with torch.no_grad():
        reference = base(**call)
    if cuda:
        base.use_fused_pointwise(True)
        rows.append(run_row('BF16, fused pipeline + CUDA graph', base, call, args.repeats, cuda,
                            graph=True))
    del base
    calibration = [random_call(config, device, seed=s) for s in (2, 3)]
    methods = [m for m in args.methods.split(',') if m]
    for index, method in enumerate(methods):
        recipe = replace(load_recipe(method, 'groot'), weight_method='rtn')
        started = time.perf_counter()
        # The last method quantizes the FP model itself: at full size one copy is 8 GB.
        source = fp if index == len(methods) - 1 else copy.deepcopy(fp)
        quantized = quantize(source.to(device), calibration, recipe)
        quantized.set_compute_dtype(dtype)
        quantize_s = time.perf_counter() - started
        # Printed before any timing: at full size on a CPU the reference backend's timed chunks
        # can outlast a session (or its memory), and the static bytes are known already.
        scope_bytes = sum(quantized_bytes(quantized).values())
        print(f'# quantized {method} on {device} in {quantize_s:.0f} s: scope '
              f'{scope_bytes / 1e9:.3f} GB (FP16 {fp16_scope / 1e9:.3f} GB, '
              f'{scope_bytes / fp16_scope:.4f}x)', flush=True)
        scopes = scope_table(measured_fp16, stack_quantized_bytes(quantized), full_fp16)
        print(f'# {method}: static memory of the full-size quantized scope, by stack')
        print('| scope | FP16 GiB | W4A4 GiB | ratio |\n|---|---|---|---|')
        for s in scopes:
            print(f"| {s['scope']} | {s['fp16_bytes'] / 2 ** 30:.3f} | "
                  f"{s['w4a4_bytes'] / 2 ** 30:.3f} | {s['ratio']:.4f} |", flush=True)
        backend = 'triton' if cuda else 'reference'
        set_backend(quantized, backend)
        row = run_row(f'W4A4 {method} {backend}' + (' + CUDA graph' if cuda else ''),
                      quantized, call, args.repeats, cuda, graph=cuda)
        row['quantize_s'] = quantize_s
        row['full_size_scope'] = scopes
        row['quantized_layers'] = sum(isinstance(m, QuantLinear) for m in quantized.modules())
        with torch.no_grad():
            got = quantized(**call)
        row['action_error'] = float((got - reference).abs().mean() / reference.abs().mean())
        rows.append(row)
        if cuda:
            quantized.use_fused_pointwise(True)
            rows.append(run_row(f'W4A4 {method} fast (fused pipeline + CUDA graph)', quantized,
                                call, args.repeats, cuda, graph=True))
        del quantized
    name = torch.cuda.get_device_name() if cuda else platform.processor() or 'cpu'
    print(f'# {name} · torch {torch.__version__} · config {args.config} · '
          f'{call["input_ids"].shape[1]} prompt tokens · {config.num_steps} steps · batch 1')
    print('# parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()))
    print('| method | p50 ms | p90 ms | VL prefix ms | per step ms | weights GiB | '
          'scope GB (FP16 scope GB) | mean action error vs FP |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        scope = r['scope_bytes'] / 1e9 if r['scope_bytes'] else fp16_scope / 1e9
        print(f"| {r['method']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['prefix_ms']:.1f} | "
              f"{r['step_ms']:.2f} | {r['weights_bytes'] / 1024 ** 3:.2f} | {scope:.3f} "
              f'({fp16_scope / 1e9:.3f}) | '
              + (f"{r['action_error']:.3f}" if 'action_error' in r else '-') + ' |')
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump({'device': name, 'torch': torch.__version__, 'config': args.config,
                       'depth': args.depth, 'parameters': counts, 'fp16_scope_bytes': fp16_scope,
                       'rows': rows}, stream, indent=1,
                      default=lambda v: None if isinstance(v, float) and np.isnan(v) else v)


if __name__ == '__main__':
    main()
