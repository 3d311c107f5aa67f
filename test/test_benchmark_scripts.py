# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The GPU benchmark script runs end to end (its CPU rows, small config) and prints a table."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_whole_policy_benchmark_runs_on_the_small_config(tmp_path):
    out = tmp_path / 'bench.json'
    run = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'bench_pi05_gpu.py'),
                          '--config', 'small', '--repeats', '2', '--methods', 'omega-dynamic',
                          '--json', str(out), '--profile', str(tmp_path / 'profile')],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert '| BF16 eager |' in run.stdout and '| W4A4 omega-dynamic reference |' in run.stdout
    import json
    rows = json.loads(out.read_text())['rows']
    assert all('error' not in row and row['p50_ms'] > 0 for row in rows)
    quantized = [row for row in rows if row['method'].startswith('W4A4')]
    assert quantized and all(0 < row['scope_bytes'] < row['weights_bytes'] for row in quantized)
