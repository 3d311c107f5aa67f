# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
quantize(model, calibration_batches, recipe): Omega-QVLA post-training quantization in place.

1. Scope: every nn.Linear the recipe selects (layers whose widths cannot be grouped stay FP,
   with the reason in the summary).
2. SmoothQuant presets only: one pass for per-channel input maxima, folded into the weight.
3. Input rotation per linear, built from that linear's own weight (the paper). With
   recipe.share_input_rotation, linears that read the same input tensor (q/k/v, gate/up;
   found by watching one FP forward) share one rotation built from their stacked weights,
   plus smoothing, activation table and the 4-bit input codes: one rotation stored instead
   of three and one quantize per input instead of three, for some accuracy (RESULTS §6).
4. Calibration pass(es) in FP: inputs are rotated and feed the GPTQ Hessian (one per input
   group), the per-step percentile samples for static activation tables, and the report's
   statistics. Groups are split over several passes when their Hessians would not fit
   `hessian_budget_bytes`.
5. Weights: GPTQ or MSE-RTN in the rotated basis, packed int4; nn.Linear -> QuantLinear.
The summary (calibration counts, per-layer statistics) is attached as model.omegaq_summary.
"""

import math
from typing import Iterable, Optional

from omegaq_ros.quant.activations import (ACT_GROUP, scales_from_samples, STATIC_MODES,
                                          WIDE_ACT_GROUP)
from omegaq_ros.quant.linear import QuantLinear
from omegaq_ros.quant.packing import pack_int4
from omegaq_ros.quant.recipe import Recipe
from omegaq_ros.quant.rotation import (BLOCK, BlockRotation, build_input_rotation,
                                       build_output_rotation, rotate_rows, stack_weights,
                                       store_blocks)
from omegaq_ros.quant.step_context import (calibration, current_step, denoising_step,
                                           StepContextError)
from omegaq_ros.quant.weights import gptq_quantize, rtn_quantize, scale_units
import torch
from torch import nn

REPORT_TOKENS = 512


def call_model(model: nn.Module, batch):
    """Run one calibration batch: dicts as keyword arguments, tuples/lists as positional."""
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def run_calibration(model: nn.Module, batches, hooks):
    """Run every batch through the model without gradients, then remove the hooks."""
    try:
        with torch.no_grad(), calibration():
            for batch in batches:
                call_model(model, batch)
    finally:
        for hook in hooks:
            hook.remove()


def _ratio(norms: torch.Tensor) -> dict:
    norms = norms.double()
    return {'max_min': float(norms.max() / norms.min().clamp_min(1e-12)),
            'max_median': float(norms.max() / norms.median().clamp_min(1e-12))}


class _LayerRecorder:
    """Forward pre-hook state for one target linear during a calibration pass."""

    def __init__(self, name, linear, rotation, recipe, want_hessian, generator):
        self.name = name                 # the group's first linear
        self.rotation = rotation
        self.recipe = recipe
        self.generator = generator
        self.smooth = None
        in_features = linear.in_features
        device = linear.weight.device
        self.hessian = (torch.zeros(in_features, in_features, device=device)
                        if want_hessian else None)
        self.tokens = 0
        self.calls = 0
        self.sumsq_raw = torch.zeros(in_features, dtype=torch.float64)
        self.sumsq_rot = torch.zeros(in_features, dtype=torch.float64)
        self.samples = {}            # step key -> |x_r| samples [n, in] float16 (CPU)
        self.report_x = []           # (raw inputs [n, in] fp32 CPU, step key)
        self.report_count = 0
        self.step_keys = set()

    def _subsample(self, x, limit):
        if x.shape[0] <= limit:
            return x
        pick = torch.randperm(x.shape[0], generator=self.generator)[:limit]
        return x[pick.to(x.device)]

    def __call__(self, module, args):
        x = args[0].detach()
        x = x.reshape(-1, x.shape[-1]).float()
        step = current_step()
        key = None if step is None else (step.index, step.total)
        self.step_keys.add(key)
        self.calls += 1
        self.tokens += x.shape[0]
        xs = x * self.smooth.to(x.device) if self.smooth is not None else x
        xr = self.rotation.apply(xs).float()
        self.sumsq_raw += x.double().pow(2).sum(0).cpu()
        self.sumsq_rot += xr.double().pow(2).sum(0).cpu()
        if self.hessian is not None:
            self.hessian += xr.t() @ xr
        if self.recipe.act_mode in STATIC_MODES:
            kept = self._subsample(xr.abs(), self.recipe.calib_tokens_per_call).half().cpu()
            merged = torch.cat([self.samples[key], kept]) if key in self.samples else kept
            self.samples[key] = self._subsample(merged, self.recipe.calib_max_tokens)
        if self.report_count < REPORT_TOKENS:
            kept = self._subsample(x, min(64, REPORT_TOKENS - self.report_count)).cpu()
            self.report_x.append((kept, key))
            self.report_count += kept.shape[0]


def _named_targets(model: nn.Module, recipe: Recipe):
    targets, skipped = [], {}
    for name, module in model.named_modules():
        if type(module) is not nn.Linear or not recipe.selects(name):
            continue
        reasons = []
        if module.in_features % recipe.weight_group:
            reasons.append(f'in_features {module.in_features} is not a multiple of the '
                           f'weight group {recipe.weight_group}')
        if (recipe.rotation != 'none' or recipe.for_layer(name).act_mode != 'none') and \
                module.in_features % BLOCK:
            reasons.append(f'in_features {module.in_features} is not a multiple of {BLOCK}')
        if recipe.for_layer(name).act_mode == 'dynamic_group128' and \
                module.in_features % WIDE_ACT_GROUP:
            reasons.append(f'in_features {module.in_features} is not a multiple of '
                           f'{WIDE_ACT_GROUP} (dynamic_group128)')
        if recipe.output_rotation and module.out_features % BLOCK:
            reasons.append(f'out_features {module.out_features} is not a multiple of {BLOCK}')
        if reasons:
            skipped[name] = '; '.join(reasons)
        else:
            targets.append((name, module))
    return targets, skipped


def _parent(model: nn.Module, name: str):
    parent_name, _, child = name.rpartition('.')
    return (model.get_submodule(parent_name) if parent_name else model), child


def _input_groups(model, targets, batch, share: bool):
    """
    Split targets into groups of linears that read the same input tensor (one FP forward).

    Each linear's sequence of input tensors over the batch is recorded by identity (the
    tensors are held for the pass, so no id is reused); linears with the same sequence and
    width form a group, in target order. Without `share`, every linear is its own group.
    """
    if not share:
        return [[target] for target in targets]
    seen = {name: [] for name, _ in targets}
    held = []

    def record(module, args, name):
        held.append(args[0])
        seen[name].append(id(args[0]))

    hooks = [linear.register_forward_pre_hook(lambda m, a, n=name: record(m, a, n))
             for name, linear in targets]
    run_calibration(model, [batch], hooks)
    groups = {}
    for name, linear in targets:
        key = (tuple(seen[name]), linear.in_features) if seen[name] else (name,)
        groups.setdefault(key, []).append((name, linear))
    held.clear()
    return list(groups.values())


def _smoothquant_factors(model, groups, batches, alpha):
    """Per-channel multipliers m = 1/s with s = max|x|^alpha / max|w|^(1-alpha), per group."""
    maxima = {group[0][0]: None for group in groups}
    hooks = []
    for group in groups:
        name, linear = group[0]

        def record(module, args, name=name):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(0).float().cpu()
            maxima[name] = x if maxima[name] is None else torch.maximum(maxima[name], x)
        hooks.append(linear.register_forward_pre_hook(record))
    run_calibration(model, batches, hooks)
    factors = {}
    for group in groups:
        name = group[0][0]
        if maxima[name] is None:
            raise RuntimeError(f"calibration never reached layer '{name}'")
        w_max = torch.stack([linear.weight.detach().abs().amax(0).float().cpu()
                             for _, linear in group]).amax(0).clamp_min(1e-5)
        s = (maxima[name].clamp_min(1e-5) ** alpha) / (w_max ** (1.0 - alpha))
        factors[name] = (1.0 / s).clamp(1e-4, 1e4)
    return factors


def _step_rows(recorder: _LayerRecorder, recipe: Recipe):
    """Table layout for a layer: (per_step, rows, sample groups per row)."""
    keys = recorder.step_keys
    if not keys:
        raise RuntimeError(f"calibration never reached layer '{recorder.name}'")
    stepped = {k for k in keys if k is not None}
    if stepped and None in keys:
        raise StepContextError(f"layer '{recorder.name}' ran both inside and outside the "
                               'denoising-step context during calibration')
    totals = {total for _, total in stepped}
    if len(totals) > 1:
        raise StepContextError(f"layer '{recorder.name}' saw different step counts {totals}")
    if not stepped or not recipe.per_step:
        return False, 1, [sorted(keys, key=lambda k: (-1, -1) if k is None else k)]
    total = totals.pop()
    missing = [i for i in range(total) if (i, total) not in stepped]
    if missing:
        raise StepContextError(f"layer '{recorder.name}': no calibration data for denoising "
                               f'steps {missing} of {total}')
    return True, total, [[(i, total)] for i in range(total)]


def _build_quant_linear(name, linear, recorder, recipe, smooth, owner=None):
    """Build the QuantLinear of `linear`; owner: the group's first layer when this one shares."""
    rotation = recorder.rotation
    # On the layer's device: on a GPU the rotation, GPTQ and the scale search run there.
    weight = linear.weight.detach().float()
    if smooth is not None:
        weight = weight / smooth.to(weight.device)       # x*m @ (W/m)^T == x @ W^T
    w_rot = rotation.apply_to_weight(weight)
    rot_out = build_output_rotation(w_rot) if recipe.output_rotation else None
    if rot_out is not None:
        # Stored as Q^{-1} W_r, so that y_r Q^T == x_r W_r^T for the stored (rounded) Q.
        w_rot = rotate_rows(w_rot, torch.linalg.inv(rot_out).float())
    unit = (scale_units(w_rot, recipe.weight_group) if recipe.weight_scales == 'two_level'
            else None)
    if recipe.weight_method == 'gptq':
        hessian = 2.0 * recorder.hessian / max(1, recorder.tokens)
        codes, scales = gptq_quantize(w_rot, hessian, group=recipe.weight_group,
                                      damp=recipe.gptq_damp, block=recipe.gptq_block,
                                      act_order=recipe.gptq_act_order, unit=unit)
    else:
        codes, scales = rtn_quantize(w_rot, group=recipe.weight_group, unit=unit)

    per_step, rows, groups = (_step_rows(recorder, recipe) if recipe.act_mode in STATIC_MODES
                              else (False, 1, []))
    layer = QuantLinear(
        linear.in_features, linear.out_features, name=name, act_mode=recipe.act_mode,
        per_step=per_step, weight_group=recipe.weight_group, has_bias=linear.bias is not None,
        has_smooth=smooth is not None, has_perm=rotation.perm is not None,
        has_rot_in=rotation.blocks is not None, has_rot_out=rot_out is not None,
        table_rows=rows, input_from=None if owner is None else owner.name,
        has_scale_unit=unit is not None)
    layer.weight_packed.copy_(pack_int4(codes))
    layer.weight_scale.copy_(scales)
    if unit is not None:
        layer.weight_scale_unit.copy_(unit)
    if linear.bias is not None:
        layer.bias.copy_(linear.bias.detach().float().cpu())
    if rot_out is not None:
        rot_codes, rot_scale = store_blocks(rot_out)
        layer.rot_out.copy_(rot_codes)
        layer.rot_out_scale.copy_(rot_scale)
    if owner is not None:
        layer.share_input_of(owner)
        return layer, w_rot
    if smooth is not None:
        layer.smooth.copy_(smooth)
    if rotation.perm is not None:
        layer.perm_in.copy_(rotation.perm)
    if rotation.blocks is not None:
        rot_codes, rot_scale = store_blocks(rotation.blocks)
        layer.rot_in.copy_(rot_codes)
        layer.rot_in_scale.copy_(rot_scale)
    for row, keys in enumerate(groups):
        samples = torch.cat([recorder.samples[k] for k in keys])
        layer.act_scale[row] = scales_from_samples(samples, recipe.act_mode,
                                                   recipe.act_percentile, ACT_GROUP,
                                                   recipe.act_clip)
    return layer, w_rot


