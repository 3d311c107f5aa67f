# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Where the bundled small policy and its W4A4 artifact live (source tree or share/)."""

import glob
import os
from typing import List


def _package_roots() -> List[str]:
    """Return the repository root (source / editable install) and the installed share dir."""
    roots = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    try:
        from ament_index_python.packages import get_package_share_directory
        roots.append(get_package_share_directory('omegaq_ros'))
    except Exception:               # not installed with colcon, or AMENT_PREFIX_PATH unset
        pass
    return roots


def bundled_model(kind: str, family: str = 'pi05') -> str:
    """
    Return the bundled model directory: kind 'artifact' (omegaq.json) or 'checkpoint'.

    Of the policy family's models (models/<family>_*: the π0.5 ones unless told), so another
    family's bundled model never becomes a default. Searched under models/ of the source tree
    and of share/omegaq_ros; raises FileNotFoundError saying where it looked when there is none.
    """
    marker = 'omegaq.json' if kind == 'artifact' else 'config.json'
    searched = []
    for root in _package_roots():
        models = os.path.join(root, 'models')
        searched.append(models)
        # models/NAME/omegaq.json (artifacts) and models/NAME/checkpoint/config.json.
        name = f'{family}_*'
        for pattern in (os.path.join(models, name, marker),
                        os.path.join(models, name, '*', marker)):
            for candidate in sorted(glob.glob(pattern)):
                return os.path.dirname(candidate)
    raise FileNotFoundError(f'no bundled {family} {kind} (a directory with {marker} in '
                            f'{family}_*) under {searched}; give its path explicitly')
