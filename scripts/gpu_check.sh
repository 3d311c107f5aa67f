#!/usr/bin/env bash
# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# The GPU checks of the W4A4 backend, in stages that each fit one lent-device call:
#   scripts/gpu_check.sh tests  OUT   CUDA kernel suite (every pi0.5 shape, fused q/k/v and
#                                     gate/up, CUDA-graph capture, bundled-policy chunks,
#                                     GR00T on the Triton backend and in CUDA graphs); on an
#                                     H100 about 290 s for test_kernels_triton.py and 150 s
#                                     for the rest, so give it a call of its own (TESTS=
#                                     picks files when a limit cut a run, TESTS_K= a pytest
#                                     -k expression)
#   scripts/gpu_check.sh gemm   OUT   per-GEMM table: W4A4 kernels vs bf16 at pi0.5 shapes
#                                     (dynamic_group; the prefix at 816 rows; tuned tiles;
#                                     GEMM_ARGS=--one-group: without paired rescales)
#   scripts/gpu_check.sh launch OUT   the few-row launches taken apart (bench_w4a4_launch.py:
#                                     launch floor, quantize without each transform, K splits,
#                                     tiles, paired rescales, quantize + GEMM with and without
#                                     programmatic launches, attention over the prefix cache,
#                                     the prefix's permuted-input gather per tile; about 120 s)
#   scripts/gpu_check.sh ncu    OUT   Nsight Compute sections of the prefix's down and gate/up
#                                     quantize and GEMM launches (benchmarks/ncu_w4a4_gemm.py;
#                                     about 30 s)
#   scripts/gpu_check.sh policy OUT   whole-policy table: BF16 eager / graph / fused vs W4A4
#                                     graph / fast (BENCH_ARGS='--plain-launches --one-group':
#                                     rows with other options), then kernel tables in
#                                     OUT/profile from a second process (PROFILE=0: none)
#   scripts/gpu_check.sh closedloop OUT [EPISODES]
#                                     the bundled policy in the sim, omega-dynamic on the
#                                     reference and the Triton backend, paired episodes
#                                     (CLOSEDLOOP_METHODS: other methods, one argument)
#   scripts/gpu_check.sh compile OUT  BF16 rows with whole-model torch.compile (minutes)
#   scripts/gpu_check.sh groot  OUT   full-size GR00T N1.5 (random weights): BF16 eager and
#                                     CUDA graph vs W4A4 omega-dynamic Triton + CUDA graph,
#                                     the quantized scope's memory, parameter counts
#   scripts/gpu_check.sh groot-width OUT [WIDTH]
#                                     trains the small GR00T with a WIDTH-wide DiT (384) on
#                                     the sim's expert demonstrations, then its closed loop,
#                                     FP vs omega-dynamic, 50 paired episodes per task (is
#                                     the small DiT's W4A4 loss its width's? RESULTS 9d)
#   scripts/gpu_check.sh all    OUT   gemm, policy and tests in turn (the quickest and most
#                                     telling first), each under a time limit (STAGE_SECONDS,
#                                     else 100 / 240 / 240 s) so one 10-minute device call
#                                     returns every log (the tests stage then stops part-way)
# Needs torch with CUDA, triton, numpy, safetensors, sentencepiece, PyYAML and pytest (the lent
# machine's image has them all); runs from the checkout without installing it. closedloop and
# one GR00T test of the tests stage (omegaq-quantize from bags) also need rosbags, MuJoCo and
# the sim's wheels for Python 3.12 (scripts/prepare_device_carry.sh puts
# them in .cache/wheels312, with glvnd's EGL in .cache/glvnd). Logs and JSON go to OUT
# (default $OUT, else ./gpu-check).
set -uo pipefail
stage=${1:-all}
out=${2:-${OUT:-gpu-check}}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The autotuned prefix GEMMs print the tiles they chose (which config won, per shape).
export TRITON_PRINT_AUTOTUNING=1
limit=${STAGE_SECONDS:-0}
limited() { if [ "$limit" -gt 0 ]; then timeout "$limit" "$@"; else "$@"; fi; }
python=${PYTHON:-python3}
status=0

versions() {
  "$python" - <<'EOF' | tee "$out/versions.txt"
import shutil, subprocess, torch, triton
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'
driver = 'unknown'
if shutil.which('nvidia-smi'):
    driver = subprocess.run(['nvidia-smi', '--query-gpu=driver_version',
                             '--format=csv,noheader'], capture_output=True, text=True).stdout.strip()
print(f'{gpu} · driver {driver} · torch {torch.__version__} · CUDA {torch.version.cuda} · '
      f'triton {triton.__version__}')
EOF
}

