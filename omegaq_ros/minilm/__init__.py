# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Proving grounds for the quantizer on real trained weights (no ROS)."""
