# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
What every policy family's runtime shares: device and backend choices, input checks, artifacts.

ChunkPolicy is the surface the tools (the policy node, omegaq-predict, omegaq-eval, the
calibration) call, whatever the model: load a checkpoint or a W4A4 artifact, check an
observation with errors that name the expected shapes, return one unnormalized chunk. Each
family (pi05_runtime.Pi05Policy, groot_runtime.GrootPolicy) adds its prompt and
preprocessing. ROS-free.
"""

import os
import time
from typing import Dict, Optional, Sequence

import numpy as np
from omegaq_ros.policy.graphed import input_shapes, StaticChunkSampler
from omegaq_ros.quant import (ArtifactError, is_artifact, load_artifact, QuantLinear,
                              read_manifest)
from omegaq_ros.quant.linear import fold_input_permutations
import torch

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
BACKENDS = ('reference', 'triton')


def set_backend(model: torch.nn.Module, backend: str, fuse: bool = True) -> dict:
    """
    Select the QuantLinear backend of every quantized layer ('reference' or 'triton').

    With triton and fuse, the model's SIBLING_LINEARS (q/k/v, gate/up) run as one quantize
    and one GEMM launch per set (kernels.FusedLinears), and the input permutations of its
    ELEMENTWISE_CHAINS' consumers (down_proj) move into their producers' output rows, so the
    quantize kernel reads that input contiguously; the arithmetic per layer is the same.
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
        fold_input_permutations(model, getattr(model, 'ELEMENTWISE_CHAINS', ()))
        if fuse:
            groups, skipped = kernels.fuse_siblings(model, getattr(model, 'SIBLING_LINEARS', ()))
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    for layer in layers:
        layer.backend = backend
        if backend != 'reference':
            layer.clear_caches()          # the reference arithmetic's fp32 copies
    fast = [m for m in layers if backend == 'triton' and m.act_mode in kernels.INTEGER_MODES]
    fp8 = [m for m in fast if kernels.fp8_gemm_applies(m, m.weight_packed.device)]
    summary = {'backend': backend, 'quantized_layers': len(layers),
               'integer_kernels': len(fast), 'fp8_gemm': len(fp8),
               'reference_arithmetic': len(layers) - len(fast),
               'fused_sets': len(groups), 'unfused_sets': len(skipped)}
    modes = sorted({m.act_mode for m in layers if m not in fast})
    text = (f'{backend} backend: {len(fast)} of {len(layers)} quantized layers on integer '
            f'kernels ({len(groups)} fused q/k/v or gate/up sets)')
    if fp8:
        text += (f', {len(fp8)} of them with their GEMM on cuBLAS FP8 (1x128 block scales; '
                 'the integer GEMM where it fails a first-use check)')
    if backend == 'triton' and modes:
        text += (f'; {len(layers) - len(fast)} run the reference arithmetic (activation modes '
                 f'{" ".join(modes)} have no integer GEMM: quantize with omega-fast, '
                 'omega-dynamic or omega-group for the fast path)')
    summary['text'] = text
    return summary


def policy_options(device: str = 'auto', dtype: str = 'auto', backend: str = 'auto',
                   cuda_graph: bool = True, fused_pointwise: bool = True) -> dict:
    """
    Resolve the device choices of a command or node into ChunkPolicy.load's options.

    'auto' device is CUDA where it is available; 'auto' dtype is bfloat16 on CUDA and float32
    on the CPU; 'auto' backend is triton on CUDA (where triton imports) and reference on the
    CPU. cuda_graph and fused_pointwise apply on CUDA only (the CPU runs eagerly), for both
    families (the compiled pointwise kernels made a full-size GR00T chunk 15.3 -> 12.1 ms in
    BF16 and 21.5 -> 18.3 ms in W4A4 on an H100, RESULTS 9e). So the fast path is the
    default wherever a GPU is. Returns the options with 'device' and a one-line 'text'
    that says what runs, for start-up logs.
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


def describe(value) -> str:
    """Say what arrived, for error messages: dtype and shape, or the type."""
    if isinstance(value, np.ndarray):
        return f'{value.dtype} {list(value.shape)}'
    return type(value).__name__


def as_array(value, what: str) -> np.ndarray:
    """Return value as an ndarray; ragged or unconvertible input is an ObservationError."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ObservationError(f'{what}: not an array ({error})') from None
    if array.dtype.kind in 'OV':
        raise ObservationError(f'{what}: expected numbers, got {describe(array)}')
    return array


