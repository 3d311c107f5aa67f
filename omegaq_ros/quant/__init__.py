# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Omega-QVLA W4A4 post-training quantization, free of ROS.

    from omegaq_ros.quant import Recipe, quantize, save_artifact, load_artifact
    model = quantize(model, calibration_batches, Recipe.preset('omega'))
    save_artifact(model, Recipe.preset('omega'), 'out/my_policy_w4a4')
    model = load_artifact('out/my_policy_w4a4', build_fp_skeleton())
"""

from omegaq_ros.quant.artifact import (ArtifactError, is_artifact, load_artifact,
                                       read_manifest, save_artifact)
from omegaq_ros.quant.linear import QuantLinear
from omegaq_ros.quant.quantizer import quantize
from omegaq_ros.quant.recipe import PRESETS, Recipe
from omegaq_ros.quant.step_context import current_step, denoising_step, StepContextError

__all__ = [
    'ArtifactError', 'PRESETS', 'QuantLinear', 'Recipe', 'StepContextError', 'current_step',
    'denoising_step', 'is_artifact', 'load_artifact', 'quantize', 'read_manifest', 'save_artifact',
]
