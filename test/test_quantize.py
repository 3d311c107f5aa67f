# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""quantize(): scope, per-step tables, step context errors, the reference backend's math."""

import copy

from omegaq_ros.quant import denoising_step, quantize, QuantLinear, Recipe, StepContextError
from omegaq_ros.quant.activations import quantize_activations
from omegaq_ros.quant.linear import grouped_int_matmul
import pytest
import torch
from torch import nn
from toy_models import toy_batches, ToyDenoiser, ToySharedInputs


def cosine(a, b):
    return float(nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def model_with_data(model, calibration_count, held_seed):
    """(model, calibration batches, held-out batches, FP outputs on the held-out batches)."""
    batches = toy_batches(count=calibration_count)
    held = toy_batches(count=2, seed=held_seed)
    with torch.no_grad():
        reference = [model(*b) for b in held]
    return model, batches, held, reference


@pytest.fixture(scope='module')
def toy():
    return model_with_data(ToyDenoiser(), 6, held_seed=7)


def test_every_selected_linear_is_replaced_and_scope_patterns_hold(toy):
    model, batches, _, _ = toy
    recipe = Recipe.preset('omega', exclude=(r'^prefix\.0$',))
    q = quantize(copy.deepcopy(model), batches, recipe)
    assert type(q.prefix[0]) is nn.Linear
    for name in ('prefix.2', 'head_in', 'head_out'):
        assert isinstance(q.get_submodule(name), QuantLinear), name
    assert q.omegaq_summary['calibration']['denoising_steps'] == 4
    # The per-layer statistics ran the reference arithmetic; its fp32 copies of the weight
    # codes and rotations (8x the int4 bytes) must not outlive them.
    assert all(not layer._dequantized_cache for layer in q.modules()
               if isinstance(layer, QuantLinear))


def test_per_step_tables_follow_the_drift_and_beat_one_table(toy):
    model, batches, held, reference = toy
    per_step = quantize(copy.deepcopy(model), batches, Recipe.preset('omega'))
    one_table = quantize(copy.deepcopy(model), batches, Recipe.preset('omega-nostep'))
    table = per_step.head_in.act_scale
    assert table.shape == (4, 128) and per_step.head_in.per_step
    assert (table[3].mean() / table[0].mean()) > 100          # 8^3 drift, seen per step
    assert per_step.prefix[0].act_scale.shape[0] == 1 and not per_step.prefix[0].per_step
    assert one_table.head_in.act_scale.shape[0] == 1
    with torch.no_grad():
        good = min(cosine(per_step(*b), r) for b, r in zip(held, reference))
        bad = min(cosine(one_table(*b), r) for b, r in zip(held, reference))
    assert good > 0.98 and good > bad


def test_steps_outside_the_calibrated_range_raise(toy):
    model, batches, _, _ = toy
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega'))
    x = torch.randn(1, 3, 128)
    with pytest.raises(StepContextError, match='outside a denoising_step'):
        q.head_in(x)
    with pytest.raises(StepContextError, match='calibrated for 4 denoising steps'):
        with denoising_step(4, 5):
            q.head_in(x)
    with pytest.raises(StepContextError, match='outside 0..3'):
        with denoising_step(4, 4):
            q.head_in(x)
    with denoising_step(3, 4):
        assert torch.isfinite(q.head_in(x)).all()


def test_a_layer_seen_inside_and_outside_the_step_context_is_refused():
    class Mixed(ToyDenoiser):
        def forward(self, x):
            y = self.head_in(x)
            with denoising_step(0, 1):
                return y + self.head_in(x)
    with pytest.raises(StepContextError, match='both inside and outside'):
        quantize(Mixed(), toy_batches(2), Recipe.preset('omega', include=('head_in',)))


@pytest.mark.parametrize('mode', ['static_group', 'dynamic_group', 'dynamic_token'])
def test_grouped_integer_product_equals_the_dequantized_product(mode):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(9, 256, generator=gen) * 3
    table_row = x.abs().reshape(9, 4, 64).amax((0, 2)) / 7
    x_codes, x_scale = quantize_activations(x, mode, table_row)
    w_codes = torch.randint(-8, 8, (48, 256), generator=gen).float()
    w_scale = torch.rand(48, 2, generator=gen) + 0.1
    grouped = grouped_int_matmul(x_codes, x_scale, w_codes, w_scale)
    dense = (x_codes * x_scale.repeat_interleave(64, -1)) @ (
        w_codes * w_scale.repeat_interleave(128, -1)).t()
    assert torch.allclose(grouped, dense, rtol=1e-5, atol=1e-4)
    partial = x_codes[:, :64] @ w_codes[:, :64].t()
    assert torch.equal(partial, partial.round())            # integer partial sums are exact


def test_quant_linear_matches_its_specification_by_hand(toy):
    model, batches, _, _ = toy
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega-group'))
    layer = q.prefix[2]
    x = torch.randn(5, 256)
    xr = layer.rotate_in(x)
    row = layer.act_scale[0]
    per_channel = row.repeat_interleave(64)
    xq = torch.clamp(torch.round(xr / per_channel), -8, 7) * per_channel
    w = layer.weight_codes() * layer.weight_scale.repeat_interleave(128, 1)
    expected = xq @ w.t() + layer.bias
    assert torch.allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_reference_caches_follow_replaced_and_rewritten_buffers(toy):
    """The fp32 copies of weight codes and rotations are rebuilt when their source changes."""
    model, batches, _, _ = toy
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega-dynamic'))
    layer = q.prefix[2]
    x = torch.randn(5, 256)
    before = layer(x)
    packed = layer.weight_packed.clone()
    layer.weight_packed = packed.flip(0)                    # replaced (as module.to does)
    layer.weight_scale = layer.weight_scale.flip(0)          # (output rows reversed)
    assert torch.allclose(layer(x), before.flip(-1) - layer.bias.flip(0) + layer.bias,
                          rtol=1e-5, atol=1e-5)
    layer.weight_packed.copy_(packed)                        # rewritten in place (as a load)
    layer.weight_scale = layer.weight_scale.flip(0)
    assert torch.equal(layer(x), before)
    layer.rot_in_scale.mul_(2.0)                             # a rotation scale rewritten
    assert not torch.allclose(layer(x), before)


def test_fp_preset_leaves_the_model_alone(toy):
    model, batches, held, reference = toy
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('fp'))
    assert not any(isinstance(m, QuantLinear) for m in q.modules())
    with torch.no_grad():
        assert torch.equal(q(*held[0]), reference[0])


