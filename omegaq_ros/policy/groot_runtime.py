# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The GR00T N1.5 policy wrapper: load a checkpoint and turn observations into action chunks.

The same surface as runtime.Pi05Policy where the models agree (load, predict, model_call,
the input checks with errors that name the expected shapes); what differs: the state is an
input token rather than part of the prompt (so it is always required), the prompt holds the
images' context tokens, every camera must be present, and the embodiment is chosen by name.
ROS-free.
"""

import os
from typing import Dict, Optional, Sequence

import numpy as np
from omegaq_ros.policy.groot_checkpoint import load_groot_checkpoint
from omegaq_ros.policy.groot_config import GrootConfig
from omegaq_ros.policy.groot_model import GrootModel
from omegaq_ros.policy.groot_processing import (EagleProcessor, image_tiles, MinMaxNormalizer,
                                                pad_state, ProcessorError)
from omegaq_ros.policy.pi05_processing import PromptTokens
from omegaq_ros.policy.runtime import (_array, _describe, DTYPES, normalization_manifest,
                                       ObservationError, set_backend)
from omegaq_ros.quant import ArtifactError, load_artifact, QuantLinear, read_manifest
import torch

EAGLE_PREFIX = 'eagle.'        # the Eagle processor files inside an artifact


class GrootPolicy:
    """A loaded GR00T N1.5 with its processing; predict() returns one chunk."""

    family = 'groot'

    def __init__(self, model: GrootModel, normalizers: Dict[str, MinMaxNormalizer],
                 processor: Optional[EagleProcessor] = None, device: str = 'cpu',
                 source: str = '', dtype: str = 'float32', backend: str = 'reference',
                 cuda_graph: bool = False, fused_pointwise: bool = False):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {'|'.join(DTYPES)}, got '{dtype}'")
        self.model = model.to(device).eval()
        self.model.set_compute_dtype(DTYPES[dtype])
        self.backend_summary = set_backend(self.model, backend)
        # CUDA graphs and compiled pointwise kernels are pi0.5-only so far: GR00T runs eagerly
        # (cuda_graph and fused_pointwise are accepted so one set of options serves both).
        self.cuda_graph = False
        self.config: GrootConfig = model.config
        self.normalizers = normalizers
        self.processor = processor
        self.device = torch.device(device)
        self.source = source
        self.quantized = any(isinstance(m, QuantLinear) for m in self.model.modules())
        self.model.prepare_steps(self.config.num_steps)

    @staticmethod
    def load(path: str, device: str = 'cpu', embodiment: Optional[str] = None,
             **options) -> 'GrootPolicy':
        """Load a GR00T N1.5 checkpoint or omegaq artifact (options as for Pi05Policy.load)."""
        if os.path.isfile(os.path.join(path, 'omegaq.json')):
            return GrootPolicy._load_artifact(path, device, embodiment, **options)
        model, _, normalizers, processor = load_groot_checkpoint(path, embodiment)
        return GrootPolicy(model, normalizers, processor, device, source=path, **options)

    @staticmethod
    def _load_artifact(path: str, device: str, embodiment: Optional[str],
                       **options) -> 'GrootPolicy':
        manifest = read_manifest(path)        # its own sha256 covers extra (normalization)
        extra = manifest['extra']
        if extra.get('model_family') != 'groot':
            raise ArtifactError(f"{path}: artifact model family is '{extra.get('model_family')}'"
                                ", expected 'groot'")
        try:
            config = GrootConfig.from_dict(extra['groot_config'])
            normalizers = {modality: MinMaxNormalizer(item['stats'])
                           for modality, item in extra['normalization'].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ArtifactError(f"{path}: the manifest's groot entries are malformed "
                                f'({type(error).__name__}: {error})') from None
        if set(normalizers) != {'state', 'action'}:
            raise ArtifactError(f'{path}: the manifest needs state and action statistics, has '
                                f'{sorted(normalizers)}')
        if embodiment is not None and embodiment != config.embodiment:
            raise ArtifactError(f"{path}: the artifact holds embodiment '{config.embodiment}', "
                                f"not '{embodiment}'")
        with torch.device('meta'):
            skeleton = GrootModel(config)
        model = load_artifact(path, skeleton)   # checks every file the manifest lists
        unlisted = sorted(f for f in os.listdir(path)
                          if f.startswith(EAGLE_PREFIX) and f not in manifest['files'])
        if unlisted:
            raise ArtifactError(f'{path}: {unlisted} are not listed in the manifest, so they '
                                'have no checksum; refused rather than used unchecked')
        processor = None
        if EAGLE_PREFIX + 'chat_template.json' in manifest['files']:
            try:
                processor = EagleProcessor(path, EAGLE_PREFIX)
            except ProcessorError as error:
                raise ArtifactError(f'{path}: {error}') from None
        return GrootPolicy(model, normalizers, processor, device, source=path, **options)

    def artifact_extra(self) -> dict:
        """Return what save_artifact needs in the manifest to rebuild this policy."""
        return {
            'model_family': 'groot',
            'groot_config': self.config.to_dict(),
            'normalization': normalization_manifest(self.normalizers),
        }

    def extra_files(self) -> dict:
        """Files to carry into an artifact: the Eagle processor files, as `eagle.<name>`."""
        if self.processor is None:
            return {}
        return {EAGLE_PREFIX + name: file for name, file in self.processor.files.items()}

    # -- inputs -------------------------------------------------------------------------------

    def check_images(self, images: Sequence[np.ndarray], present=None) -> list:
        """Refuse a wrong camera count, dtype or shape, or a missing camera."""
        cameras = self.config.cameras
        if isinstance(images, (str, bytes)) or not hasattr(images, '__len__') or \
                (isinstance(images, np.ndarray) and images.ndim == 0):
            raise ObservationError(f'expected a sequence of {len(cameras)} images '
                                   f'{list(cameras)}, got {_describe(images)}')
        if len(images) != len(cameras):
            raise ObservationError(f'expected {len(cameras)} cameras {list(cameras)}, '
                                   f'got {len(images)}')
        if present is not None and not np.asarray(present, dtype=bool).all():
            raise ObservationError('GR00T N1.5 has no input for a missing camera: every one of '
                                   f'{list(cameras)} must be present')
        checked = []
        for name, image in zip(cameras, images):
            image = _array(image, f"camera '{name}'")
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ObservationError(f"camera '{name}': expected uint8 [H, W, 3] RGB, got "
                                       f'{image.dtype} {list(image.shape)}')
            if min(image.shape[:2]) < 8:
                raise ObservationError(f"camera '{name}': image {list(image.shape)} is too small")
            checked.append(image)
        return checked

    def check_state(self, state) -> np.ndarray:
        """Return the state as float32 [state_dim], or refuse it."""
        if state is None:
            raise ObservationError(f'GR00T needs the state: float32 [{self.config.state_dim}]')
        state = _array(state, 'state')
        if state.dtype.kind not in 'fiu' or state.shape != (self.config.state_dim,):
            raise ObservationError(f'expected state float32 [{self.config.state_dim}], got '
                                   f'{_describe(state)}')
        with np.errstate(over='ignore', invalid='ignore'):
            state = state.astype(np.float32)
        if not np.isfinite(state).all():
            raise ObservationError('state contains NaN or inf (or values beyond float32)')
        return state

    def check_tokens(self, tokens, token_mask, instruction) -> tuple:
        """Return the prompt ids int64 [L] and mask bool [L], from tokens or the instruction."""
        c = self.config
        if tokens is None:
            if self.processor is None:
                raise ObservationError('this checkpoint has no eagle/ processor files; give '
                                       'tokens (the whole prompt, image tokens included)')
            if instruction is not None and not isinstance(instruction, str):
                raise ObservationError(f'expected the instruction as a str, got '
                                       f'{_describe(instruction)}')
            tokens = self.processor.encode(instruction or '', len(c.cameras))
        tokens = _array(tokens, 'tokens')
        if tokens.dtype.kind not in 'iu' or tokens.ndim != 1 or tokens.size == 0:
            raise ObservationError(f'expected tokens: integer ids [L] with L >= 1, got '
                                   f'{_describe(tokens)}')
        if tokens.min() < 0 or tokens.max() >= c.language.vocab_size:
            raise ObservationError(f'token ids must lie in [0, {c.language.vocab_size}), got '
                                   f'[{tokens.min()}, {tokens.max()}]')
        images = int((tokens == c.image_token_index).sum())
        if images != len(c.cameras) * c.tokens_per_image:
            raise ObservationError(f'the prompt holds {images} image tokens (id '
                                   f'{c.image_token_index}); {len(c.cameras)} cameras need '
                                   f'{len(c.cameras) * c.tokens_per_image}')
        if token_mask is None:
            token_mask = np.ones(tokens.shape, dtype=bool)
        token_mask = _array(token_mask, 'token_mask')
        if token_mask.shape != tokens.shape or token_mask.dtype.kind not in 'biu':
            raise ObservationError(f'expected token_mask: bool {list(tokens.shape)} like '
                                   f'tokens, got {_describe(token_mask)}')
        return tokens.astype(np.int64), token_mask.astype(bool)

    def check_noise(self, noise) -> np.ndarray:
        """Return the noise as float32 [horizon, max_action_dim] (drawn if None), or refuse it."""
        shape = (self.config.horizon, self.config.max_action_dim)
        if noise is None:
            return np.random.default_rng().standard_normal(shape).astype(np.float32)
        noise = _array(noise, 'noise')
        if noise.dtype.kind not in 'fiu' or noise.shape != shape:
            raise ObservationError(f'expected noise float32 {list(shape)}, got '
                                   f'{_describe(noise)}')
        noise = noise.astype(np.float32)
        if not np.isfinite(noise).all():
            raise ObservationError('noise contains NaN or inf')
        return noise

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
        normalized = self.normalizers['state'].normalize(state)
        device = self.device
        return {'pixel_values': pixels.to(device),
                'input_ids': torch.from_numpy(tokens)[None].to(device),
                'token_masks': torch.from_numpy(token_mask)[None].to(device),
                'state': torch.from_numpy(pad_state(normalized, self.config.max_state_dim))[None]
                .to(device),
                'noise': torch.from_numpy(noise)[None].to(device)}

    def predict(self, images: Sequence[np.ndarray], state=None, instruction: Optional[str] = None,
                tokens: Optional[np.ndarray] = None, token_mask: Optional[np.ndarray] = None,
                noise: Optional[np.ndarray] = None, present: Optional[Sequence[bool]] = None,
                normalized: bool = False) -> np.ndarray:
        """
        Return one chunk of actions [horizon, action_dim] (unnormalized unless normalized).

        images: uint8 [H, W, 3] RGB per camera, in config.cameras order; state [state_dim]
        (raw units); an instruction (needs the eagle/ files) or the prompt's tokens; noise
        [horizon, 32] makes runs reproducible.
        """
        call = self.model_call(images, state, instruction, tokens, token_mask, noise, present)
        with torch.no_grad():
            actions = self.model.sample_actions(*call.values())
        actions = actions[0, :, :self.config.action_dim].float().cpu().numpy()
        if normalized:
            return actions
        return self.normalizers['action'].unnormalize(actions)
