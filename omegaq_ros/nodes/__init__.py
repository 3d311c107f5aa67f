# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Thin rclpy adapters; conversions.py is the only module that touches message fields."""