def test_wrong_input_width_names_the_layer(toy):
    model, batches, _, _ = toy
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega-dynamic'))
    with pytest.raises(ValueError, match="layer 'prefix.0' expects 128 input features"):
        q.prefix[0](torch.randn(2, 64))


@pytest.fixture(scope='module')
def shared():
    return model_with_data(ToySharedInputs(), 4, held_seed=9)


def test_linears_reading_one_input_share_its_transform(shared):
    model, batches, held, reference = shared
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega', share_input_rotation=True))
    assert q.omegaq_summary['shared_inputs'] == {'q_proj': ['k_proj', 'v_proj'],
                                                 'gate_proj': ['up_proj']}
    for name in ('k_proj', 'v_proj', 'up_proj'):
        follower = q.get_submodule(name)
        assert follower.input_owner is q.get_submodule(follower.input_from)
        assert all(getattr(follower, b) is None
                   for b in ('perm_in', 'rot_in', 'rot_in_scale', 'act_scale'))
    for name in ('o_proj', 'down_proj'):
        assert q.get_submodule(name).input_from is None
    separate = quantize(copy.deepcopy(model), batches, Recipe.preset('omega'))
    assert separate.omegaq_summary['shared_inputs'] == {}
    assert separate.k_proj.rot_in is not None
    with torch.no_grad():
        together = min(cosine(q(*b), r) for b, r in zip(held, reference))
        apart = min(cosine(separate(*b), r) for b, r in zip(held, reference))
    assert together > 0.97 and apart > 0.97


