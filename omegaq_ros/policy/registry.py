# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
One place that picks the runtime for a policy path: every CLI and node loads through here.

The family comes from the path itself: an omegaq artifact's manifest names it
(`model_family`), a LeRobot pi05 checkpoint's config.json says `type: pi05`, a GR00T N1.5
checkpoint's config.json says `model_type: gr00t_n1_5`.
"""

import json
import os

from omegaq_ros.quant import is_artifact, read_manifest

FAMILIES = ('pi05', 'groot')


class UnknownPolicyError(ValueError):
    """The path is neither a known checkpoint nor an artifact of a known family."""


def policy_family(path: str) -> str:
    """Return 'pi05' or 'groot' for a checkpoint or artifact directory, or refuse it."""
    if is_artifact(path):
        family = read_manifest(path)['extra'].get('model_family')
        if family not in FAMILIES:
            raise UnknownPolicyError(f"{path}: artifact model family '{family}' is not one of "
                                     f'{list(FAMILIES)}')
        return family
    config = os.path.join(path, 'config.json')
    if not os.path.isfile(config):
        raise UnknownPolicyError(f'{path}: no config.json (checkpoint) or omegaq.json '
                                 '(artifact) there')
    try:
        with open(config) as stream:
            data = json.load(stream)
    except (OSError, ValueError) as error:
        raise UnknownPolicyError(f'{config} cannot be read as JSON: {error}') from None
    if not isinstance(data, dict):
        raise UnknownPolicyError(f'{config}: expected a JSON object')
    if data.get('type') == 'pi05':
        return 'pi05'
    if data.get('model_type') == 'gr00t_n1_5':
        return 'groot'
    raise UnknownPolicyError(f"{config}: type '{data.get('type')}' / model_type "
                             f"'{data.get('model_type')}' is neither a LeRobot pi05 nor a GR00T "
                             'N1.5 checkpoint')


def policy_class(family: str):
    """Return the runtime class of a family (imported on demand)."""
    if family == 'pi05':
        from omegaq_ros.policy.pi05_runtime import Pi05Policy
        return Pi05Policy
    if family == 'groot':
        from omegaq_ros.policy.groot_runtime import GrootPolicy
        return GrootPolicy
    raise UnknownPolicyError(f"unknown policy family '{family}'; known {list(FAMILIES)}")


def load_policy(path: str, device: str = 'cpu', embodiment=None, **options):
    """
    Load the checkpoint or artifact at path with the runtime its type selects.

    options as for Pi05Policy.load; embodiment (a GR00T tag name) applies to GR00T only and
    is refused for pi0.5, which has none.
    """
    family = policy_family(path)
    if family == 'groot':
        return policy_class(family).load(path, device, embodiment=embodiment, **options)
    if embodiment is not None:
        raise UnknownPolicyError(f'{path} is a pi0.5 policy: it has no embodiment to choose')
    return policy_class(family).load(path, device, **options)
