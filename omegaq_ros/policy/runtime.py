# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The policy wrapper: load a pi0.5 checkpoint or W4A4 artifact and turn observations into chunks.

Everything a caller (the ROS policy node, the evaluation, omegaq-predict) needs: input checks
with errors that name the expected shapes, image and state preprocessing, the prompt, the
sampler, unnormalization. ROS-free.
"""

import os
from typing import Dict, Optional, Sequence

import numpy as np
from omegaq_ros.policy.checkpoint import (ACTION_KEY, load_lerobot_checkpoint, STATE_KEY,
                                          TOKENIZER_FILE)
from omegaq_ros.policy.graphed import StaticChunkSampler
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import (fit_prompt, Normalizer, prepare_images,
                                               PromptTokenizer, PromptTokens)
from omegaq_ros.quant import ArtifactError, load_artifact, QuantLinear, read_manifest
from omegaq_ros.quant.artifact import artifact_file
import torch

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
BACKENDS = ('reference', 'triton')


def set_backend(model: torch.nn.Module, backend: str, fuse: bool = True) -> dict:
    """
    Select the QuantLinear backend of every quantized layer ('reference' or 'triton').

    With triton and fuse, the model's SIBLING_LINEARS (q/k/v, gate/up) run as one quantize
    and one GEMM launch per set (kernels.FusedLinears); the arithmetic per layer is the same.
    Returns what runs where: quantized layers, those on integer kernels, those the backend
    runs with the reference arithmetic (activation modes without an integer GEMM), fused sets.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'reference' or 'triton', got '{backend}'")
    from omegaq_ros import kernels
    kernels.unfuse(model)
    groups, skipped = [], []
    if backend == 'triton':
        kernels.register()
        if fuse:
            groups, skipped = kernels.fuse_siblings(model, getattr(model, 'SIBLING_LINEARS', ()))
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    for layer in layers:
        layer.backend = backend
        if backend != 'reference':
            layer.clear_caches()          # the reference arithmetic's fp32 copies
    fast = [m for m in layers if backend == 'triton' and m.act_mode in kernels.INTEGER_MODES]
    summary = {'backend': backend, 'quantized_layers': len(layers),
               'integer_kernels': len(fast), 'reference_arithmetic': len(layers) - len(fast),
               'fused_sets': len(groups), 'unfused_sets': len(skipped)}
    modes = sorted({m.act_mode for m in layers if m not in fast})
    text = (f'{backend} backend: {len(fast)} of {len(layers)} quantized layers on integer '
            f'kernels ({len(groups)} fused q/k/v or gate/up sets)')
    if backend == 'triton' and modes:
        text += (f'; {len(layers) - len(fast)} run the reference arithmetic (activation modes '
                 f'{" ".join(modes)} have no integer GEMM: quantize with omega-dynamic or '
                 'omega-group for the fast path)')
    summary['text'] = text
    return summary


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


def policy_options(device: str = 'auto', dtype: str = 'auto', backend: str = 'auto',
                   cuda_graph: bool = True, fused_pointwise: bool = True) -> dict:
    """
    Resolve the device choices of a command or node into Pi05Policy.load's options.

    'auto' device is CUDA where it is available; 'auto' dtype is bfloat16 on CUDA and float32
    on the CPU; 'auto' backend is triton on CUDA (where triton imports) and reference on the
    CPU. cuda_graph and fused_pointwise apply on CUDA only (the CPU runs eagerly). So the fast
    path is the default wherever a GPU is. Returns the options with 'device' and a one-line
    'text' that says what runs, for start-up logs.
    """
    from omegaq_ros.kernels import triton_available
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = torch.device(device).type == 'cuda'
    if dtype == 'auto':
        dtype = 'bfloat16' if cuda else 'float32'
    if backend == 'auto':
        backend = 'triton' if cuda and triton_available() else 'reference'
    options = {'device': device, 'dtype': dtype, 'backend': backend,
               'cuda_graph': bool(cuda_graph) and cuda,
               'fused_pointwise': bool(fused_pointwise) and cuda}
    extras = [name for name, on in (('CUDA graphs', options['cuda_graph']),
                                    ('fused pointwise kernels', options['fused_pointwise']))
              if on]
    options['text'] = (f"{'GPU' if cuda else 'CPU'} path on {device}: {dtype} towers, {backend} "
                       f"W4A4 backend, {', '.join(extras) if extras else 'eager'}"
                       + (' (compiled on the first chunk)' if options['fused_pointwise'] else ''))
    return options


