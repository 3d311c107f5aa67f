#!/usr/bin/env bash
# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Prepare what an offline GPU machine (Python 3.12, no internet) needs to run the sim there:
#   .cache/wheels312/  MuJoCo, rosbags, sentencepiece, safetensors, tqdm, PyYAML wheels (cp312)
#   .cache/glvnd/      glvnd's libEGL/libOpenGL + an NVIDIA EGL vendor file, for images that
#                      ship NVIDIA's EGL driver without the glvnd dispatcher
# PYTHON names the interpreter whose pip downloads them (default: .venv/bin/python).
# On the GPU machine: python -m pip install --no-index --no-deps .cache/wheels312/*.whl and
# OMEGAQ_GLVND=$PWD/.cache/glvnd scripts/train_bundled_policy.sh OUT (or set LD_LIBRARY_PATH
# and __EGL_VENDOR_LIBRARY_FILENAMES the same way for omegaq-eval).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheels="$repo/.cache/wheels312"
glvnd="$repo/.cache/glvnd"
mkdir -p "$wheels" "$glvnd"
"${PYTHON:-$repo/.venv/bin/python}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$wheels" \
  mujoco==4.0.0 mujoco-core==4.0.0 glfw pyopengl rosbags apsw \
  backports-zstd lz4 ruamel-yaml typing-extensions sentencepiece safetensors tqdm pyyaml
for lib in libEGL.so.1 libGLdispatch.so.0 libOpenGL.so.0 libGL.so.1; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$glvnd/"
done
for name in libEGL libOpenGL libGL; do
  cp "$glvnd/$(ls "$glvnd" | grep "^$name.so\." | head -n 1)" "$glvnd/$name.so"
done
echo '{"file_format_version": "1.0.0", "ICD": {"library_path": "libEGL_nvidia.so.0"}}' \
  > "$glvnd/10_nvidia.json"
du -sh "$wheels" "$glvnd"