def normalization_manifest(normalizers: dict) -> dict:
    """Return {feature: {mode, stats as lists}}: how an artifact's manifest stores normalizers."""
    return {feature: {'mode': n.mode, 'stats': {k: v.tolist() for k, v in n.stats.items()}}
            for feature, n in normalizers.items()}


class ChunkPolicy:
    """
    A loaded policy (FP or quantized) with its processing; predict() returns one chunk.

    A family sets family, config_class, model_class and the names of its normalizers, and
    writes what differs: its checkpoint loader, its prompt (check_tokens, prompt) and
    model_call, the processing files an artifact carries (extra_files, _artifact_processing).
    """

    family = ''
    config_class = None
    model_class = None
    state_key = 'state'           # the normalizers' names for the state and the actions
    action_key = 'action'

    def __init__(self, model: torch.nn.Module, normalizers: Dict, device: str = 'cpu',
                 source: str = '', dtype: str = 'float32', backend: str = 'reference',
                 cuda_graph: bool = False):
        if cuda_graph and torch.device(device).type != 'cuda':
            raise ValueError(f'cuda_graph needs a CUDA device, got {device}')
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {'|'.join(DTYPES)}, got '{dtype}'")
        if backend == 'triton' and torch.device(device).type != 'cuda' and \
                os.environ.get('TRITON_INTERPRET', '0') != '1':
            raise ValueError(f"backend 'triton' needs a CUDA device (or TRITON_INTERPRET=1 "
                             f'to interpret the kernels on the CPU), got {device}')
        self.model = model.to(device).eval()
        self.model.set_compute_dtype(DTYPES[dtype])
        self.backend_summary = set_backend(self.model, backend)
        self.config = model.config
        self.normalizers = normalizers
        self.device = torch.device(device)
        self.source = source
        self.quantized = self.backend_summary['quantized_layers'] > 0
        self.model.prepare_steps(self.config.num_steps)
        self.cuda_graph = cuda_graph
        self._samplers = {}

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str, device: str = 'cpu', **options) -> 'ChunkPolicy':
        """
        Load a checkpoint directory of this family or an omegaq artifact directory.

        options: dtype ('float32' | 'bfloat16' | 'float16' for the towers), backend of the
        QuantLinear layers ('reference' | 'triton'), cuda_graph (replay each chunk as CUDA
        graphs), fused_pointwise (the norms, RoPE, gated MLPs and residuals compiled), and the
        family's own (GR00T: embodiment).
        policy_options() resolves 'auto'.
        """
        if is_artifact(path):
            return cls._load_artifact(path, device, **options)
        return cls._load_checkpoint(path, device, **options)

    @classmethod
    def _load_checkpoint(cls, path: str, device: str, **options) -> 'ChunkPolicy':
        raise NotImplementedError

    @classmethod
    def _normalizer(cls, entry: dict):
        """Return one normalizer from its manifest entry (normalization_manifest's form)."""
        raise NotImplementedError

    @classmethod
    def _check_artifact(cls, path: str, config, normalizers: dict, options: dict) -> dict:
        """Refuse an artifact that cannot serve these options; return the options for init."""
        return options

    @classmethod
    def _artifact_processing(cls, path: str, manifest: dict):
        """Return the prompt processing the artifact carries (None when it carries none)."""
        raise NotImplementedError

    @classmethod
    def _load_artifact(cls, path: str, device: str, **options) -> 'ChunkPolicy':
        manifest = read_manifest(path)        # its own sha256 covers extra (normalization)
        extra = manifest['extra']
        if extra.get('model_family') != cls.family:
            raise ArtifactError(f"{path}: artifact model family is '{extra.get('model_family')}'"
                                f", expected '{cls.family}'")
        try:
            config = cls.config_class.from_dict(extra[f'{cls.family}_config'])
            normalizers = {name: cls._normalizer(entry)
                           for name, entry in extra.get('normalization', {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ArtifactError(f"{path}: the manifest's {cls.family} entries are malformed "
                                f'({type(error).__name__}: {error})') from None
        options = cls._check_artifact(path, config, normalizers, dict(options))
        with torch.device('meta'):
            skeleton = cls.model_class(config)
        model = load_artifact(path, skeleton)   # checks every file the manifest lists
        processing = cls._artifact_processing(path, manifest)
        return cls(model, normalizers, processing, device, source=path, **options)

    @staticmethod
    def _refuse_unlisted(path: str, manifest: dict, carried) -> None:
        """Refuse processing files (carried(name) is true) that the manifest does not list."""
        unlisted = sorted(name for name in os.listdir(path)
                          if carried(name) and name not in manifest['files'])
        if unlisted:
            verb = 'is' if len(unlisted) == 1 else 'are'
            raise ArtifactError(f"{path}: {', '.join(unlisted)} {verb} not listed in the "
                                'manifest (no checksum): refused rather than used '
                                'unchecked')

    def artifact_extra(self) -> dict:
        """Return what save_artifact needs in the manifest to rebuild this policy."""
        return {'model_family': self.family,
                f'{self.family}_config': self.config.to_dict(),
                'normalization': normalization_manifest(self.normalizers)}

    def extra_files(self) -> dict:
        """Return {name in the artifact: source file} for the processing files to carry."""
        raise NotImplementedError

    @staticmethod
    def image_transform(config):
        """
        Return what brings a uint8 [H, W, 3] camera image to the model's size, as uint8.

        For stored demonstrations (training, calibration, evaluation): the runtime's own
        preprocessing then leaves such an image as it is.
        """
        raise NotImplementedError

    # -- inputs -------------------------------------------------------------------------------

    def check_images(self, images: Sequence[np.ndarray]) -> list:
        """Return the images as a list, or refuse a wrong camera count, dtype or shape."""
        cameras = self.config.cameras
        if isinstance(images, (str, bytes)) or not hasattr(images, '__len__') or \
                (isinstance(images, np.ndarray) and images.ndim == 0):
            raise ObservationError(f'expected a sequence of {len(cameras)} images '
                                   f'{list(cameras)}, got {describe(images)}')
        if len(images) != len(cameras):
            raise ObservationError(f'expected {len(cameras)} cameras {list(cameras)}, '
                                   f'got {len(images)}')
        checked = []
        for name, image in zip(cameras, images):
            image = as_array(image, f"camera '{name}'")
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ObservationError(f"camera '{name}': expected uint8 [H, W, 3] RGB, got "
                                       f'{image.dtype} {list(image.shape)}')
            if min(image.shape[:2]) < 8:
                raise ObservationError(f"camera '{name}': image {list(image.shape)} is too small")
            checked.append(image)
        return checked

    def check_present(self, present, count: int) -> list:
        """Return which cameras are present as a list of bools (all when None), or refuse it."""
        if present is None:
            return [True] * count
        present = as_array(present, 'present')
        if present.dtype.kind != 'b' or present.shape != (count,):
            raise ObservationError(f'expected present: bool [{count}], got {describe(present)}')
        return present.tolist()

    def check_state(self, state) -> np.ndarray:
        """Return the state as float32 [state_dim], or refuse it."""
        state = as_array(state, 'state')
        if state.dtype.kind not in 'fiu':
            raise ObservationError(f'expected state float32 [{self.config.state_dim}], got '
                                   f'{describe(state)}')
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
        if self.state_key not in self.normalizers:
            raise ObservationError('this checkpoint has no state normalization statistics; '
                                   'give tokens directly')
        return self.normalizers[self.state_key].normalize(state)

    def check_token_ids(self, tokens, token_mask, vocab_size: int) -> tuple:
        """Return tokens int64 [L] and token_mask bool [L], or refuse them."""
        tokens = as_array(tokens, 'tokens')
        if tokens.dtype.kind not in 'iu' or tokens.ndim != 1 or tokens.size == 0:
            raise ObservationError(f'expected tokens: integer ids [L] with L >= 1, got '
                                   f'{describe(tokens)}')
        if token_mask is None:
            token_mask = np.ones(tokens.shape, dtype=bool)
        token_mask = as_array(token_mask, 'token_mask')
        if token_mask.shape != tokens.shape or token_mask.dtype.kind not in 'biu' or \
                (token_mask.dtype.kind != 'b' and not np.isin(token_mask, (0, 1)).all()):
            raise ObservationError(f'expected token_mask: bool (or 0/1) {list(tokens.shape)} '
                                   f'like tokens, got {describe(token_mask)}')
        token_mask = token_mask.astype(bool)
        if not token_mask.any():
            raise ObservationError('token_mask marks no token as real: the prompt is empty')
        if tokens.min() < 0 or tokens.max() >= vocab_size:
            raise ObservationError(f'token ids must lie in [0, {vocab_size}), got '
                                   f'[{tokens.min()}, {tokens.max()}]')
        return tokens.astype(np.int64), token_mask

    def check_instruction(self, instruction) -> str:
        """Return the instruction ('' for None), or refuse one that is not a str."""
        if instruction is not None and not isinstance(instruction, str):
            raise ObservationError(f'expected the instruction as a str, got '
                                   f'{describe(instruction)}')
        return instruction or ''

    def check_noise(self, noise) -> np.ndarray:
        """Return the noise as float32 [horizon, max_action_dim] (drawn if None), or refuse it."""
        shape = (self.config.horizon, self.config.max_action_dim)
        if noise is None:
            return np.random.default_rng().standard_normal(shape).astype(np.float32)
        noise = as_array(noise, 'noise')
        if noise.dtype.kind not in 'fiu' or noise.shape != shape:
            raise ObservationError(f'expected noise float32 {list(shape)}, got '
                                   f'{describe(noise)}')
        with np.errstate(over='ignore', invalid='ignore'):
            noise = noise.astype(np.float32)
        if not np.isfinite(noise).all():
            raise ObservationError('noise contains NaN or inf (or values beyond float32)')
        return noise

    # -- inference ----------------------------------------------------------------------------

    def model_call(self, images: Sequence[np.ndarray], state=None,
                   instruction: Optional[str] = None, tokens: Optional[np.ndarray] = None,
                   token_mask: Optional[np.ndarray] = None, noise: Optional[np.ndarray] = None,
                   present: Optional[Sequence[bool]] = None) -> dict:
        """Return the model's inputs for one observation: batch-1 tensors, in call order."""
        raise NotImplementedError

    def sample(self, inputs: tuple) -> torch.Tensor:
        """
        Run the sampler on model_call's inputs: actions [1, horizon, max_action_dim].

        With cuda_graph, the prefix and the denoising steps replay as CUDA graphs, one set per
        input shape (prompt length), captured on its first chunk; otherwise eagerly.
        """
        if not self.cuda_graph:
            with torch.no_grad():
                return self.model.sample_actions(*inputs)
        key = input_shapes(inputs)
        if key not in self._samplers:
            self._samplers[key] = StaticChunkSampler(self.model, inputs, self.config.num_steps)
        return self._samplers[key](inputs)

    def warm_up(self, instruction: str = 'warm up') -> float:
        """
        Run one chunk on a synthetic observation (grey images, zero state); return seconds.

        On the GPU path the first chunk compiles the pointwise kernels, autotunes the prefix
        GEMMs and captures the CUDA graphs of its prompt length (tens of seconds at full
        size): a node runs this before its first real observation instead. Raises
        ValueError when the chunk is not finite (a broken checkpoint or artifact, or a
        device fault), so such a policy is refused before it could drive anything.
        """
        images = [np.full((224, 224, 3), 128, np.uint8) for _ in self.config.cameras]
        state = np.zeros(self.config.state_dim, np.float32)
        started = time.perf_counter()
        actions = self.predict(images, state, instruction, normalized=True)
        if not np.isfinite(actions).all():
            raise ValueError('the policy returned NaN/inf actions on a synthetic observation')
        return time.perf_counter() - started

    def predict(self, images: Sequence[np.ndarray], state=None, instruction: Optional[str] = None,
                tokens: Optional[np.ndarray] = None, token_mask: Optional[np.ndarray] = None,
                noise: Optional[np.ndarray] = None, present: Optional[Sequence[bool]] = None,
                normalized: bool = False) -> np.ndarray:
        """
        Return one chunk of actions [horizon, action_dim] (unnormalized unless normalized).

        images: uint8 [H, W, 3] RGB per camera, in config.cameras order; the state in raw
        units; an instruction (the family's processing makes the prompt) or the prompt's
        tokens (+ mask); noise [horizon, max_action_dim] makes runs reproducible.
        """
        call = self.model_call(images, state, instruction, tokens, token_mask, noise, present)
        actions = self.sample(tuple(call.values()))
        actions = actions[0, :, :self.config.action_dim].float().cpu().numpy()
        if normalized:
            return actions
        if self.action_key not in self.normalizers:
            raise ObservationError('this checkpoint has no action normalization statistics; '
                                   'only normalized actions are available')
        return self.normalizers[self.action_key].unnormalize(actions).astype(np.float32)
