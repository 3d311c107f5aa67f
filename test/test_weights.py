# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Weight quantizers: RTN clip search and reference-correct GPTQ, on real MiniLM inputs."""

from omegaq_ros.quant.rotation import build_input_rotation
from omegaq_ros.quant.weights import gptq_quantize, mse_scales, quantize_codes, rtn_quantize
import torch


def dequant(codes, scales, group=128):
    return codes.float() * scales.repeat_interleave(group, dim=1)


def test_rtn_codes_are_int4_and_clip_search_never_loses():
    gen = torch.Generator().manual_seed(0)
    outliers = torch.rand(64, 256, generator=gen) > 0.99
    w = torch.randn(64, 256, generator=gen) * (1 + 10 * outliers)
    codes, scales = rtn_quantize(w)
    assert codes.dtype == torch.int8 and codes.min() >= -8 and codes.max() <= 7
    assert scales.shape == (64, 2)
    plain = w.reshape(-1, 128).abs().amax(1, keepdim=True) / 7
    plain_err = (w.reshape(-1, 128) - quantize_codes(w.reshape(-1, 128), plain) * plain).pow(2)
    searched = mse_scales(w.reshape(-1, 128))
    searched_err = (w.reshape(-1, 128) - quantize_codes(w.reshape(-1, 128), searched) * searched)
    assert searched_err.pow(2).sum() <= plain_err.sum()
    assert torch.allclose(dequant(codes, scales), w, atol=float(scales.max()) * 4.01)


def _layer_inputs(minilm_bundle, layer_name):
    model, tokenizer, calibration, held_out = minilm_bundle
    linear = model.get_submodule(layer_name)
    seen = []
    hook = linear.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].reshape(-1, args[0].shape[-1])))
    with torch.no_grad():
        for batch in calibration:
            model(**batch)
        calib = torch.cat(seen)
        seen.clear()
        model(**held_out)
        mask = held_out['attention_mask'].reshape(-1).bool()
        held = torch.cat(seen)[mask]
    hook.remove()
    return linear, calib, held


def test_gptq_beats_rtn_on_held_out_output_of_a_real_minilm_layer(minilm_bundle):
    linear, calib, held = _layer_inputs(minilm_bundle, 'encoder.layer.0.output.dense')
    w = linear.weight.detach()
    for kind in ('none', 'composite'):
        rotation = build_input_rotation(w, kind, zigzag=kind != 'none')
        w_r = rotation.apply(w)
        x_cal, x_held = rotation.apply(calib), rotation.apply(held)
        hessian = 2 * x_cal.t() @ x_cal / x_cal.shape[0]
        reference = x_held @ w_r.t()
        rtn = x_held @ dequant(*rtn_quantize(w_r)).t()
        gptq = x_held @ dequant(*gptq_quantize(w_r, hessian)).t()
        rtn_err = (rtn - reference).pow(2).mean()
        gptq_err = (gptq - reference).pow(2).mean()
        assert gptq_err < 0.8 * rtn_err, (kind, float(gptq_err), float(rtn_err))


def test_gptq_act_order_keeps_contiguous_groups_and_handles_dead_columns(minilm_bundle):
    linear, calib, held = _layer_inputs(minilm_bundle, 'encoder.layer.1.attention.self.query')
    w = linear.weight.detach()
    calib = calib.clone()
    calib[:, 5] = 0.0                                     # a dead input channel
    hessian = 2 * calib.t() @ calib / calib.shape[0]
    held = held.clone()
    held[:, 5] = 0.0
    codes, scales = gptq_quantize(w, hessian, act_order=True)
    assert codes.shape == w.shape and scales.shape == (w.shape[0], w.shape[1] // 128)
    assert (codes[:, 5] == 0).all()
    err = (held @ dequant(codes, scales).t() - held @ w.t()).pow(2).mean()
    rtn_err = (held @ dequant(*rtn_quantize(w)).t() - held @ w.t()).pow(2).mean()
    assert err < rtn_err


def test_two_level_scales_are_exact_multiples_of_a_row_unit_and_cost_little(minilm_bundle):
    """
    Two-level group scales are exact multiples of a row unit and cost little accuracy.

    Every group scale is m * unit (m in 1..16) exactly in fp16, the row's largest group can
    keep its own scale, and the held-out output error stays within 10% of free group scales
    (RTN and GPTQ). Corrupted scales are refused.
    """
    import pytest
    from omegaq_ros.quant.weights import scale_multiples, scale_units, WEIGHT_MULTIPLES
    linear, calib, held = _layer_inputs(minilm_bundle, 'encoder.layer.0.output.dense')
    rotation = build_input_rotation(linear.weight.detach(), 'composite', zigzag=True)
    w = rotation.apply(linear.weight.detach())
    x_cal, x_held = rotation.apply(calib), rotation.apply(held)
    hessian = 2 * x_cal.t() @ x_cal / x_cal.shape[0]
    unit = scale_units(w)
    assert unit.shape == (w.shape[0],) and torch.equal(unit.half().float(), unit)
    reference = x_held @ w.t()
    for method in ('rtn', 'gptq'):
        run = (lambda u: rtn_quantize(w, unit=u)) if method == 'rtn' else (
            lambda u: gptq_quantize(w, hessian, unit=u))
        codes, scales = run(unit)
        multiples = scale_multiples(scales, unit.half())
        assert int(multiples.min()) >= 1 and int(multiples.max()) <= WEIGHT_MULTIPLES
        assert torch.equal(multiples * unit[:, None], scales.float())
        two_level = (x_held @ dequant(codes, scales.float()).t() - reference).pow(2).mean()
        free = (x_held @ dequant(*run(None)).t() - reference).pow(2).mean()
        assert two_level < 1.1 * free, (method, float(two_level), float(free))
    # The largest MSE group scale of a row fits 16 units.
    top = mse_scales(w.reshape(-1, 128)).reshape(w.shape[0], -1).amax(1)
    assert bool((top <= WEIGHT_MULTIPLES * unit).all())
    broken = scales.clone()
    broken[3, 1] = broken[3, 1] * 1.5 + 1e-3
    with pytest.raises(ValueError, match='not multiples'):
        scale_multiples(broken, unit.half())


def test_two_level_scales_of_dead_rows_and_with_act_order():
    """Zero and tiny rows get the smallest normal unit; act-order GPTQ keeps exact multiples."""
    from omegaq_ros.quant.packing import FP16_MIN_NORMAL
    from omegaq_ros.quant.weights import scale_multiples, scale_units
    w = torch.randn(8, 256, generator=torch.Generator().manual_seed(3))
    w[2] = 0.0
    w[3] = 1e-9
    unit = scale_units(w)
    assert unit[2].item() == unit[3].item() == FP16_MIN_NORMAL
    for codes, scales in (rtn_quantize(w, unit=unit),
                          gptq_quantize(w, torch.eye(256), unit=unit, act_order=True)):
        multiples = scale_multiples(scales, unit.half())
        assert (codes[2:4] == 0).all() and (multiples[2:4] == 1).all()
        error = (dequant(codes, scales.float())[:2] - w[:2]).pow(2).mean() / w[:2].pow(2).mean()
        assert error.item() < 0.03
