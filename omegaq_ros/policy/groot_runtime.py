# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The GR00T N1.5 runtime: a checkpoint or W4A4 artifact turned into action chunks.

What GR00T adds to runtime.ChunkPolicy: the state is an input token rather than part of the
prompt (so it is always required), the prompt holds the images' context tokens, every camera
must be present, and the embodiment is chosen by name. ROS-free.
"""

import functools
from typing import Optional, Sequence

import numpy as np
from omegaq_ros.policy.groot_checkpoint import load_groot_checkpoint
from omegaq_ros.policy.groot_config import GrootConfig
from omegaq_ros.policy.groot_model import GrootModel
from omegaq_ros.policy.groot_processing import (EagleProcessor, image_tiles, MinMaxNormalizer,
                                                pad_state, ProcessorError, tile_image)
from omegaq_ros.policy.pi05_processing import PromptTokens
from omegaq_ros.policy.runtime import ChunkPolicy, ObservationError
from omegaq_ros.quant import ArtifactError
import torch

EAGLE_PREFIX = 'eagle.'        # the Eagle processor files inside an artifact


class GrootPolicy(ChunkPolicy):
    """A loaded GR00T N1.5 with its processing; predict() returns one chunk."""

    family = 'groot'
    config_class = GrootConfig
    model_class = GrootModel

    def __init__(self, model: GrootModel, normalizers: dict,
                 processor: Optional[EagleProcessor] = None, device: str = 'cpu',
                 source: str = '', dtype: str = 'float32', backend: str = 'reference',
                 cuda_graph: bool = False, fused_pointwise: bool = False):
        super().__init__(model, normalizers, device, source, dtype, backend, cuda_graph)
        self.model.use_fused_pointwise(fused_pointwise)
        self.config: GrootConfig = model.config
        self.processor = processor

    @classmethod
    def _load_checkpoint(cls, path: str, device: str, embodiment: Optional[str] = None,
                         **options) -> 'GrootPolicy':
        model, _, normalizers, processor = load_groot_checkpoint(path, embodiment)
        return cls(model, normalizers, processor, device, source=path, **options)

    @classmethod
    def _normalizer(cls, entry: dict) -> MinMaxNormalizer:
        return MinMaxNormalizer(entry['stats'])

    @classmethod
    def _check_artifact(cls, path: str, config: GrootConfig, normalizers: dict,
                        options: dict) -> dict:
        if set(normalizers) != {cls.state_key, cls.action_key}:
            raise ArtifactError(f'{path}: the manifest needs state and action statistics, has '
                                f'{sorted(normalizers)}')
        embodiment = options.pop('embodiment', None)
        if embodiment is not None and embodiment != config.embodiment:
            raise ArtifactError(f"{path}: the artifact holds embodiment '{config.embodiment}', "
                                f"not '{embodiment}'")
        return options

    @classmethod
    def _artifact_processing(cls, path: str, manifest: dict) -> Optional[EagleProcessor]:
        cls._refuse_unlisted(path, manifest, lambda name: name.startswith(EAGLE_PREFIX))
        if EAGLE_PREFIX + 'chat_template.json' not in manifest['files']:
            return None
        try:
            return EagleProcessor(path, EAGLE_PREFIX)
        except ProcessorError as error:
            raise ArtifactError(f'{path}: {error}') from None

    @staticmethod
    def image_transform(config: GrootConfig):
        """Return the Eagle tile at the model's size (runtime.ChunkPolicy.image_transform)."""
        return functools.partial(tile_image, size=config.vision.image_size)

    def extra_files(self) -> dict:
        """Files to carry into an artifact: the Eagle processor files, as `eagle.<name>`."""
        if self.processor is None:
            return {}
        return {EAGLE_PREFIX + name: file for name, file in self.processor.files.items()}

    # -- inputs -------------------------------------------------------------------------------

    def check_images(self, images: Sequence[np.ndarray], present=None) -> list:
        """Return the images as a list, or refuse a wrong camera, or a missing one."""
        images = super().check_images(images)
        if not all(self.check_present(present, len(images))):
            raise ObservationError('GR00T N1.5 has no input for a missing camera: every one of '
                                   f'{list(self.config.cameras)} must be present')
        return images

    def check_state(self, state) -> np.ndarray:
        """Return the state as float32 [state_dim], or refuse it (it is always required)."""
        if state is None:
            raise ObservationError(f'GR00T needs the state: float32 [{self.config.state_dim}]')
        return super().check_state(state)

    def check_tokens(self, tokens, token_mask, instruction) -> tuple:
        """Return the prompt ids int64 [L] and mask bool [L], from tokens or the instruction."""
        c = self.config
        if tokens is None:
            if self.processor is None:
                raise ObservationError('this checkpoint has no eagle/ processor files; give '
                                       'tokens (the whole prompt, image tokens included)')
            tokens = self.processor.encode(self.check_instruction(instruction), len(c.cameras))
        tokens, token_mask = self.check_token_ids(tokens, token_mask, c.language.vocab_size)
        images = int((tokens == c.image_token_index).sum())
        if images != len(c.cameras) * c.tokens_per_image:
            raise ObservationError(f'the prompt holds {images} image tokens (id '
                                   f'{c.image_token_index}); {len(c.cameras)} cameras need '
                                   f'{len(c.cameras) * c.tokens_per_image}')
        return tokens, token_mask

    @property
    def tokenizer(self) -> Optional[EagleProcessor]:
        """Return what turns instructions into prompts (None: prompts come as tokens)."""
        return self.processor

    def prompt(self, instruction: str, state=None) -> PromptTokens:
        """
        Return the prompt tokens for an instruction (the state is not part of GR00T's prompt).

        The same call as Pi05Policy.prompt, so callers (the policy node) serve either model;
        the note is always '' since GR00T's prompt is never cut.
        """
        tokens, mask = self.check_tokens(None, None, instruction)
        return PromptTokens(tokens, mask)

    # -- inference ----------------------------------------------------------------------------

    def model_call(self, images: Sequence[np.ndarray], state=None,
                   instruction: Optional[str] = None, tokens: Optional[np.ndarray] = None,
                   token_mask: Optional[np.ndarray] = None, noise: Optional[np.ndarray] = None,
                   present: Optional[Sequence[bool]] = None) -> dict:
        """
        Return the model's inputs for one observation (checks, then preprocessing).

        {'pixel_values', 'input_ids', 'token_masks', 'state', 'noise'} as batch-1 tensors on
        the policy's device, in the order GrootModel.sample_actions takes them.
        """
        images = self.check_images(images, present)
        state = self.check_state(state)
        tokens, token_mask = self.check_tokens(tokens, token_mask, instruction)
        noise = self.check_noise(noise)
        if self.processor is not None:
            pixels = self.processor.pixel_values(images)
        else:
            pixels = image_tiles(images, self.config.vision.image_size)
        normalized = self.normalized_state(state)
        device = self.device
        return {'pixel_values': pixels.to(device),
                'input_ids': torch.from_numpy(tokens)[None].to(device),
                'token_masks': torch.from_numpy(token_mask)[None].to(device),
                'state': torch.from_numpy(pad_state(normalized, self.config.max_state_dim))[None]
                .to(device),
                'noise': torch.from_numpy(noise)[None].to(device)}