def _layer_stats(linear, layer, recorder, w_rot):
    errors_num = errors_den = 0.0
    cosines = []
    with torch.no_grad():
        for x, key in recorder.report_x:
            x = x.to(linear.weight.device)
            reference = linear(x.to(linear.weight.dtype)).float()
            if key is None:
                approx = layer(x).float()
            else:
                with denoising_step(*key):
                    approx = layer(x).float()
            errors_num += float((approx - reference).pow(2).sum())
            errors_den += float(reference.pow(2).sum())
            cosines.append(torch.nn.functional.cosine_similarity(approx, reference, dim=-1))
    cosine = float(torch.cat(cosines).mean()) if cosines else math.nan
    sqnr = 10.0 * math.log10(errors_den / max(errors_num, 1e-30)) if errors_num else math.inf
    return {
        'in_features': linear.in_features,
        'out_features': linear.out_features,
        'weight_colnorm_ratio_before': _ratio(linear.weight.detach().float().norm(dim=0)),
        'weight_colnorm_ratio_after': _ratio(w_rot.norm(dim=0)),
        'act_chnorm_ratio_before': _ratio(recorder.sumsq_raw.sqrt()),
        'act_chnorm_ratio_after': _ratio(recorder.sumsq_rot.sqrt()),
        'output_sqnr_db': sqnr,
        'output_cosine': cosine,
        'calibration_tokens': recorder.tokens,
        'calibration_calls': recorder.calls,
        'steps': layer.input_owner.act_scale.shape[0] if layer.per_step else 0,
        'input_from': layer.input_from,
    }


