# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ament_copyright where it exists (apt ROS installs); pip-only machines have no wheel of it."""

import importlib.util

import pytest


@pytest.mark.copyright
@pytest.mark.linter
@pytest.mark.skipif(importlib.util.find_spec('ament_copyright') is None,
                    reason='ament_copyright is not on PyPI; it runs on ROS machines (apt)')
def test_copyright():
    from ament_copyright.main import main
    rc = main(argv=['omegaq_ros', 'test'])
    assert rc == 0, 'Found errors'
