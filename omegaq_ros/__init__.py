# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""omegaq_ros: W4A4 (Omega-QVLA) vision-language-action policies for ROS 2 robots."""

__version__ = '0.1.0'
