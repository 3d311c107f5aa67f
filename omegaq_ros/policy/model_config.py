# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
What the model configurations (Pi05Config, GrootConfig) share.

The SigLIP tower's sizes, the checks every flow-matching policy needs, and the JSON form an
artifact's manifest stores.
"""

from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Dict

from omegaq_ros.robot import arx_r5

DEFAULT_CAMERAS = arx_r5.CAMERA_NAMES


@dataclass(frozen=True)
class VisionSize:
    """The SigLIP vision tower."""

    width: int = 1152
    depth: int = 27
    mlp_dim: int = 4304
    num_heads: int = 16
    patch_size: int = 14
    image_size: int = 224


class ModelConfig:
    """
    Base of the frozen config dataclasses: shared checks and the manifest's JSON form.

    A config sets FAMILY (the name in errors and manifests) and NESTED (fields that are
    size dataclasses, rebuilt by from_dict).
    """

    FAMILY: ClassVar[str] = ''
    NESTED: ClassVar[Dict[str, type]] = {}

    def check_shapes(self):
        """Refuse what no model of either family can run; cameras become a tuple."""
        if self.vision.image_size % self.vision.patch_size:
            raise ValueError('image_size must be a multiple of patch_size')
        if self.action_dim > self.max_action_dim or self.state_dim > self.max_state_dim:
            raise ValueError('action_dim/state_dim exceed max_action_dim/max_state_dim')
        object.__setattr__(self, 'cameras', tuple(self.cameras))

    def to_dict(self) -> dict:
        """JSON-ready dict (round-trips through from_dict)."""
        data = asdict(self)
        data['cameras'] = list(self.cameras)
        return data

    @classmethod
    def from_dict(cls, data: dict):
        """Inverse of to_dict; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown {cls.FAMILY} config keys: {unknown}')
        data = dict(data)
        for key, size in cls.NESTED.items():
            if key in data:
                data[key] = size(**data[key])
        return cls(**data)
