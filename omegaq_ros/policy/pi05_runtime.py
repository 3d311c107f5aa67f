# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The pi0.5 runtime: a LeRobot pi05 checkpoint or W4A4 artifact turned into action chunks.

What pi0.5 adds to runtime.ChunkPolicy: the state is written into the prompt (so an
instruction needs the state, and a too long instruction is cut to fit), a camera may be
missing (its image is masked out), prompts are trimmed of trailing padding, and on CUDA the
prefix and the denoising steps replay as CUDA graphs. ROS-free.
"""

import functools
from typing import Optional, Sequence

import numpy as np
from omegaq_ros.policy.checkpoint import (ACTION_KEY, load_lerobot_checkpoint, STATE_KEY,
                                          TOKENIZER_FILE)
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import (fit_prompt, Normalizer, prepare_images,
                                               PromptTokenizer, PromptTokens, shrink_image)
from omegaq_ros.policy.runtime import ChunkPolicy, ObservationError
from omegaq_ros.quant.artifact import artifact_file
import torch

# Prompts are cut after their last real token, rounded up to a multiple of this: the padding
# rows of the prefix are work for nothing, and a few lengths keep the CUDA graphs few.
PROMPT_BUCKET = 16


def trim_padding(tokens: np.ndarray, token_mask: np.ndarray):
    """
    Drop trailing padding of a prompt [L] beyond its last real token (bucketed).

    Padding tokens are masked out of every attention and take no position, so the chunk is
    the same; only the prefix gets shorter (48 prompt tokens instead of the 200 of
    tokenizer_max_length: 816 prefix rows instead of 968 for pi0.5 with 3 cameras).
    """
    real = np.flatnonzero(token_mask)
    keep = 0 if real.size == 0 else int(real[-1]) + 1
    keep = min(len(tokens), max(PROMPT_BUCKET, -(-keep // PROMPT_BUCKET) * PROMPT_BUCKET))
    return tokens[:keep], token_mask[:keep]


class Pi05Policy(ChunkPolicy):
    """A loaded pi0.5 (FP or quantized) with its processing; predict() returns one chunk."""

    family = 'pi05'
    config_class = Pi05Config
    model_class = Pi05Model
    state_key = STATE_KEY
    action_key = ACTION_KEY

    def __init__(self, model: Pi05Model, normalizers: dict, tokenizer_path: Optional[str] = None,
                 device: str = 'cpu', source: str = '', dtype: str = 'float32',
                 backend: str = 'reference', cuda_graph: bool = False,
                 fused_pointwise: bool = False):
        super().__init__(model, normalizers, device, source, dtype, backend, cuda_graph)
        self.model.use_fused_pointwise(fused_pointwise)
        self.config: Pi05Config = model.config
        self.tokenizer = (PromptTokenizer(tokenizer_path, self.config.tokenizer_max_length)
                          if tokenizer_path else None)
        self.tokenizer_path = tokenizer_path

    @classmethod
    def _load_checkpoint(cls, path: str, device: str, **options) -> 'Pi05Policy':
        model, _, normalizers, tokenizer = load_lerobot_checkpoint(path)
        return cls(model, normalizers, tokenizer, device, source=path, **options)

    @classmethod
    def _normalizer(cls, entry: dict) -> Normalizer:
        return Normalizer(entry['mode'], entry['stats'])

    @classmethod
    def _artifact_processing(cls, path: str, manifest: dict) -> Optional[str]:
        cls._refuse_unlisted(path, manifest, lambda name: name == TOKENIZER_FILE)
        if TOKENIZER_FILE in manifest['files']:
            return artifact_file(path, TOKENIZER_FILE)
        return None

    def extra_files(self) -> dict:
        """Files to carry into an artifact (the tokenizer)."""
        return {TOKENIZER_FILE: self.tokenizer_path} if self.tokenizer_path else {}

    @staticmethod
    def image_transform(config: Pi05Config):
        """Resize-with-pad to the model's square size (runtime.ChunkPolicy.image_transform)."""
        return functools.partial(shrink_image, size=config.vision.image_size)

    # -- inputs -------------------------------------------------------------------------------

    def prompt(self, instruction: str, state) -> PromptTokens:
        """
        Return the prompt tokens for an instruction and the raw state.

        The whole state is always in the prompt; a too long instruction is cut to fit the
        token budget and PromptTokens.note says so (callers should report it).
        """
        try:
            return fit_prompt(self.tokenizer, instruction or '',
                              self.normalized_state(self.check_state(state)))
        except ObservationError:
            raise
        except ValueError as error:
            raise ObservationError(str(error)) from None

    def check_tokens(self, tokens, token_mask) -> tuple:
        """Return tokens int64 [L] and token_mask bool [L] (padding trimmed), or refuse them."""
        return trim_padding(*self.check_token_ids(tokens, token_mask, self.config.vocab_size))

    def check_observation(self, images, state=None, instruction=None, tokens=None,
                          token_mask=None, noise=None, present=None) -> tuple:
        """
        Check a whole observation before any model work; ObservationError names what is wrong.

        Returns (images, present, tokens, token_mask, noise) ready for the model: tokens from
        the instruction and state when no tokens are given. A given state is checked even
        when tokens carry the prompt (a NaN state means the robot's readings are broken).
        """
        images = self.check_images(images)
        present = self.check_present(present, len(images))
        if state is not None:
            state = self.check_state(state)
        if tokens is None:
            if state is None:
                raise ObservationError('give tokens, or an instruction and the state')
            tokens, token_mask, _ = self.prompt(self.check_instruction(instruction), state)
        tokens, token_mask = self.check_tokens(tokens, token_mask)
        return images, present, tokens, token_mask, self.check_noise(noise)

    # -- inference ----------------------------------------------------------------------------

    def model_call(self, images: Sequence[np.ndarray], state=None,
                   instruction: Optional[str] = None, tokens: Optional[np.ndarray] = None,
                   token_mask: Optional[np.ndarray] = None, noise: Optional[np.ndarray] = None,
                   present: Optional[Sequence[bool]] = None) -> dict:
        """
        Return the model's inputs for one observation (check_observation, then preprocessing).

        The one way an observation becomes a Pi05Model call (predict, calibration, evaluation):
        {'images', 'image_masks', 'tokens', 'token_masks', 'noise'} as batch-1 tensors on the
        policy's device, in the order Pi05Model.sample_actions takes them.
        """
        images, present, tokens, token_mask, noise = self.check_observation(
            images, state, instruction, tokens, token_mask, noise, present)
        device = self.device
        image_list, masks = prepare_images(images, present, self.config.vision.image_size,
                                           device)
        return {'images': image_list, 'image_masks': masks,
                'tokens': torch.from_numpy(tokens)[None].to(device),
                'token_masks': torch.from_numpy(token_mask)[None].to(device),
                'noise': torch.from_numpy(noise)[None].to(device)}
