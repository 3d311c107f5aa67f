# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Human-readable quantization report: report.json plus PNG plots, per layer.

For each quantized linear: weight column-norm max/min ratio and activation channel-norm
max/min ratio before and after the input rotation (the paper's equalization claim), and the
layer's output SQNR and cosine against FP on calibration inputs.
"""

import json
import math
import os


def write_report(summary: dict, out_dir: str, title: str) -> dict:
    """Write report.json, ratios.png and error.png to out_dir; returns the JSON dict."""
    os.makedirs(out_dir, exist_ok=True)
    layers = summary.get('layers', {})
    names = list(layers)
    report = {
        'title': title,
        'recipe': summary.get('recipe', {}),
        'calibration': summary.get('calibration', {}),
        'skipped': summary.get('skipped', {}),
        'layers': layers,
        'totals': totals(layers),
    }
    with open(os.path.join(out_dir, 'report.json'), 'w') as stream:
        json.dump(report, stream, indent=1, sort_keys=True)
    if names:
        _plot(layers, names, out_dir, title)
    return report


def totals(layers: dict) -> dict:
    """Means and maxima over layers of the per-layer statistics."""
    if not layers:
        return {}

    def column(key, sub='max_min'):
        return [v[key][sub] for v in layers.values()]

    def mean(values):
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    return {
        'act_ratio_before_mean': mean(column('act_chnorm_ratio_before')),
        'act_ratio_before_max': max(column('act_chnorm_ratio_before')),
        'act_ratio_after_mean': mean(column('act_chnorm_ratio_after')),
        'act_ratio_after_max': max(column('act_chnorm_ratio_after')),
        'weight_ratio_before_mean': mean(column('weight_colnorm_ratio_before')),
        'weight_ratio_after_mean': mean(column('weight_colnorm_ratio_after')),
        'output_sqnr_db_mean': mean([v['output_sqnr_db'] for v in layers.values()]),
        'output_cosine_mean': mean([v['output_cosine'] for v in layers.values()]),
    }


def _plot(layers, names, out_dir, title):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    x = range(len(names))
    short = [n.replace('encoder.layer.', 'L').replace('attention.', 'att.') for n in names]
    figure, axes = pyplot.subplots(2, 1, figsize=(max(8, len(names) * 0.35), 8), sharex=True)
    for axis, key, label in ((axes[0], 'act_chnorm_ratio', 'activation channel-norm max/min'),
                             (axes[1], 'weight_colnorm_ratio', 'weight column-norm max/min')):
        axis.semilogy(x, [layers[n][key + '_before']['max_min'] for n in names], 'o-',
                      label='before rotation')
        axis.semilogy(x, [layers[n][key + '_after']['max_min'] for n in names], 's-',
                      label='after rotation')
        axis.set_ylabel(label)
        axis.grid(True, which='both', alpha=0.3)
        axis.legend()
    axes[1].set_xticks(list(x))
    axes[1].set_xticklabels(short, rotation=90, fontsize=7)
    axes[0].set_title(title)
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, 'ratios.png'), dpi=110)
    pyplot.close(figure)

    figure, axis = pyplot.subplots(figsize=(max(8, len(names) * 0.35), 4))
    axis.bar(list(x), [min(layers[n]['output_sqnr_db'], 80.0) for n in names])
    axis.set_ylabel('output SQNR vs FP [dB]')
    axis.set_xticks(list(x))
    axis.set_xticklabels(short, rotation=90, fontsize=7)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, 'error.png'), dpi=110)
    pyplot.close(figure)
