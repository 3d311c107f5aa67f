# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Recipes: a quantization scheme as data (one preset per method of the ablation table)."""

from dataclasses import asdict, dataclass, field, fields, replace
import re
from typing import Optional

from omegaq_ros.quant.activations import ACT_CLIPS, ACT_MODES
from omegaq_ros.quant.rotation import ROTATIONS
import yaml

WEIGHT_SCALES = ('group', 'two_level')


@dataclass(frozen=True)
class Recipe:
    """
    Everything quantize() needs to know; every field has the default of the omega preset.

    Scope: a linear named N is quantized when some `include` regex matches N (re.search) and
    no `exclude` regex does. Everything else stays in floating point.
    """

    name: str = 'omega'
    quantize: bool = True                    # False: the FP reference ("fp" preset)
    rotation: str = 'composite'              # rotation.ROTATIONS: none|hadamard|svd|composite
    zigzag: bool = True
    zigzag_smoothing: float = 0.15
    output_rotation: bool = False
    share_input_rotation: bool = False       # True: one rotation per input (q/k/v, gate/up)
    smoothquant_alpha: Optional[float] = None
    weight_method: str = 'gptq'              # gptq | rtn
    weight_group: int = 128
    gptq_damp: float = 0.01
    gptq_block: int = 128
    gptq_act_order: bool = False
    # group: one fp16 scale per weight group; two_level: each a multiple 1..16 of a per-row unit
    # (weights.scale_units), so the GPU GEMM of a per-token act mode sums in integers.
    weight_scales: str = 'group'
    weight_scales_by_scope: tuple = ()       # {regex: weight_scales}, as act_mode_by_scope
    act_mode: str = 'static_channel'         # see activations.ACT_MODES
    # {regex: mode}: the linears a regex matches (the first that does) take that mode instead
    # (per-token scales for the prefix's language layers, 64-group scales in the expert).
    act_mode_by_scope: tuple = ()
    act_percentile: float = 99.9
    act_clip: str = 'percentile'             # percentile | mse (static tables)
    per_step: bool = True                    # one table row per denoising step where seen
    calib_tokens_per_call: int = 1024        # random tokens per forward kept for percentiles
    calib_max_tokens: int = 8192             # per layer and step
    include: tuple = ('.*',)
    exclude: tuple = ()
    seed: int = 0
    description: str = field(default='', compare=False)

    def __post_init__(self):
        """Refuse unknown choices early, naming the field."""
        checks = {
            'rotation': (self.rotation, tuple(ROTATIONS)),
            'weight_method': (self.weight_method, ('gptq', 'rtn')),
            'act_mode': (self.act_mode, ACT_MODES),
            'act_clip': (self.act_clip, ACT_CLIPS),
            'weight_scales': (self.weight_scales, WEIGHT_SCALES),
        }
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"recipe field '{key}' must be one of {'|'.join(allowed)}, "
                                 f"got '{value}'")
        for key, allowed in (('act_mode_by_scope', ACT_MODES),
                             ('weight_scales_by_scope', WEIGHT_SCALES)):
            scoped = getattr(self, key)
            scoped = tuple((scoped or {}).items()) if isinstance(scoped, dict) else tuple(
                tuple(pair) for pair in scoped)
            for pattern, choice in scoped:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as error:
                    raise ValueError(f"recipe field '{key}': {pattern!r} is not a regular "
                                     f'expression ({error})') from None
                if choice not in allowed:
                    raise ValueError(f"recipe field '{key}': {pattern!r} maps to "
                                     f"'{choice}', not one of {'|'.join(allowed)}")
            object.__setattr__(self, key, scoped)
        for key in ('include', 'exclude'):
            patterns = getattr(self, key)
            # One regex given as a string (exclude=DiT on a command line) is one pattern, not
            # one pattern per character.
            patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns or ())
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as error:
                    raise ValueError(f"recipe field '{key}': {pattern!r} is not a regular "
                                     f'expression ({error})') from None
            object.__setattr__(self, key, patterns)

    @staticmethod
    def preset(name: str, **overrides) -> 'Recipe':
        """One of PRESETS, with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown recipe preset '{name}'; known: {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    @staticmethod
    def from_dict(data: dict) -> 'Recipe':
        """Build from a mapping; `preset: NAME` starts from that preset."""
        data = dict(data)
        known = {f.name for f in fields(Recipe)} | {'preset'}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown recipe fields: {unknown}')
        base = data.pop('preset', None)
        if base is not None:
            return Recipe.preset(base, **data)
        return Recipe(**data)

    @staticmethod
    def from_yaml(path: str, scope: Optional[dict] = None) -> 'Recipe':
        """
        Load a recipe file (a mapping of Recipe fields, optionally `preset:`).

        scope: {'include': [...], 'exclude': [...]} for a file that names no `include`, so a
        file written for one model family needs only the fields it changes.
        """
        with open(path) as stream:
            data = yaml.safe_load(stream)
        if not isinstance(data, dict):
            raise ValueError('a recipe file must hold a mapping of Recipe fields')
        if scope is not None and 'include' not in data:
            data = {'include': scope['include'], 'exclude': scope['exclude'], **data}
        return Recipe.from_dict(data)

    def to_dict(self) -> dict:
        """Plain JSON/YAML-ready dict."""
        data = asdict(self)
        data['include'] = list(self.include)
        data['exclude'] = list(self.exclude)
        data['act_mode_by_scope'] = dict(self.act_mode_by_scope)
        data['weight_scales_by_scope'] = dict(self.weight_scales_by_scope)
        return data

    def for_layer(self, module_name: str) -> 'Recipe':
        """Return this recipe with the act_mode and weight_scales of the linear module_name."""
        chosen = {}
        for key, scoped in (('act_mode', self.act_mode_by_scope),
                            ('weight_scales', self.weight_scales_by_scope)):
            for pattern, choice in scoped:
                if re.search(pattern, module_name):
                    if choice != getattr(self, key):
                        chosen[key] = choice
                    break
        return replace(self, **chosen) if chosen else self

    def selects(self, module_name: str) -> bool:
        """Whether the linear called module_name is in the quantized scope."""
        return (self.quantize
                and any(re.search(p, module_name) for p in self.include)
                and not any(re.search(p, module_name) for p in self.exclude))


_BASELINE = {'rotation': 'none', 'zigzag': False, 'weight_method': 'rtn',
             'act_mode': 'dynamic_token', 'per_step': False}

PRESETS = {
    'fp': Recipe(name='fp', quantize=False, description='no quantization (reference)'),
    'rtn': Recipe(name='rtn', **_BASELINE,
                  description='W4A4 round-to-nearest, no rotation, per-token activations'),
    'smoothquant': Recipe(name='smoothquant', **_BASELINE, smoothquant_alpha=0.5,
                          description='SmoothQuant (alpha 0.5) migration, then RTN W4A4'),
    'hadamard': Recipe(name='hadamard', **{**_BASELINE, 'rotation': 'hadamard'},
                       description='block Hadamard(64) rotation only, RTN W4A4'),
    'svd': Recipe(name='svd', **{**_BASELINE, 'rotation': 'svd'},
                  description='block SVD rotation only (QuantVLA-like), RTN W4A4'),
    'omega': Recipe(name='omega', description='composite SVD x Hadamard + zigzag + GPTQ + '
                    'per-step per-channel static activation scales (paper-faithful)'),
    'omega-nostep': Recipe(name='omega-nostep', per_step=False,
                           description='omega with one static table for all steps'),
    'omega-group': Recipe(name='omega-group', act_mode='static_group',
                          description='omega with per-step x per-64-group static scales '
                          '(integer-GEMM compatible)'),
    'omega-dynamic': Recipe(name='omega-dynamic', act_mode='dynamic_group', per_step=False,
                            description='omega with dynamic per-token x per-64-group scales'),
    # The language model's layers (thousands of rows, once per chunk) with one GEMM scale per
    # token and two-level weight scales (their GEMMs run on int8-widened weights); the
    # few-row layers (the action expert, the DiT) keep per-64-group scales, where a per-token
    # scale needs a second launch.
    'omega-fast': Recipe(name='omega-fast', act_mode='dynamic_group', per_step=False,
                         act_mode_by_scope={'language_model': 'dynamic_two_level'},
                         weight_scales_by_scope={'language_model': 'two_level'},
                         description='omega-dynamic with two-level activation and weight '
                         'scales in the language model (the GPU speed recipe)'),
}
