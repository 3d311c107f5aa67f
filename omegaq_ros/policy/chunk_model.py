# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
What the flow-matching models (pi0.5, GR00T N1.5) share below their architectures.

The towers' compute dtype with the small conditioning modules kept in fp32, and the table of
the action head's per-step modulations (adaRMS for pi0.5, AdaLayerNorm for GR00T): they
depend only on the step's time, so they are computed once per step count and reused by every
chunk, which keeps the time MLPs out of the per-step work (and out of quantization).
"""

from typing import List, Tuple

import torch
from torch import nn


class ChunkModel(nn.Module):
    """Base of Pi05Model and GrootModel: tower dtype and the per-step modulation table."""

    # Module name components kept in fp32 by set_compute_dtype (dotted paths allowed).
    FP32_MODULES: Tuple[str, ...] = ()
    # Linears that read one input wherever they sit together under one parent: a fast
    # backend runs each set as one quantize + one GEMM.
    SIBLING_LINEARS: Tuple[Tuple[str, ...], ...] = ()
    # (producers, consumer) under one parent where the consumer reads an elementwise function
    # of the producers' outputs: a fast backend moves the consumer's input permutation into
    # the producers' output rows (quant.linear.fold_input_permutations).
    ELEMENTWISE_CHAINS: Tuple[Tuple[Tuple[str, ...], str], ...] = ()
    # How many of sample_actions' leading inputs the once-per-chunk prefix reads; the rest
    # (and the noise, always last) go to denoise with the prefix's context.
    PREFIX_INPUTS = 0

    def __init__(self):
        super().__init__()
        self.compute_dtype = torch.float32
        self._modulation_cache = None

    def keeps_fp32(self, name: str) -> bool:
        """Return whether the module called name (or one it sits in) stays fp32."""
        return any(f'.{kept}.' in f'.{name}.' for kept in self.FP32_MODULES)

    def set_compute_dtype(self, dtype: torch.dtype) -> 'ChunkModel':
        """
        Run the towers in `dtype` (e.g. bfloat16): their weights and activations.

        FP32_MODULES stay fp32; QuantLinear layers keep their stored formats and return
        activations in the dtype they are given.
        """
        for name, module in self.named_modules():
            if self.keeps_fp32(name):
                continue
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding, nn.LayerNorm)):
                module.to(dtype)
        self.compute_dtype = dtype
        self._modulation_cache = None
        return self

    def use_fused_pointwise(self, enabled: bool = True) -> 'ChunkModel':
        """
        Run the norms, RoPE, residuals and gated MLPs between the GEMMs through torch.compile.

        Every module with an `ops` namespace (policy/pointwise.py) gets the compiled one: each
        function compiles once per shape on first use (seconds on a GPU) and then runs as one
        or two fused kernels instead of up to nine. Two GEMMs of the full-precision vision
        tower change with it: its q/k/v projections run as one GEMM (join_projections) and its
        MLP's GELU runs in the first projection's epilogue on CUDA. For CUDA-graph chunks on a
        GPU (the product path); eager (the default) elsewhere.
        """
        from omegaq_ros.policy import pointwise
        ops = pointwise.compiled() if enabled else pointwise.EAGER
        for module in self.modules():
            if hasattr(module, 'ops'):
                module.ops = ops
            if hasattr(module, 'join_projections'):
                module.join_projections(enabled)
        return self

    @property
    def fused_pointwise(self) -> bool:
        """Return True while the pointwise work runs compiled (use_fused_pointwise)."""
        return any(getattr(module, 'ops', None) is not None and module.ops.fused
                   for module in self.modules())

    def train(self, mode: bool = True):
        """Drop the modulation table whenever the weights may change."""
        self._modulation_cache = None
        return super().train(mode)

    def prefix_context(self, *inputs) -> tuple:
        """
        Run the prefix on sample_actions' first PREFIX_INPUTS inputs, once per chunk.

        Returns the context that denoise takes before the remaining inputs, so that
        sample_actions(*inputs) == denoise(*prefix_context(*inputs[:n]), *inputs[n:]).
        """
        raise NotImplementedError

    def denoise(self, *args) -> torch.Tensor:
        """
        Run the K Euler steps over the prefix's context.

        args: prefix_context's result, sample_actions' remaining inputs (the noise last), then
        the number of steps (None: the configured one).
        """
        raise NotImplementedError

    def step_conditions(self, num_steps: int, batch_size: int,
                        device: torch.device) -> List[torch.Tensor]:
        """Return what each of the num_steps Euler steps is conditioned on, [batch_size] each."""
        raise NotImplementedError

    def modulations(self, condition: torch.Tensor):
        """Return every modulation of the action head for one step's condition."""
        raise NotImplementedError

    def prepare_steps(self, num_steps: int, batch_size: int = 1) -> list:
        """
        Precompute the modulations of every step (inference; reused every chunk); return them.

        A table made earlier for the same steps, batch size and device is returned as it is,
        not made again: CUDA graphs read its tensors in place, and a table replaced while a
        graph captured with it lives on would leave that graph reading freed memory.
        """
        device = next(self.parameters()).device
        key = (num_steps, batch_size, device)
        if self._modulation_cache is not None and self._modulation_cache[:3] == key:
            return self._modulation_cache[3]
        with torch.no_grad():
            table = [self.modulations(condition)
                     for condition in self.step_conditions(num_steps, batch_size, device)]
        self._modulation_cache = key + (table,)
        return table

    def step_modulations(self, step: int, num_steps: int, condition: torch.Tensor):
        """Return step's modulations: from the table when it fits, else computed now."""
        cache = self._modulation_cache
        if cache is not None and cache[:3] == (num_steps, condition.shape[0], condition.device):
            return cache[3][step]
        return self.modulations(condition)
