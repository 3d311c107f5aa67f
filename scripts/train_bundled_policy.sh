#!/usr/bin/env bash
# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Retrain the bundled policy (models/pi05_small) on a GPU machine: expert demonstrations are
# rolled out in-process on all CPU cores, then the small policy trains with flow matching.
# Usage: scripts/train_bundled_policy.sh OUT_DIR [MINUTES]   (then quantize with make bundle)
# OMEGAQ_TRAIN_ARGS adds train options: '--family groot' trains the small GR00T N1.5 instead.
# On a machine without internet, install the carried wheels first:
#   pip install --no-index --no-deps .cache/wheels312/*.whl
set -euo pipefail
out=${1:?usage: train_bundled_policy.sh OUT_DIR [MINUTES]}
minutes=${2:-7.5}
export MUJOCO_GL=${MUJOCO_GL:-egl}
# Headless GPU images often ship NVIDIA's EGL vendor library without the glvnd dispatcher;
# a folder with glvnd's libEGL/libOpenGL and a vendor file (OMEGAQ_GLVND) fills the gap.
if [ -n "${OMEGAQ_GLVND:-}" ]; then
  export LD_LIBRARY_PATH="$OMEGAQ_GLVND${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export __EGL_VENDOR_LIBRARY_FILENAMES="$OMEGAQ_GLVND/10_nvidia.json"
fi
work=$(mktemp -d)
python - <<'PY'
import omegaq_ros.sim
from omegaq_ros.sim.env import BimanualEnv
with BimanualEnv('lift') as env:
    image = env.reset(0).images['cam_high']
print('sim renders:', image.shape, float(image.mean()))
PY
python -m omegaq_ros.policy.train --out "$work" --episodes-per-task 100 --seed-start 0 \
  --minutes "$minutes" --batch 128 ${OMEGAQ_TRAIN_ARGS:-}
mkdir -p "$out"
cp -r "$work/checkpoint" "$work/training.json" "$out/"