class ObservationError(ValueError):
    """The observation does not match what the policy was trained on."""


def _describe(value) -> str:
    """Say what arrived, for error messages: dtype and shape, or the type."""
    if isinstance(value, np.ndarray):
        return f'{value.dtype} {list(value.shape)}'
    return type(value).__name__


def _array(value, what: str) -> np.ndarray:
    """Return value as an ndarray; ragged or unconvertible input is an ObservationError."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ObservationError(f'{what}: not an array ({error})') from None
    if array.dtype.kind in 'OV':
        raise ObservationError(f'{what}: expected numbers, got {_describe(array)}')
    return array


class Pi05Policy:
    """A loaded pi0.5 (FP or quantized) with its processing; predict() returns one chunk."""

    def __init__(self, model: Pi05Model, normalizers: Dict[str, Normalizer],
                 tokenizer_path: Optional[str] = None, device: str = 'cpu', source: str = '',
                 dtype: str = 'float32', backend: str = 'reference', cuda_graph: bool = False,
                 fused_pointwise: bool = False):
        self.model = model.to(device).eval()
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {'|'.join(DTYPES)}, got '{dtype}'")
        self.model.set_compute_dtype(DTYPES[dtype])
        self.model.use_fused_pointwise(fused_pointwise)
        self.backend_summary = set_backend(self.model, backend)
        if cuda_graph and torch.device(device).type != 'cuda':
            raise ValueError(f'cuda_graph needs a CUDA device, got {device}')
        if backend == 'triton' and torch.device(device).type != 'cuda' and \
                os.environ.get('TRITON_INTERPRET', '0') != '1':
            raise ValueError(f"backend 'triton' needs a CUDA device (or TRITON_INTERPRET=1 "
                             f'to interpret the kernels on the CPU), got {device}')
        self.cuda_graph = cuda_graph
        self._samplers = {}
        self.config: Pi05Config = model.config
        self.normalizers = normalizers
        self.tokenizer = (PromptTokenizer(tokenizer_path, self.config.tokenizer_max_length)
                          if tokenizer_path else None)
        self.tokenizer_path = tokenizer_path
        self.device = torch.device(device)
        self.source = source
        self.quantized = hasattr(model, 'omegaq_summary') and bool(
            model.omegaq_summary.get('layers'))
        self.model.prepare_steps(self.config.num_steps)

    @staticmethod
    def load(path: str, device: str = 'cpu', **options) -> 'Pi05Policy':
        """
        Load a LeRobot pi05 checkpoint directory or an omegaq artifact directory.

        options: dtype ('float32' | 'bfloat16' | 'float16' for the towers), backend of the
        QuantLinear layers ('reference' | 'triton'), cuda_graph (replay the prefix and the K
        steps as CUDA graphs; CUDA only), fused_pointwise (norms, RoPE, residuals and GeGLU
        through torch.compile; compiled on first use). policy_options() resolves 'auto'.
        """
        if os.path.isfile(os.path.join(path, 'omegaq.json')):
            return Pi05Policy._load_artifact(path, device, **options)
        model, _, normalizers, tokenizer = load_lerobot_checkpoint(path)
        return Pi05Policy(model, normalizers, tokenizer, device, source=path, **options)

    @staticmethod
    def _load_artifact(path: str, device: str, **options) -> 'Pi05Policy':
        manifest = read_manifest(path)        # its own sha256 covers extra (normalization)
        extra = manifest['extra']
        if extra.get('model_family') != 'pi05':
            raise ValueError(f"{path}: artifact model family is '{extra.get('model_family')}', "
                             "expected 'pi05'")
        try:
            config = Pi05Config.from_dict(extra['pi05_config'])
            normalizers = {feature: Normalizer(item['mode'], item['stats'])
                           for feature, item in extra.get('normalization', {}).items()}
        except (KeyError, TypeError, AttributeError) as error:
            raise ArtifactError(f"{path}: the manifest's pi05 entries are malformed "
                                f'({type(error).__name__}: {error})') from error
        with torch.device('meta'):
            skeleton = Pi05Model(config)
        model = load_artifact(path, skeleton)   # checks every file the manifest lists
        tokenizer = None
        if TOKENIZER_FILE in manifest['files']:
            tokenizer = artifact_file(path, TOKENIZER_FILE)
        elif os.path.exists(os.path.join(path, TOKENIZER_FILE)):
            raise ArtifactError(f'{path}: {TOKENIZER_FILE} is not listed in the manifest, so it '
                                'has no checksum; refused rather than used unchecked')
        return Pi05Policy(model, normalizers, tokenizer, device, source=path, **options)

    def artifact_extra(self) -> dict:
        """Return what save_artifact needs in the manifest to rebuild this policy."""
        return {
            'model_family': 'pi05',
            'pi05_config': self.config.to_dict(),
            'normalization': normalization_manifest(self.normalizers),
        }

    def extra_files(self) -> dict:
        """Files to carry into an artifact (the tokenizer)."""
        return {TOKENIZER_FILE: self.tokenizer_path} if self.tokenizer_path else {}

    # -- inputs -------------------------------------------------------------------------------

    def check_images(self, images: Sequence[np.ndarray]):
        """Refuse a wrong camera count, dtype or shape, naming what was expected."""
        cameras = self.config.cameras
        if isinstance(images, (str, bytes)) or not hasattr(images, '__len__') or \
                (isinstance(images, np.ndarray) and images.ndim == 0):
            raise ObservationError(f'expected a sequence of {len(cameras)} images '
                                   f'{list(cameras)}, got {_describe(images)}')
        if len(images) != len(cameras):
            raise ObservationError(f'expected {len(cameras)} cameras {list(cameras)}, '
                                   f'got {len(images)}')
        for name, image in zip(cameras, images):
            image = _array(image, f"camera '{name}'")
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ObservationError(f"camera '{name}': expected uint8 [H, W, 3] RGB, got "
                                       f'{image.dtype} {list(image.shape)}')
            if min(image.shape[:2]) < 8:
                raise ObservationError(f"camera '{name}': image {list(image.shape)} is too small")

    def check_state(self, state) -> np.ndarray:
        """Return the state as float32 [state_dim], or refuse it."""
        state = _array(state, 'state')
        if state.dtype.kind not in 'fiu':
            raise ObservationError(f'expected state float32 [{self.config.state_dim}], got '
                                   f'{_describe(state)}')
        with np.errstate(over='ignore', invalid='ignore'):   # out of float32 range -> inf
            state = state.astype(np.float32)
        if state.shape != (self.config.state_dim,):
            raise ObservationError(f'expected state of shape [{self.config.state_dim}], '
                                   f'got {list(state.shape)}')
        if not np.isfinite(state).all():
            raise ObservationError('state contains NaN or inf (or values beyond float32)')
        return state

    def normalized_state(self, state: np.ndarray) -> np.ndarray:
        """Apply the checkpoint's state normalization."""
        if STATE_KEY not in self.normalizers:
            raise ObservationError('this checkpoint has no state normalization statistics; '
                                   'give tokens directly')
        return self.normalizers[STATE_KEY].normalize(state)

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

    # -- inference ----------------------------------------------------------------------------

    def _sampler(self, images, masks, tokens, token_mask, noise) -> StaticChunkSampler:
        """Return the sampler for this prompt length (captured on first use)."""
        key = tuple(tokens.shape)
        if key not in self._samplers:
            self._samplers[key] = StaticChunkSampler(self.model, images, masks, tokens,
                                                     token_mask, noise, self.config.num_steps)
        return self._samplers[key]

    def check_tokens(self, tokens, token_mask) -> tuple:
        """Return tokens int64 [L] and token_mask bool [L] (padding trimmed), or refuse them."""
        tokens = _array(tokens, 'tokens')
        if tokens.dtype.kind not in 'iu' or tokens.ndim != 1 or tokens.size == 0:
            raise ObservationError(f'expected tokens: integer ids [L] with L >= 1, got '
                                   f'{_describe(tokens)}')
        if token_mask is None:
            token_mask = np.ones(tokens.shape, dtype=bool)
        token_mask = _array(token_mask, 'token_mask')
        if token_mask.shape != tokens.shape or token_mask.dtype.kind not in 'biu' or \
                (token_mask.dtype.kind != 'b' and not np.isin(token_mask, (0, 1)).all()):
            raise ObservationError(f'expected token_mask: bool (or 0/1) {list(tokens.shape)} '
                                   f'like tokens, got {_describe(token_mask)}')
        token_mask = token_mask.astype(bool)
        if not token_mask.any():
            raise ObservationError('token_mask marks no token as real: the prompt is empty')
        if tokens.min() < 0 or tokens.max() >= self.config.vocab_size:
            raise ObservationError(f'token ids must lie in [0, {self.config.vocab_size}), got '
                                   f'[{tokens.min()}, {tokens.max()}]')
        return trim_padding(tokens.astype(np.int64), token_mask)

    def check_noise(self, noise) -> np.ndarray:
        """Return the noise as float32 [horizon, max_action_dim] (drawn if None), or refuse it."""
        shape = (self.config.horizon, self.config.max_action_dim)
        if noise is None:
            return np.random.default_rng().standard_normal(shape).astype(np.float32)
        noise = _array(noise, 'noise')
        if noise.dtype.kind not in 'fiu' or noise.shape != shape:
            raise ObservationError(f'expected noise float32 {list(shape)}, got '
                                   f'{_describe(noise)}')
        with np.errstate(over='ignore', invalid='ignore'):
            noise = noise.astype(np.float32)
        if not np.isfinite(noise).all():
            raise ObservationError('noise contains NaN or inf (or values beyond float32)')
        return noise

    def check_observation(self, images, state=None, instruction=None, tokens=None,
                          token_mask=None, noise=None, present=None) -> tuple:
        """
        Check a whole observation before any model work; ObservationError names what is wrong.

        Returns (images, present, tokens, token_mask, noise) ready for the model: tokens from
        the instruction and state when no tokens are given. A given state is checked even
        when tokens carry the prompt (a NaN state means the robot's readings are broken).
        """
        self.check_images(images)
        if present is None:
            present = [True] * len(images)
        present = _array(present, 'present')
        if present.dtype.kind != 'b' or present.shape != (len(images),):
            raise ObservationError(f'expected present: bool [{len(images)}], got '
                                   f'{_describe(present)}')
        if state is not None:
            state = self.check_state(state)
        if tokens is None:
            if state is None:
                raise ObservationError('give tokens, or an instruction and the state')
            if instruction is not None and not isinstance(instruction, str):
                raise ObservationError(f'expected the instruction as a str, got '
                                       f'{_describe(instruction)}')
            tokens, token_mask, _ = self.prompt(instruction, state)
        tokens, token_mask = self.check_tokens(tokens, token_mask)
        return list(images), present.tolist(), tokens, token_mask, self.check_noise(noise)

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

    def predict(self, images: Sequence[np.ndarray], state=None, instruction: Optional[str] = None,
                tokens: Optional[np.ndarray] = None, token_mask: Optional[np.ndarray] = None,
                noise: Optional[np.ndarray] = None, present: Optional[Sequence[bool]] = None,
                normalized: bool = False) -> np.ndarray:
        """
        Return one chunk of actions [horizon, action_dim] (unnormalized unless normalized).

        images: uint8 [H, W, 3] RGB per camera, in config.cameras order. Either tokens (+ mask)
        or an instruction and the state (written into the prompt) must be given. noise
        [horizon, 32] makes runs reproducible.
        """
        call = self.model_call(images, state, instruction, tokens, token_mask, noise, present)
        inputs = tuple(call.values())
        if self.cuda_graph:
            actions = self._sampler(*inputs)(*inputs)
        else:
            with torch.no_grad():
                actions = self.model.sample_actions(*inputs)
        actions = actions[0, :, :self.config.action_dim].float().cpu().numpy()
        if normalized:
            return actions
        if ACTION_KEY not in self.normalizers:
            raise ObservationError('this checkpoint has no action normalization statistics; '
                                   'only normalized actions are available')
        return self.normalizers[ACTION_KEY].unnormalize(actions).astype(np.float32)


def normalization_manifest(normalizers: dict) -> dict:
    """Return {feature: {mode, stats as lists}}: how an artifact's manifest stores normalizers."""
    return {feature: {'mode': n.mode, 'stats': {k: v.tolist() for k, v in n.stats.items()}}
            for feature, n in normalizers.items()}
