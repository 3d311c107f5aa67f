# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ament_pep257 docstring conventions."""

from ament_pep257.main import main
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=['omegaq_ros', 'test', 'benchmarks', 'scripts', 'launch'])
    assert rc == 0, 'Found code style errors / warnings'
