#!/usr/bin/env bash
# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Builds (once) the Python 3.12 venv with LeRobot 0.6.1 that the pi0.5 equivalence test uses
# as its numerical reference. Never a runtime dependency: omegaq_ros does not import LeRobot.
# About 5.3 GB (PyPI's torch for 3.12 is a CUDA build) and 3-4 minutes on first use; cached
# in .cache/lerobot-venv. No pip cache: the wheels would double the footprint.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.cache/lerobot-venv"
stamp="$venv/.omegaq_lerobot_stamp"
want="lerobot[pi]==0.6.1"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi
python312=${OMEGAQ_PYTHON312:-}
if [ -z "$python312" ]; then
  # A pyenv shim answers `command -v` even when its version is not active (it then exits 127),
  # so each candidate is run, and the concrete pyenv installs come before the bare name.
  for candidate in $(ls -d "$HOME"/.pyenv/versions/3.12.*/bin/python 2>/dev/null | sort -V -r) \
      python3.12; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      python312=$candidate
      break
    fi
  done
fi
if [ -z "$python312" ]; then
  echo "setup_lerobot_reference: Python 3.12 not found (LeRobot 0.6.1 needs it); set OMEGAQ_PYTHON312" >&2
  exit 1
fi
mkdir -p "$repo/.cache"
[ -x "$venv/bin/python" ] || "$python312" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir "$want" 2>&1 | { grep -v -e '^WARNING: Location' || true; } >&2
echo "$want" > "$stamp"
echo "$venv"