def _passes(groups, budget_bytes, want_hessian):
    if not want_hessian:
        return [groups]
    passes, current, used = [], [], 0
    for group in groups:
        size = 4 * group[0][1].in_features ** 2
        if current and used + size > budget_bytes:
            passes.append(current)
            current, used = [], 0
        current.append(group)
        used += size
    if current:
        passes.append(current)
    return passes


def quantize(model: nn.Module, calibration_batches: Iterable, recipe: Recipe,
             hessian_budget_bytes: int = 2 << 30, progress: Optional[callable] = None):
    """
    Quantize every selected nn.Linear of model in place and return the model.

    calibration_batches: dicts (called as model(**batch)) or tuples (model(*batch)); the
    sampler's denoising_step() context, if any, is honored. progress(msg) gets status lines.
    """
    say = progress or (lambda message: None)
    batches = list(calibration_batches)
    model.eval()
    summary = {'recipe': recipe.to_dict(), 'calibration': {'batches': len(batches)},
               'layers': {}, 'skipped': {}}
    if not recipe.quantize:
        model.omegaq_summary = summary
        return model
    if not batches:
        raise ValueError('quantize needs at least one calibration batch')
    targets, skipped = _named_targets(model, recipe)
    summary['skipped'] = skipped
    if not targets:
        raise ValueError(f"recipe '{recipe.name}' selects no quantizable nn.Linear in the model")

    groups = _input_groups(model, targets, batches[0], recipe.share_input_rotation)
    summary['shared_inputs'] = {group[0][0]: [name for name, _ in group[1:]]
                                for group in groups if len(group) > 1}
    smooth = (_smoothquant_factors(model, groups, batches, recipe.smoothquant_alpha)
              if recipe.smoothquant_alpha is not None else {})
    generator = torch.Generator().manual_seed(recipe.seed)
    want_hessian = recipe.weight_method == 'gptq'
    replacements = []
    step_keys = set()
    for index, pass_groups in enumerate(_passes(groups, hessian_budget_bytes, want_hessian)):
        say(f'calibration pass {index + 1}: {sum(map(len, pass_groups))} layers, '
            f'{len(batches)} batches')
        recorders = _attach_recorders(pass_groups, recipe, smooth, want_hessian, generator)
        run_calibration(model, batches, [hook for _, hook in recorders.values()])
        for group in pass_groups:
            recorder = recorders[group[0][0]][0]
            if not recorder.calls:
                raise RuntimeError(f"calibration never reached layer '{recorder.name}'")
            replacements += _quantize_group(group, recorder, recipe, smooth.get(group[0][0]),
                                            summary['layers'], say)
            step_keys |= recorder.step_keys
            del recorder.hessian, recorder.samples
    _swap_in(model, replacements)
    steps = sorted({k[1] for k in step_keys if k is not None})
    summary['calibration'].update({
        'quantized_layers': len(replacements),
        'denoising_steps': steps[0] if steps else 0,
        'tokens': sum(v['calibration_tokens'] for v in summary['layers'].values()),
    })
    model.omegaq_summary = summary
    return model


