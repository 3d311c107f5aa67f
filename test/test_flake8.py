# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ament_flake8 with the ROS 2 configuration (line length 99, single quotes, google imports)."""

from ament_flake8.main import main_with_errors
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=['omegaq_ros', 'test', 'setup.py', 'benchmarks', 'scripts',
                                        'launch'])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
