# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Whole-policy latency and memory: BF16 vs W4A4 on one GPU, side by side in one run.

    python benchmarks/bench_pi05_gpu.py [--config pi05|small] [--repeats 50] [--json OUT]

Full-size pi0.5 (or the small config) with random weights, 3 cameras, 10 denoising steps,
batch 1. Rows: BF16 eager; BF16 + CUDA graph; BF16 + torch.compile of the whole prefix and
denoising loop + CUDA graph (--compile: what a user gets without this package); BF16 with
our fused pipeline (the norms, RoPE, residuals and GeGLU compiled per function, SDPA,
cuBLAS GEMMs, CUDA graph: isolates what 4-bit buys); then per kernel-compatible method
in --methods (omega-dynamic: per-token x 64-group scales, the default; omega-group: per-step
static 64-group tables; omega-dynamic+act_mode=dynamic_token: one scale per token): W4A4
Triton + CUDA graph with eager pointwise work, and W4A4 fast (the same fused pipeline with
the W4A4 kernels; q/k/v and gate/up one launch per set; prefix GEMM tiles autotuned), and
with --one-group the same with the 64-groups of a weight group rescaled one at a time, not in
pairs (set_paired_rescale), with --plain-launches the same without programmatic
dependent launches (the kernels' PDL, set_programmatic_launch), and with --unwidened-weights
the same with the prefix's two-level GEMMs unpacking their weights in registers instead of
widening them to int8 first (set_widened_weights(False); only methods with two-level weight
scales widen, omega-fast among them), and with --quantize-gathers the same with the prefix's
quantizes gathering their permuted input columns themselves (set_gathered_input(False)),
and with --integer-gemm the same with dynamic_group128 layers on the integer GEMM instead of
cuBLAS's block-scaled FP8 GEMM (set_fp8_gemm(False); their kept FP8 weights stay in memory).
--vision-as-before adds the BF16 fused row with the vision tower's q/k/v as three GEMMs and its
MLP's GELU as a launch of its own (the fused pipeline joins them, use_fused_pointwise).
--reference adds the W4A4 reference backend (fake-quant arithmetic in torch, eager). The
W4A4 models are quantized here on the GPU from two random calibration observations with
MSE-RTN weights (same bytes and kernels as GPTQ).
--profile DIR appends torch.profiler kernel tables of one prefix and one denoising loop of
the BF16-graph, BF16-fused and W4A4-fast rows to DIR/profile.txt (eager launches of the
kernels the graphs replay). Rows timed after the profiler ran in the process read high (the
W4A4 steps by 0.1-0.17 ms, RESULTS 7t): take the table from a run without it
(scripts/gpu_check.sh policy does).
Per row: p50 / p90 ms per chunk (CUDA events), the prefix and the per-step split, static
weight memory (whole model, and the quantized scope), peak memory during a chunk, and the
floors: weight bytes / measured copy bandwidth and FLOPs / measured bf16 matmul rate.
On a machine without CUDA it runs the eager rows on the CPU (a smoke test of the script).
"""

import argparse
import copy
from dataclasses import replace
import gc
import json
import platform
import statistics
import time

from omegaq_ros.kernels.triton_w4a4 import (resident_bytes, set_fp8_gemm, set_gathered_input,
                                            set_paired_rescale, set_programmatic_launch,
                                            set_widened_weights)
from omegaq_ros.policy.graphed import StaticChunkSampler
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.recipes import method_recipe
from omegaq_ros.policy.runtime import set_backend
from omegaq_ros.policy.synthetic import random_inputs, random_model
from omegaq_ros.quant import quantize, QuantLinear
from omegaq_ros.quant.memory import model_bytes, quantized_bytes, scope_fp16_bytes
import torch


class Timer:
    """Wall time per call: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    def __call__(self, fn) -> float:
        """Return the milliseconds one call of fn takes."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000.0


def percentile(values, q):
    """Nearest-rank percentile of a list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def measure_floors(device) -> dict:
    """Measured copy bandwidth (bytes/s) and bf16 matmul rate (FLOP/s) of this device."""
    if torch.device(device).type != 'cuda':
        return {'copy_bytes_per_s': float('nan'), 'matmul_flops_per_s': float('nan')}
    timer = Timer(device)
    src = torch.empty(1 << 28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    copy_ms = statistics.median(timer(lambda: dst.copy_(src)) for _ in range(10))
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    for _ in range(3):
        a @ a
    mm_ms = statistics.median(timer(lambda: a @ a) for _ in range(10))
    return {'copy_bytes_per_s': 2 * (1 << 30) / (copy_ms / 1000),
            'matmul_flops_per_s': 2 * 8192 ** 3 / (mm_ms / 1000)}


def chunk_flops(config: Pi05Config, prompt: int) -> float:
    """Multiply-add FLOPs of the linears of one chunk (attention scores excluded)."""
    v, lang, ex = config.vision, config.language, config.expert
    image = (v.image_size // v.patch_size) ** 2
    prefix = len(config.cameras) * image + prompt
    vision = len(config.cameras) * image * v.depth * (4 * v.width ** 2 + 2 * v.width * v.mlp_dim)

    def gemma(size, tokens):
        qkv = size.width * (size.num_heads + 2 * size.num_kv_heads) * size.head_dim
        o = size.num_heads * size.head_dim * size.width
        return tokens * size.depth * (qkv + o + 3 * size.width * size.mlp_dim)
    return 2.0 * (vision + gemma(lang, prefix) + config.num_steps * gemma(ex, config.horizon))


def run_row(label, model, inputs, device, repeats, graph, compiled=False, profile=None):
    """Time one configuration; returns the row dict (with 'setup_s': build + warm-up)."""
    timer = Timer(device)
    cuda = torch.device(device).type == 'cuda'
    row = {'method': label}
    if cuda:
        # Graph pools and temporaries of earlier rows would count towards this row's peak.
        gc.collect()
        torch.cuda.empty_cache()
    started = time.perf_counter()
    try:
        if compiled:
            # Inductor's default mode: its own Triton kernels for the pointwise work, cuBLAS
            # for the GEMMs (max-autotune of every GEMM shape did not finish in 10 minutes).
            model.prefix_context = torch.compile(model.prefix_context)
            model.denoise = torch.compile(model.denoise)
            # denoise_step compiles once per step index (each reads its step's modulations):
            # under the default limit of 8 recompilations the last of 10 steps ran eagerly.
            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(dynamo.recompile_limit, 2 * model.config.num_steps)
        sampler = StaticChunkSampler(model, inputs, capture=graph)
    except Exception as error:                   # report, keep the other rows
        row['error'] = f'{type(error).__name__}: {str(error)[:160]}'
        return row
    row['setup_s'] = time.perf_counter() - started
    if profile:
        row['kernels'] = profile_kernels(label, model, inputs, profile)
    for _ in range(3):
        sampler.run_prefix()
        sampler.run_denoise()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    chunk, prefix, steps = [], [], []
    for _ in range(repeats):
        prefix.append(timer(sampler.run_prefix))
        steps.append(timer(sampler.run_denoise))
        chunk.append(prefix[-1] + steps[-1])
    row.update({
        'p50_ms': statistics.median(chunk), 'p90_ms': percentile(chunk, 90),
        'prefix_ms': statistics.median(prefix),
        'step_ms': statistics.median(steps) / model.config.num_steps,
        # With the FP8 operands the few-row GEMMs keep (dynamic_group128 on sm_90).
        'weights_bytes': model_bytes(model) + resident_bytes(model),
        'resident_fp8_bytes': resident_bytes(model),
        'scope_bytes': sum(quantized_bytes(model).values()),
        'peak_bytes': torch.cuda.max_memory_allocated() if cuda else float('nan'),
    })
    # Each row as it is timed, so a run cut short by a time limit still reports it.
    print(f"# {label}: p50 {row['p50_ms']:.2f} ms, prefix {row['prefix_ms']:.2f} ms, "
          f"{row['step_ms']:.3f} ms per step, setup {row['setup_s']:.0f} s", flush=True)
    return row


def profile_kernels(label, model, inputs, out_dir) -> dict:
    """
    Write the torch.profiler kernel table of one prefix and one denoising step of `model`.

    Eager launches of the kernels the graphs replay (a CUDA graph shows as one launch), so
    counts and per-kernel times are those of the graph, launch gaps aside. Returns the kernel
    counts {'prefix': n, 'step': n}.
    """
    import os
    from torch.profiler import profile, ProfilerActivity
    sampler = StaticChunkSampler(model, inputs, capture=False)
    steps = model.config.num_steps
    cuda = torch.cuda.is_available()
    # On a machine without CUDA the same table lists CPU operators (a smoke test).
    activity, device_type = ((ProfilerActivity.CUDA, 'CUDA') if cuda else
                             (ProfilerActivity.CPU, 'CPU'))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    counts = {}
    tables = []
    for part, run in (('prefix', sampler.run_prefix), ('denoise', sampler.run_denoise)):
        run()
        sync()
        with profile(activities=[activity]) as prof:
            run()
            sync()
        kernels = [e for e in prof.events() if e.device_type.name == device_type]
        counts[part] = len(kernels)
        tables.append(f'## {label}: {part} ({len(kernels)} kernels'
                      + (f', {len(kernels) / steps:.0f} per step' if part == 'denoise' else '')
                      + f', {sum(e.device_time for e in kernels) / 1e3:.2f} ms of kernel time)\n'
                      + prof.key_averages().table(sort_by=f'{device_type.lower()}_time_total',
                                                  row_limit=25,
                                                  max_name_column_width=70))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'profile.txt'), 'a') as stream:
        stream.write('\n\n'.join(tables) + '\n\n')
    counts['step'] = counts.pop('denoise') / steps
    return counts


def separate_vision_gemms(model):
    """Undo the fused pipeline's vision GEMM changes: q/k/v apart, GELU after fc1 compiled."""
    from types import SimpleNamespace
    from omegaq_ros.policy import pointwise
    apart = torch.compile(pointwise.linear_gelu, fullgraph=True)
    for module in model.modules():
        if hasattr(module, 'join_projections'):
            module.join_projections(False)
        if hasattr(module, 'self_attn') and hasattr(module, 'layer_norm1'):
            module.ops = SimpleNamespace(**{**vars(module.ops), 'linear_gelu': apart})


def main():
    """Build, quantize, time every row, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--config', default='pi05', choices=('pi05', 'small'))
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--methods', default='omega-dynamic',
                        help='kernel-compatible presets, comma separated (omega-dynamic, '
                        'omega-group)')
    parser.add_argument('--one-group', action='store_true',
                        help='also W4A4 fast with 64-groups rescaled one at a time')
    parser.add_argument('--plain-launches', action='store_true',
                        help='add a W4A4 fast row without programmatic dependent launches '
                             '(set_programmatic_launch)')
    parser.add_argument('--unwidened-weights', action='store_true',
                        help='add a W4A4 fast row whose two-level prefix GEMMs unpack their '
                             'weights in registers (set_widened_weights(False))')
    parser.add_argument('--quantize-gathers', action='store_true',
                        help='add a W4A4 fast row whose many-row quantizes gather their '
                             'permuted columns themselves (set_gathered_input(False))')
    parser.add_argument('--integer-gemm', action='store_true',
                        help='add a W4A4 fast row whose dynamic_group128 layers take the '
                             'integer GEMM, not FP8 (set_fp8_gemm(False))')
    parser.add_argument('--vision-as-before', action='store_true',
                        help='add the BF16 fused row with the vision q/k/v as three GEMMs and '
                             'its GELU as a launch of its own')
    parser.add_argument('--compile', action='store_true',
                        help='add a BF16 + torch.compile row (compiling takes minutes)')
    parser.add_argument('--reference', action='store_true',
                        help='add the W4A4 reference-backend row (eager torch arithmetic)')
    parser.add_argument('--profile', default=None, metavar='DIR',
                        help='write kernel tables of the BF16 graph and fast rows here')
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = device == 'cuda'
    config = Pi05Config.pi05() if args.config == 'pi05' else Pi05Config.small()
    prompt = min(48, config.tokenizer_max_length)
    fp = random_model(config)
    scope = method_recipe('omega')
    fp16_scope = scope_fp16_bytes(fp, scope)
    names = ('images', 'image_masks', 'tokens', 'token_masks', 'noise')
    inputs = [random_inputs(config, device, seed=1, prompt=prompt)[n] for n in names]
    floors = measure_floors(device)
    rows = []

    bf16 = copy.deepcopy(fp).to(device).set_compute_dtype(torch.bfloat16)
    rows.append(run_row('BF16 eager', bf16, inputs, device, args.repeats, graph=False))
    if cuda:
        rows.append(run_row('BF16 + CUDA graph', bf16, inputs, device, args.repeats, graph=True,
                            profile=args.profile))
        if args.compile:
            compiled = copy.deepcopy(fp).to(device).set_compute_dtype(torch.bfloat16)
            rows.append(run_row('BF16 + torch.compile + CUDA graph', compiled, inputs, device,
                                args.repeats, graph=True, compiled=True))
            del compiled
        bf16.use_fused_pointwise(True)
        rows.append(run_row('BF16, fused pipeline + CUDA graph', bf16, inputs, device,
                            args.repeats, graph=True, profile=args.profile))
        if args.vision_as_before:
            separate_vision_gemms(bf16)
            rows.append(run_row('BF16, fused pipeline, vision q/k/v and GELU apart', bf16,
                                inputs, device, args.repeats, graph=True))
            bf16.use_fused_pointwise(True)
    bf16_weights = model_bytes(bf16)
    del bf16

    calibration = [random_inputs(config, device, seed=s, prompt=prompt) for s in (2, 3)]
    for method in [m for m in args.methods.split(',') if m]:
        recipe = replace(method_recipe(method), weight_method='rtn')
        started = time.perf_counter()
        quantized = quantize(copy.deepcopy(fp).to(device), calibration, recipe)
        quantized.set_compute_dtype(torch.bfloat16)
        quantize_s = time.perf_counter() - started
        print(f'# quantized {method} on {device} in {quantize_s:.0f} s', flush=True)
        if args.reference or not cuda:
            rows.append(run_row(f'W4A4 {method} reference', quantized, inputs, device,
                                max(3, args.repeats // 10), graph=False))
            for layer in quantized.modules():     # the reference backend's fp32 copies
                if isinstance(layer, QuantLinear):
                    layer.clear_caches()
        if cuda:
            set_backend(quantized, 'triton')
            rows.append(run_row(f'W4A4 {method} triton + CUDA graph', quantized, inputs,
                                device, args.repeats, graph=True))
            quantized.use_fused_pointwise(True)
            rows.append(run_row(f'W4A4 {method} fast (fused pipeline + CUDA graph)',
                                quantized, inputs, device, args.repeats, graph=True,
                                profile=args.profile))
            if args.plain_launches:
                set_programmatic_launch(False)
                rows.append(run_row(f'W4A4 {method} fast, plain launches (no PDL)', quantized,
                                    inputs, device, args.repeats, graph=True))
                set_programmatic_launch(True)
            if args.one_group:
                set_paired_rescale(False)
                rows.append(run_row(f'W4A4 {method} fast, 64-groups rescaled one at a time',
                                    quantized, inputs, device, args.repeats, graph=True))
                set_paired_rescale(True)
            if args.quantize_gathers:
                set_gathered_input(False)
                rows.append(run_row(f'W4A4 {method} fast, quantizes gather their columns',
                                    quantized, inputs, device, args.repeats, graph=True))
                set_gathered_input(True)
            if args.unwidened_weights:
                set_widened_weights(False)
                rows.append(run_row(f'W4A4 {method} fast, prefix weights unpacked in registers',
                                    quantized, inputs, device, args.repeats, graph=True))
                set_widened_weights(True)
            if args.integer_gemm:
                set_fp8_gemm(False)
                rows.append(run_row(f'W4A4 {method} fast, dynamic_group128 on the integer GEMM',
                                    quantized, inputs, device, args.repeats, graph=True))
                set_fp8_gemm(True)
        rows[-1]['quantize_s'] = quantize_s
        del quantized

    flops = chunk_flops(config, prompt)
    floor_bf16 = bf16_weights / floors['copy_bytes_per_s'] * 1000
    floor_flops = flops / floors['matmul_flops_per_s'] * 1000
    gpu = torch.cuda.get_device_name() if cuda else platform.processor() or 'cpu'
    print(f'# {gpu} · torch {torch.__version__} · config {args.config} · prompt {prompt} '
          f'tokens · {config.num_steps} steps · horizon {config.horizon} · batch 1')
    if cuda:
        import triton
        print(f'# triton {triton.__version__} · CUDA {torch.version.cuda} · copy '
              f'{floors["copy_bytes_per_s"] / 1e12:.2f} TB/s · bf16 matmul '
              f'{floors["matmul_flops_per_s"] / 1e12:.0f} TFLOP/s · floors per chunk: '
              f'BF16 weights {floor_bf16:.2f} ms, FLOPs {floor_flops:.2f} ms')
    graphed = next((r for r in rows if r['method'] == 'BF16 + CUDA graph' and 'p50_ms' in r),
                   None)
    fused = next((r for r in rows
                  if r['method'].startswith('BF16, fused') and 'p50_ms' in r), None)
    print('| method | p50 ms | p90 ms | prefix ms | per step ms | vs BF16 graph | '
          'vs BF16 fused | weights GiB | scope / FP16 scope | peak GiB | kernels prefix / step '
          '| setup s |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    gib = 1024 ** 3
    for r in rows:
        if 'error' in r:
            print(f"| {r['method']} | failed: {r['error']} |||||||||")
            continue
        kernels = r.get('kernels')
        print(f"| {r['method']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['prefix_ms']:.2f} | {r['step_ms']:.3f} | "
              + (f"{r['p50_ms'] / graphed['p50_ms']:.2f}x" if graphed else '-') + ' | '
              + (f"{r['p50_ms'] / fused['p50_ms']:.2f}x" if fused else '-')
              + f" | {r['weights_bytes'] / gib:.2f} | "
              + (f"{r['scope_bytes'] / fp16_scope:.3f}" if r['scope_bytes'] else '1 (BF16)')
              + f" | {r['peak_bytes'] / gib:.2f} | "
              + (f"{kernels['prefix']} / {kernels['step']:.0f}" if kernels else '-')
              + f" | {r['setup_s']:.0f} |")
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump({'device': gpu, 'torch': torch.__version__, 'floors': floors,
                       'chunk_flops': flops, 'fp16_scope_bytes': fp16_scope, 'rows': rows},
                      stream, indent=1)


if __name__ == '__main__':
    main()
