# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Static weight memory: what a quantized model keeps resident, against its FP16 size."""

from omegaq_ros.quant.linear import QuantLinear
from omegaq_ros.quant.recipe import Recipe
from torch import nn

# What each QuantLinear buffer is, for the breakdown.
BUFFER_PARTS = {'weight_packed': 'int4 codes', 'weight_scale': 'weight scales',
                'weight_scale_unit': 'weight scales',
                'rot_in': 'rotations', 'rot_in_scale': 'rotations', 'rot_out': 'rotations',
                'rot_out_scale': 'rotations', 'perm_in': 'permutations',
                'act_scale': 'act tables', 'smooth': 'act tables', 'bias': 'bias'}


def scope_fp16_bytes(model: nn.Module, recipe: Recipe) -> int:
    """FP16 bytes of the nn.Linear layers (weight and bias) that `recipe` selects in `model`."""
    return sum(2 * sum(p.numel() for p in module.parameters())
               for name, module in model.named_modules()
               if type(module) is nn.Linear and recipe.selects(name))


def quantized_bytes(model: nn.Module) -> dict:
    """Bytes held by the QuantLinear buffers of `model`, by part (each storage once)."""
    seen, parts = set(), {}
    for module in model.modules():
        if not isinstance(module, QuantLinear):
            continue
        for name, tensor in module.named_buffers(recurse=False):
            if tensor is None or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            part = BUFFER_PARTS[name]
            parts[part] = parts.get(part, 0) + tensor.numel() * tensor.element_size()
    return parts


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and persistent buffer of `model` (each storage once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + [b for b in model.buffers() if b is not None]:
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total