def _group_recipe(recipe: Recipe, group) -> Recipe:
    """
    Return the recipe of an input group's linears.

    One act mode (one quantized input) and one kind of weight scales (the fast backend runs
    the group as one GEMM) for all of them.
    """
    for key, what in (('act_mode', 'act modes'), ('weight_scales', 'weight scales')):
        chosen = {name: getattr(recipe.for_layer(name), key) for name, _ in group}
        if len(set(chosen.values())) > 1:
            raise ValueError(f'{key}_by_scope gives linears that read one input different '
                             f'{what}: {chosen}')
    return recipe.for_layer(group[0][0])


def _attach_recorders(pass_groups, recipe: Recipe, smooth: dict, want_hessian: bool,
                      generator: torch.Generator) -> dict:
    """
    Build each group's input rotation and hook a recorder on its first linear.

    Returns {first name: (recorder, hook handle)}. The rotation comes from the group's own
    (smoothed, stacked) weight, so it exists before any activation is seen; the recorder then
    takes Hessians and samples in that rotated basis.
    """
    recorders = {}
    for group in pass_groups:
        name, linear = group[0]
        weight = stack_weights([member.weight.detach().float() for _, member in group])
        if name in smooth:
            weight = weight / smooth[name].to(weight.device)
        rotation = build_input_rotation(weight, recipe.rotation, recipe.zigzag,
                                        recipe.zigzag_smoothing)
        device = linear.weight.device
        rotation = BlockRotation(
            None if rotation.perm is None else rotation.perm.to(device),
            None if rotation.blocks is None else rotation.blocks.to(device))
        recorder = _LayerRecorder(name, linear, rotation, _group_recipe(recipe, group),
                                  want_hessian, generator)
        recorder.smooth = smooth.get(name)
        recorders[name] = (recorder, linear.register_forward_pre_hook(recorder))
    return recorders


def _quantize_group(group, recorder, recipe: Recipe, smooth, layer_stats: dict, say) -> list:
    """
    Return [(name, QuantLinear)] for the linears of one input group; fill layer_stats.

    The first member owns the rotation, smoothing and activation table; the others point at it.
    """
    replacements, owner = [], None
    recipe = _group_recipe(recipe, group)
    for name, linear in group:
        layer, w_rot = _build_quant_linear(name, linear, recorder, recipe, smooth, owner)
        layer = layer.to(linear.weight.device)
        owner = owner or layer
        layer_stats[name] = _layer_stats(linear, layer, recorder, w_rot)
        # The statistics ran the reference backend, which caches fp32 copies of the
        # weight codes and rotations (8x the int4 bytes): built again only if used.
        layer.clear_caches()
        replacements.append((name, layer))
        say(f'  {name}: SQNR {layer_stats[name]["output_sqnr_db"]:.1f} dB')
    return replacements


def _swap_in(model: nn.Module, replacements) -> None:
    """Put each QuantLinear where its nn.Linear was (after all passes: later passes run FP)."""
    for name, layer in replacements:
        parent, child = _parent(model, name)
        setattr(parent, child, layer)