# The sim on the device: its wheels for Python 3.12 (rosbags, MuJoCo: what the image lacks)
# and glvnd's EGL dispatcher (the image has NVIDIA's EGL vendor library only), where carried.
use_carried_sim() {
  if [ -d .cache/wheels312 ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/omegaq-site \
      .cache/wheels312/*.whl || return 1
    export PYTHONPATH="$PYTHONPATH:/tmp/omegaq-site"
  fi
  if [ -d .cache/glvnd ]; then
    export LD_LIBRARY_PATH="$repo/.cache/glvnd${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export __EGL_VENDOR_LIBRARY_FILENAMES="$repo/.cache/glvnd/10_nvidia.json"
  fi
  export MUJOCO_GL=${MUJOCO_GL:-egl}
}

run_tests() {
  use_carried_sim || status=1
  # TESTS: a subset of the suite's files (a rerun of those a time limit cut); TESTS_K: a
  # pytest -k expression (the tests of the paths a change touched, when time is short).
  limited "$python" -m pytest -q -p no:cacheprovider -s ${TESTS_K:+-k "$TESTS_K"} \
    ${TESTS:-test/test_kernels_triton.py test/test_pi05_static.py test/test_groot_quantize.py} \
    2>&1 | tee "$out/tests.log" || status=1
}

run_gemm() {
  # GEMM_ARGS: more bench_w4a4_gemm.py options (--one-group: no paired rescale).
  limited "$python" benchmarks/bench_w4a4_gemm.py --mode dynamic_group --prefix-rows 816 \
    --no-reference --reps 100 --json "$out/gemm.json" ${GEMM_ARGS:-} 2>&1 \
    | tee "$out/gemm.log" || status=1
}

run_launch() {
  limited "$python" benchmarks/bench_w4a4_launch.py --json "$out/launch.json" 2>&1 \
    | tee "$out/launch.log" || status=1
}

run_ncu() {
  limited ncu --profile-from-start off -k 'regex:quant_kernel|gemm_kernel' \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    "$python" benchmarks/ncu_w4a4_gemm.py 2>&1 | tee "$out/ncu.txt" || status=1
}

run_closedloop() {
  local episodes=${1:-20}
  use_carried_sim || { status=1; return; }
  "$python" -m omegaq_ros.sim.method_eval \
    --policy models/pi05_small/checkpoint \
    --methods "${CLOSEDLOOP_METHODS:-omega-dynamic,omega-dynamic@triton}" \
    --device cuda --episodes "$episodes" --tasks all --workers 8 --out "$out/closedloop" \
    2>&1 | tee "$out/closedloop.log" || status=1
}

run_policy() {
  # BENCH_METHODS: the W4A4 methods, one argument (a method may hold spaces:
  # 'omega-dynamic+act_mode_by_scope={language_model: dynamic_token}').
  # The table comes from a process that never ran the profiler: after torch.profiler had run
  # in the process, the W4A4 steps replayed 0.1-0.17 ms slower (RESULTS 7t). The kernel tables
  # (PROFILE=0: none) come from a second process; its timings are not the table's.
  limited "$python" benchmarks/bench_pi05_gpu.py --repeats 30 \
    --json "$out/pi05.json" ${BENCH_METHODS:+--methods "$BENCH_METHODS"} ${BENCH_ARGS:-} \
    2>&1 | tee "$out/pi05.log" || status=1
  if [ "${PROFILE:-1}" != 0 ]; then
    limited "$python" benchmarks/bench_pi05_gpu.py --repeats 3 --profile "$out/profile" \
      ${BENCH_METHODS:+--methods "$BENCH_METHODS"} > "$out/pi05_profiled.log" 2>&1 || status=1
  fi
}

run_groot() {
  limited "$python" benchmarks/bench_groot.py --config n1_5 --repeats 20 \
    --json "$out/groot.json" 2>&1 | tee "$out/groot.log" || status=1
}

run_groot_width() {
  local width=${1:-384}
  use_carried_sim || { status=1; return; }
  "$python" -m omegaq_ros.policy.train --family groot --dit-width "$width" --steps 4500 \
    --batch 128 --lr 3e-4 --episodes-per-task 100 --workers 15 --out "/tmp/groot_w$width" \
    2>&1 | tee "$out/groot_width_train.log" || { status=1; return; }
  cp "/tmp/groot_w$width/training.json" "$out/groot_width_training.json"
  "$python" -m omegaq_ros.sim.method_eval --policy "/tmp/groot_w$width/checkpoint" \
    --methods fp,omega-dynamic --device cuda --episodes 50 --tasks all --workers 14 \
    --out "$out/groot_width" 2>&1 | grep -v 'it/s' | tee "$out/groot_width.log" || status=1
}

run_compile() {
  limited "$python" benchmarks/bench_pi05_gpu.py --repeats 30 --methods '' --compile \
    --json "$out/pi05_compile.json" 2>&1 | tee "$out/pi05_compile.log" || status=1
}

case "$stage" in
  tests|gemm|launch|ncu|policy|compile|groot|groot-width|closedloop|all) versions ;;
  *) echo "gpu_check.sh: stage must be tests, gemm, launch, ncu, policy, compile, groot," \
       "groot-width, closedloop or all," \
       "got '$stage'" >&2
     exit 2 ;;
esac
case "$stage" in
  tests) run_tests ;;
  gemm) run_gemm ;;
  launch) run_launch ;;
  ncu) run_ncu ;;
  policy) run_policy ;;
  compile) run_compile ;;
  groot) run_groot ;;
  groot-width) run_groot_width "${3:-384}" ;;
  closedloop) run_closedloop "${3:-20}" ;;
  all) limit=${STAGE_SECONDS:-100}; run_gemm
       limit=${STAGE_SECONDS:-240}; run_policy; run_tests ;;
esac
exit $status
