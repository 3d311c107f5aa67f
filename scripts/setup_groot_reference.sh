#!/usr/bin/env bash
# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Builds (once) the Python 3.11 venv with LeRobot 0.4.4 (its GR00T N1.5 port) that the GR00T
# equivalence test uses as its numerical reference. Never a runtime dependency.
# LeRobot 0.4.4 pins torch<2.11 (PyPI's x86_64 wheels of those are multi-GB CUDA builds) and its
# groot extra pulls flash-attn; neither is needed to run the port on a CPU with eager/SDPA
# attention. So the CPU torch wheel that setup_env.sh uses goes in first, lerobot without its
# dependencies, then the few packages its GR00T code imports, under a constraint that keeps
# that torch (pip fails rather than fetching another). Cached in .cache/groot-reference-venv,
# rebuilt when this script changes; no pip cache.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.cache/groot-reference-venv"
stamp="$venv/.omegaq_groot_stamp"
want=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi
python311=${OMEGAQ_PYTHON:-python3.11}
torch_spec=${OMEGAQ_TORCH_WHEEL:-}
if [ -z "$torch_spec" ]; then
  # The machines' local CPU wheel when present; otherwise PyPI's CPU index would be needed.
  torch_spec=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -1 || true)
  torch_spec=${torch_spec:-torch==2.13.0}
fi
mkdir -p "$repo/.cache"
rm -rf "$venv"
"$python311" -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@" 2>&1 \
  | { grep -v -e '^WARNING: Location' || true; } >&2; }
constraints="$venv/constraints.txt"
printf 'torch==2.13.0\n' > "$constraints"
pip install --quiet --no-cache-dir "$torch_spec"
# torchvision: only its tensor transforms (resize) run. PyPI's wheel is a CUDA build whose
# compiled ops cannot load next to a CPU torch; the reference script tolerates that.
pip install --quiet --no-cache-dir --no-deps "torchvision==0.28.*" "lerobot==0.4.4"
pip install --quiet --no-cache-dir -c "$constraints" \
  "transformers>=4.57.1,<5" "diffusers>=0.27.2,<0.36" "huggingface-hub<0.36,>=0.34.2" \
  "peft>=0.13,<1" "dm-tree>=0.1.8,<1" "einops>=0.8,<0.9" "draccus==0.10.0" \
  "safetensors>=0.4.3,<1" "Pillow>=10,<13" "numpy<2.3" "packaging<26" "termcolor" \
  "deepdiff>=7,<9" "jsonlines" "gymnasium>=1.1.1,<2" "imageio" "datasets>=4,<5" \
  "pyserial>=3.5,<4" "av>=15,<16"
# The import check goes through the reference script's torchvision shim (see there).
HF_HUB_OFFLINE=1 "$venv/bin/python" "$repo/scripts/reference/lerobot_groot_reference.py" \
  --check-imports >&2
echo "$want" > "$stamp"
echo "$venv"
