# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The method table on real MiniLM weights: every preset at W4A4 against FP.

    omegaq-minilm-table [--methods fp,rtn,...] [--out reports/minilm]

Per preset: final-embedding cosine vs FP on held-out sentences (mean and worst), activation
and weight channel-norm max/min ratios the quantizer saw after its rotation (the FP row
shows the unrotated values), mean layer output SQNR, and the artifact's size against the
FP16 size of the same layers. Writes table.md, table.json and a report per preset.
"""

import argparse
import copy
from datetime import datetime, timezone
import json
import os
import platform
import sys
import tempfile
import time

from omegaq_ros.minilm import model as minilm
from omegaq_ros.quant import PRESETS, quantize, Recipe, save_artifact
from omegaq_ros.quant.linear import QuantLinear
from omegaq_ros.quant.report import totals, write_report
import torch

DEFAULT_METHODS = ','.join(PRESETS)


def fp16_bytes(model, names) -> int:
    """Bytes the named linears (weight + bias) take in FP16."""
    total = 0
    for name in names:
        module = model.get_submodule(name)
        total += 2 * module.in_features * module.out_features
        total += 2 * module.out_features if module.bias is not None else 0
    return total


def quantized_bytes(model) -> int:
    """Bytes of every tensor the QuantLinears hold (packed weights, scales, rotations, tables)."""
    total = 0
    for module in model.modules():
        if isinstance(module, QuantLinear):
            total += sum(b.numel() * b.element_size() for b in module.buffers())
    return total


def run(methods, out_dir, progress=print):
    """Quantize with each method, evaluate, write reports; returns the rows."""
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    fp_model = minilm.load_minilm()
    tokenizer = minilm.load_tokenizer()
    calibration = minilm.calibration_batches(tokenizer)
    _, held_out = minilm.sentences()
    held_batch = minilm.encode(tokenizer, held_out)
    with torch.no_grad():
        reference = fp_model(**held_batch)
    scope = [n for n, m in fp_model.named_modules() if isinstance(m, torch.nn.Linear)]
    scope_fp16 = fp16_bytes(fp_model, scope)
    rows = []
    for method in methods:
        recipe = Recipe.preset(method)
        started = time.perf_counter()
        model = quantize(copy.deepcopy(fp_model), calibration, recipe)
        seconds = time.perf_counter() - started
        with torch.no_grad():
            embeddings = model(**held_batch)
        cosine = torch.nn.functional.cosine_similarity(embeddings, reference, dim=-1)
        summary = model.omegaq_summary
        if method == 'fp':
            stats = _fp_ratios(fp_model, calibration)
        else:
            stats = totals(summary['layers'])
            write_report(summary, os.path.join(out_dir, method), f'MiniLM-L6 · {method}')
        with tempfile.TemporaryDirectory() as tmp:
            artifact = save_artifact(model, recipe, os.path.join(tmp, 'artifact'))
            artifact_bytes = sum(os.path.getsize(os.path.join(artifact, f))
                                 for f in os.listdir(artifact))
        scope_bytes = quantized_bytes(model) if method != 'fp' else scope_fp16
        row = {
            'method': method,
            'cosine_mean': float(cosine.mean()),
            'cosine_min': float(cosine.min()),
            'act_ratio_mean': stats['act_ratio_after_mean'],
            'act_ratio_max': stats['act_ratio_after_max'],
            'weight_ratio_mean': stats['weight_ratio_after_mean'],
            'sqnr_db_mean': stats.get('output_sqnr_db_mean', float('inf')),
            'scope_size_vs_fp16': scope_bytes / scope_fp16,
            'artifact_mb': artifact_bytes / 1e6,
            'seconds': seconds,
        }
        rows.append(row)
        progress(f"{method:>14}: cosine {row['cosine_mean']:.4f} (min {row['cosine_min']:.4f}), "
                 f'{seconds:.1f} s')
    return rows


def _fp_ratios(fp_model, calibration):
    """Unrotated channel-norm ratios of the FP model (the 'before' column)."""
    probe = quantize(copy.deepcopy(fp_model), calibration,
                     Recipe.preset('rtn', act_mode='none'))
    stats = totals(probe.omegaq_summary['layers'])
    return {'act_ratio_after_mean': stats['act_ratio_before_mean'],
            'act_ratio_after_max': stats['act_ratio_before_max'],
            'weight_ratio_after_mean': stats['weight_ratio_before_mean']}


def markdown(rows, command) -> str:
    """Render the table with its provenance lines."""
    lines = [
        f"Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · machine: "
        f'{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()} · torch '
        f'{torch.__version__} · command: `{command}`',
        '',
        '| method | emb. cosine mean | emb. cosine min | act ratio mean | act ratio max | '
        'weight ratio mean | layer SQNR dB | quantized scope vs FP16 | artifact MB |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['cosine_mean']:.4f} | {r['cosine_min']:.4f} | "
            f"{r['act_ratio_mean']:.1f} | {r['act_ratio_max']:.1f} | "
            f"{r['weight_ratio_mean']:.1f} | {r['sqnr_db_mean']:.1f} | "
            f"{r['scope_size_vs_fp16']:.3f} | {r['artifact_mb']:.1f} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', default=DEFAULT_METHODS,
                        help=f'comma-separated presets (default: {DEFAULT_METHODS})')
    parser.add_argument('--out', default='reports/minilm', help='output directory')
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in methods if m not in PRESETS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(PRESETS)}")
    os.makedirs(args.out, exist_ok=True)
    rows = run(methods, args.out)
    command = 'omegaq-minilm-table ' + ' '.join(argv if argv is not None else sys.argv[1:])
    table = markdown(rows, command.strip())
    with open(os.path.join(args.out, 'table.md'), 'w') as stream:
        stream.write(table)
    with open(os.path.join(args.out, 'table.json'), 'w') as stream:
        json.dump(rows, stream, indent=1)
    print()
    print(table)
    print(f'reports in {os.path.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
