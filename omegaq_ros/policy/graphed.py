# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Chunk sampling from static buffers, replayed as two CUDA graphs: the prefix, then all K steps.

A chunk at batch 1 is hundreds of small kernels (the action head's GEMMs take a few
microseconds each), so launch overhead dominates eager PyTorch. The sampler owns fixed-shape
copies of the model's inputs (sample_actions' arguments: tensors, or lists of tensors such as
pi0.5's per-camera images), captures the model's prefix_context into one graph and its
denoise (the K Euler steps, each inside its denoising_step context, so every QuantLinear bakes
in its per-step table row) into another, and replays both per chunk. The action head's
modulation of every step is precomputed before capture (prepare_steps). Any ChunkModel works:
pi0.5 and GR00T N1.5 alike.

Without CUDA (or with capture=False) the same static-buffer path runs eagerly, which is how
the CPU tests check the plumbing; the capture itself is tested on the GPU machine.
"""

from typing import Optional, Sequence

from omegaq_ros.policy.chunk_model import ChunkModel
import torch


def _buffers(value):
    """Return a static copy of one input (a tensor, or a list of tensors)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    return [item.clone() for item in value]


def _pairs(buffer, value):
    """Yield (static buffer, new value) tensor pairs of one input."""
    if isinstance(buffer, torch.Tensor):
        yield buffer, value
        return
    if len(value) != len(buffer):
        raise ValueError(f'expected {len(buffer)} tensors in a list input, got {len(value)}')
    yield from zip(buffer, value)


def input_shapes(inputs: Sequence) -> tuple:
    """Return the shapes of sample_actions' inputs (what one set of graphs is captured for)."""
    return tuple(tuple(value.shape) if isinstance(value, torch.Tensor)
                 else tuple(tuple(item.shape) for item in value) for value in inputs)


class StaticChunkSampler:
    """Sample chunks for one fixed input shape through static buffers (CUDA graphs on GPU)."""

    def __init__(self, model: ChunkModel, inputs: Sequence, num_steps: Optional[int] = None,
                 capture: Optional[bool] = None, warmup: int = 2):
        """
        Copy sample_actions' inputs (the noise last) into static buffers; capture on CUDA.

        capture: None captures where the noise is on a CUDA device.
        """
        self.model = model
        self.num_steps = num_steps or model.config.num_steps
        noise = inputs[-1]
        device = noise.device
        self.capture = device.type == 'cuda' if capture is None else capture
        if self.capture and device.type != 'cuda':
            raise ValueError('CUDA graph capture needs the model and inputs on a CUDA device')
        self.inputs = [_buffers(value) for value in inputs]
        # The graphs read the step modulations in place: held here as long as they live, even
        # if the model's table is dropped (train(), set_compute_dtype) or made anew.
        self.modulations = model.prepare_steps(self.num_steps, batch_size=noise.shape[0])
        self.prefix_graph = self.denoise_graph = None
        self.context = self.actions = None
        if self.capture:
            self._capture(warmup)

    def _prefix(self):
        self.context = self.model.prefix_context(*self.inputs[:self.model.PREFIX_INPUTS])

    def _denoise(self):
        self.actions = self.model.denoise(*self.context, *self.inputs[self.model.PREFIX_INPUTS:],
                                          self.num_steps)

    def _capture(self, warmup: int):
        # Warm-up on a side stream: kernel autotuning and lazy caches happen outside capture.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(warmup):
                self._prefix()
                self._denoise()
        torch.cuda.current_stream().wait_stream(stream)
        self.prefix_graph = torch.cuda.CUDAGraph()
        self.denoise_graph = torch.cuda.CUDAGraph()
        with torch.no_grad():
            with torch.cuda.graph(self.prefix_graph):
                self._prefix()
            # The denoise graph reads the prefix graph's output buffers (same memory pool).
            with torch.cuda.graph(self.denoise_graph, pool=self.prefix_graph.pool()):
                self._denoise()
        torch.cuda.synchronize()

    def load(self, inputs: Sequence):
        """Copy one observation's inputs into the static buffers (shapes must match)."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f'expected {len(self.inputs)} inputs, got {len(inputs)}')
        for buffer, value in zip(self.inputs, inputs):
            for static, new in _pairs(buffer, value):
                if tuple(new.shape) != tuple(static.shape):
                    raise ValueError(f'static input of shape {tuple(static.shape)} got '
                                     f'{tuple(new.shape)}')
                static.copy_(new, non_blocking=True)

    def run_prefix(self):
        """Run (replay) the prefix pass on the loaded buffers."""
        if self.prefix_graph is not None:
            self.prefix_graph.replay()
        else:
            with torch.no_grad():
                self._prefix()

    def run_denoise(self) -> torch.Tensor:
        """Run (replay) the K denoising steps; returns the static actions buffer."""
        if self.denoise_graph is not None:
            self.denoise_graph.replay()
        else:
            with torch.no_grad():
                self._denoise()
        return self.actions

    def __call__(self, inputs: Sequence) -> torch.Tensor:
        """Sample one chunk [B, horizon, action width] (a copy, safe to keep across calls)."""
        self.load(inputs)
        self.run_prefix()
        return self.run_denoise().clone()
