# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
MuJoCo bimanual ARX R5 simulation (no ROS): scene, tasks, scripted experts, bag recorder.

MuJoCo chooses its OpenGL backend when it is first imported; this package defaults it to EGL
(headless rendering on a CPU through Mesa llvmpipe) unless MUJOCO_GL is already set, so
import omegaq_ros.sim before anything that imports mujoco.
"""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
