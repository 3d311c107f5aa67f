# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ROS-free VLA runtime: the pi0.5 model, its processing, checkpoints and the policy wrapper."""
