# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Chunk sampling from static buffers, replayed as two CUDA graphs: the prefix, then all K steps.

A chunk at batch 1 is hundreds of small kernels (the expert's GEMMs take a few microseconds
each), so launch overhead dominates eager PyTorch. The sampler owns fixed-shape input buffers
(images, masks, tokens, noise), captures `Pi05Model.prefix_cache` into one graph and
`Pi05Model.denoise` (the K Euler steps, each inside its denoising_step context, so every
QuantLinear bakes in its per-step table row) into another, and replays both per chunk. The
adaRMS modulation of every step is precomputed before capture (prepare_steps).

Without CUDA (or with capture=False) the same static-buffer path runs eagerly, which is how
the CPU tests check the plumbing; the capture itself is tested on the GPU machine.
"""

from typing import List, Optional

from omegaq_ros.policy.pi05_model import Pi05Model
import torch


class StaticChunkSampler:
    """Sample chunks for one fixed input shape through static buffers (CUDA graphs on GPU)."""

    def __init__(self, model: Pi05Model, images: List[torch.Tensor],
                 image_masks: List[torch.Tensor], tokens: torch.Tensor,
                 token_masks: torch.Tensor, noise: torch.Tensor,
                 num_steps: Optional[int] = None, capture: Optional[bool] = None,
                 warmup: int = 2):
        self.model = model
        self.num_steps = num_steps or model.config.num_steps
        device = noise.device
        self.capture = device.type == 'cuda' if capture is None else capture
        if self.capture and device.type != 'cuda':
            raise ValueError('CUDA graph capture needs the model and inputs on a CUDA device')
        self.images = [image.clone() for image in images]
        self.image_masks = [mask.clone() for mask in image_masks]
        self.tokens = tokens.clone()
        self.token_masks = token_masks.clone()
        self.noise = noise.clone()
        model.prepare_steps(self.num_steps, batch_size=noise.shape[0])
        self.prefix_graph = self.denoise_graph = None
        self.cache = self.prefix_pad = self.actions = None
        if self.capture:
            self._capture(warmup)

    def _prefix(self):
        self.cache, self.prefix_pad = self.model.prefix_cache(
            self.images, self.image_masks, self.tokens, self.token_masks)

    def _denoise(self):
        self.actions = self.model.denoise(self.cache, self.prefix_pad, self.noise,
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

    def load(self, images, image_masks, tokens, token_masks, noise):
        """Copy one observation into the static buffers (shapes must match the capture)."""
        if len(images) != len(self.images):
            raise ValueError(f'expected {len(self.images)} images, got {len(images)}')
        pairs = list(zip(self.images, images)) + list(zip(self.image_masks, image_masks)) + [
            (self.tokens, tokens), (self.token_masks, token_masks), (self.noise, noise)]
        for buffer, value in pairs:
            if tuple(value.shape) != tuple(buffer.shape):
                raise ValueError(f'static input of shape {tuple(buffer.shape)} got '
                                 f'{tuple(value.shape)}')
            buffer.copy_(value, non_blocking=True)

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

    def __call__(self, images, image_masks, tokens, token_masks, noise) -> torch.Tensor:
        """Sample one chunk [B, horizon, 32] (a copy, safe to keep across calls)."""
        self.load(images, image_masks, tokens, token_masks, noise)
        self.run_prefix()
        return self.run_denoise().clone()