def test_a_shared_input_is_quantized_once_and_never_reused_stale(shared):
    model, batches, _, _ = shared
    q = quantize(copy.deepcopy(model), batches, Recipe.preset('omega', share_input_rotation=True))
    owner = q.q_proj
    h = torch.randn(3, 128)
    with torch.no_grad():
        y_q = q.q_proj(h)
        memo = owner._input_memo
        assert memo._entry[0] is h and len(memo._entry[3]) == 1
        y_k = q.k_proj(h)                                # served from the memo ...
        assert len(memo._entry[3]) == 2
        y_v = q.v_proj(h)
        assert memo._entry is None                       # ... and dropped after the group
        for layer, y in ((q.q_proj, y_q), (q.k_proj, y_k), (q.v_proj, y_v)):
            assert layer(h.clone()).equal(y)             # equal to computing it afresh
        q.q_proj(h)
        h.mul_(2.0)                                      # in place: the entry is stale now
        stale_safe = q.v_proj(h)
        memo.clear()
        assert stale_safe.equal(q.v_proj(h.clone()))


def test_memory_accounting_counts_stored_bytes_once(shared):
    from omegaq_ros.quant.memory import model_bytes, quantized_bytes, scope_fp16_bytes
    model, batches, _, _ = shared
    recipe = Recipe.preset('omega', share_input_rotation=True)
    fp16 = scope_fp16_bytes(model, recipe)
    assert fp16 == 2 * sum(p.numel() for p in model.parameters())
    q = quantize(copy.deepcopy(model), batches, recipe)
    parts = quantized_bytes(q)
    codes = sum(m.in_features * m.out_features // 2 for m in q.modules()
                if isinstance(m, QuantLinear))
    assert parts['int4 codes'] == codes and parts['int4 codes'] * 4 == fp16
    # Two owners (q_proj, gate_proj) plus o_proj and down_proj hold rotations: 4 of 7.
    owners = [m for m in q.modules() if isinstance(m, QuantLinear) and m.rot_in is not None]
    assert len(owners) == 4
    assert parts['rotations'] == sum(m.rot_in.numel() + 2 * m.rot_in_scale.numel()
                                     for m in owners)
    assert sum(parts.values()) == model_bytes(q)


def test_act_modes_by_scope_choose_each_linears_mode(shared):
    """act_mode_by_scope: the first matching regex picks the mode; one input, one mode."""
    model, batches, held, reference = shared
    recipe = Recipe.preset('omega-dynamic', share_input_rotation=True,
                           act_mode_by_scope={'^(gate|up|down)_proj$': 'dynamic_token',
                                              'proj': 'static_group'})
    q = quantize(copy.deepcopy(model), batches, recipe)
    modes = {name: q.get_submodule(name).act_mode for name in
             ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')}
    assert modes == {'q_proj': 'static_group', 'k_proj': 'static_group',
                     'v_proj': 'static_group', 'o_proj': 'static_group',
                     'gate_proj': 'dynamic_token', 'up_proj': 'dynamic_token',
                     'down_proj': 'dynamic_token'}
    assert q.get_submodule('q_proj').act_scale is not None       # its static table
    with torch.no_grad():
        assert min(cosine(q(*b), r) for b, r in zip(held, reference)) > 0.97
    split = Recipe.preset('omega-dynamic', share_input_rotation=True,
                          act_mode_by_scope={'^k_proj$': 'dynamic_token'})
    with pytest.raises(ValueError, match='linears that read one input different act modes'):
        quantize(copy.deepcopy(model), batches, split)


def test_wide_activation_groups_skip_a_linear_whose_input_they_cannot_split():
    """dynamic_group128 needs in_features a multiple of 128; such a linear stays FP, named."""
    model = torch.nn.Sequential(torch.nn.Linear(192, 128), torch.nn.Linear(128, 64))
    batches = [(torch.randn(8, 192),) for _ in range(2)]
    recipe = Recipe.preset('omega-dynamic', weight_group=64, act_mode='dynamic_group128',
                           include=('.',))
    q = quantize(model, batches, recipe)
    assert 'multiple of 128 (dynamic_group128)' in q.omegaq_summary['skipped']['0']
    assert isinstance(q[1], QuantLinear) and q[1].act_mode == 'dynamic_group128'
