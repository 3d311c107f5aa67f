# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The GR00T benchmark script runs end to end on the small config (CPU rows) and prints a table."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_groot_benchmark_runs_on_the_small_config(tmp_path):
    out = tmp_path / 'bench.json'
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'bench_groot.py'),
                          '--config', 'small', '--repeats', '2', '--json', str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert '| FP32 eager |' in run.stdout and '| W4A4 omega-dynamic reference |' in run.stdout
    data = json.loads(out.read_text())
    fp, w4a4 = data['rows']
    assert fp['p50_ms'] > 0 and w4a4['p50_ms'] > 0 and fp['scope_bytes'] == 0
    assert 0 < w4a4['scope_bytes'] < 0.5 * data['fp16_scope_bytes']
    assert w4a4['quantized_layers'] == 2 * 7 + 2 * 6 + 4 * 6
    assert 0 < w4a4['action_error'] < 0.5
    scopes = {row['scope']: row for row in w4a4['full_size_scope']}
    paper = scopes['paper scope (Qwen3 layers + DiT blocks)']
    assert paper['fp16_bytes'] == scopes['qwen3_layers']['fp16_bytes'] + \
        scopes['dit_blocks']['fp16_bytes']
    assert all(0.2 < row['ratio'] < 0.6 for row in scopes.values())
