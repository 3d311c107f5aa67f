# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Triton W4A4 backend against the reference backend at every pi0.5 linear shape.

On a GPU it runs the compiled kernels at every pi0.5 shape. With TRITON_INTERPRET=1 (what
test_kernels_interpreted.py does on CPU machines) the same checks run the kernels in Triton's
interpreter on CPU tensors, at small shapes that still cover the swap-AB, tiled and split-K
paths.

Each case draws fresh random weights, scales, rotations and inputs, poisons every output
buffer with NaN (int8 codes with 127, outside int4) and checks: activation codes equal the
reference's (a flip is allowed only where the reference value sits on a rounding tie up to
fp32 noise), the int32 GEMM of the codes exactly, the scaled GEMM within fp32 rounding of the
reference arithmetic on the same codes, and the whole layer against reference_forward.
"""

import importlib.util
import os
import zlib

import numpy as np
import pytest
import torch
from torch.nn import functional as F

_HAS_TRITON = importlib.util.find_spec('triton') is not None
INTERPRETED = os.environ.get('TRITON_INTERPRET', '0') == '1'
DEVICE = 'cpu' if INTERPRETED else 'cuda'
pytestmark = pytest.mark.skipif(not (_HAS_TRITON and (torch.cuda.is_available() or INTERPRETED)),
                                reason='the triton backend tests need CUDA (or TRITON_INTERPRET=1)'
                                ' and triton')
needs_cuda = pytest.mark.skipif(INTERPRETED or not torch.cuda.is_available(),
                                reason='CUDA graphs need CUDA')


def _interpreter_scalars_fix():
    """
    Let `range(0, n)` over a kernel argument work in Triton 3.6's interpreter with NumPy 2.

    The interpreter passes scalar arguments as 1-element arrays and NumPy 2.3+ refuses int()
    of those ('only 0-dimensional arrays can be converted'); read the single element instead.
    """
    import triton.runtime.interpreter as interpreter
    original = interpreter._patch_lang_tensor

    def patch(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, '__index__',
                       lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))
    interpreter._patch_lang_tensor = patch


if INTERPRETED and _HAS_TRITON:
    _interpreter_scalars_fix()

LM = {'q': (2048, 2048), 'k': (2048, 256), 'v': (2048, 256), 'o': (2048, 2048),
      'gate': (2048, 16384), 'up': (2048, 16384), 'down': (16384, 2048)}
EXPERT = {'q': (1024, 2048), 'k': (1024, 256), 'v': (1024, 256), 'o': (2048, 1024),
          'gate': (1024, 4096), 'up': (1024, 4096), 'down': (4096, 1024)}
SHAPES = ([(f'lm_{n}', k, o, m) for n, (k, o) in LM.items() for m in (1, 968)]
          + [(f'expert_{n}', k, o, m) for n, (k, o) in EXPERT.items() for m in (10, 50)])
# Interpreted: small shapes through the same paths (swap-AB M <= 64 with split-K, tiled M > 64,
# N = 64 like a one-head k/v, a long K like the down projections).
SMALL_SHAPES = [('q', 256, 256, 10), ('kv', 256, 64, 50), ('tiled', 128, 128, 80),
                ('down', 512, 128, 1)]
if INTERPRETED:
    SHAPES = SMALL_SHAPES
SUBSET_SHAPES = ([(256, 128, 10), (128, 64, 80), (256, 256, 1)] if INTERPRETED else
                 [(1024, 2048, 10), (2048, 256, 968), (2048, 2048, 1)])
MODES = ('static_group', 'dynamic_group', 'dynamic_token')
# One activation scale per token: their codes come from amax_kernel's int16 first pass.
PER_TOKEN_MODES = ('dynamic_token', 'dynamic_two_level')


@pytest.fixture(scope='module', autouse=True)
def _registered():
    from omegaq_ros import kernels
    kernels.register()


def _poison_allocator():
    """Fill freed cached blocks with NaN so internal buffers a kernel skips stay NaN."""
    if DEVICE != 'cuda':
        return
    blob = torch.empty(256 << 20, dtype=torch.uint8, device='cuda')
    blob.fill_(0xFF)
    del blob


def make_layer(k, n, mode, *, perm=True, rot_in=True, rot_out=True, bias=True, smooth=True,
               per_step=False, table_rows=1, seed=0, scale_unit=False):
    """
    Build a QuantLinear on CUDA with random codes, scales, rotations and tables.

    scale_unit: two-level weight scales (random multiples 1..16 of a random row unit).
    """
    from omegaq_ros.quant.linear import QuantLinear
    from omegaq_ros.quant.packing import pack_int4
    from omegaq_ros.quant.rotation import store_blocks
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    dev = DEVICE
    layer = QuantLinear(k, n, name=f'test_{k}x{n}', act_mode=mode, per_step=per_step,
                        has_bias=bias, has_smooth=smooth, has_perm=perm, has_rot_in=rot_in,
                        has_rot_out=rot_out, table_rows=table_rows,
                        has_scale_unit=scale_unit).to(dev)
    codes = torch.randint(-8, 8, (n, k), dtype=torch.int8, device=dev, generator=g)
    layer.weight_packed.copy_(pack_int4(codes))
    layer.weight_scale.copy_(torch.rand(n, k // 128, device=dev, generator=g) * 0.02 + 1e-3)
    if scale_unit:
        from omegaq_ros.quant.weights import scale_multiples
        # At most 7 significant bits, as weights.scale_units makes them: m * unit is exact.
        unit = (torch.randint(64, 128, (n,), device=dev, generator=g)
                * 2.0 ** -torch.randint(14, 18, (n,), device=dev, generator=g)).half()
        layer.weight_scale_unit.copy_(unit)
        multiples = torch.randint(1, 17, (n, k // 128), device=dev, generator=g)
        layer.weight_scale.copy_(multiples * unit.float()[:, None])
        assert torch.equal(scale_multiples(layer.weight_scale, unit).cpu(), multiples.cpu())
    if bias:
        layer.bias.copy_(torch.randn(n, device=dev, generator=g))
    if smooth:
        layer.smooth.copy_(torch.rand(k, device=dev, generator=g) + 0.5)
    if perm:
        layer.perm_in.copy_(torch.randperm(k, device=dev, generator=g))
    if rot_in:
        rot_codes, rot_scale = store_blocks(torch.linalg.qr(
            torch.randn(k // 64, 64, 64, device=dev, generator=g))[0])
        layer.rot_in.copy_(rot_codes)
        layer.rot_in_scale.copy_(rot_scale)
    if rot_out:
        rot_codes, rot_scale = store_blocks(torch.linalg.qr(
            torch.randn(n // 64, 64, 64, device=dev, generator=g))[0])
        layer.rot_out.copy_(rot_codes)
        layer.rot_out_scale.copy_(rot_scale)
    if layer.act_scale is not None:
        # Around absmax/7 of unit-normal rotated inputs (max |x| ~ 3.5-4 over 64 channels).
        layer.act_scale.copy_(torch.rand(layer.act_scale.shape, device=dev, generator=g)
                              * 0.4 + 0.35)
    return layer


def _reference_codes(layer, x2):
    from omegaq_ros.quant.activations import quantize_activations
    xr = layer.rotate_in(x2.float())
    row = layer.table_row() if layer.act_mode == 'static_group' else None
    codes, scale = quantize_activations(xr, layer.act_mode, row)
    return xr, codes, scale


def _reference_operands(layer, x2):
    """Return the int8 operands the GEMM should get: codes (times their two-level subscales)."""
    from omegaq_ros.quant.activations import SUBSCALES
    _, codes, scale = _reference_codes(layer, x2)
    if layer.act_mode == 'dynamic_two_level':
        token = scale.amax(-1, keepdim=True)
        codes = codes * (scale * SUBSCALES / token).round().repeat_interleave(64, dim=-1)
    return codes


def _check_codes(layer, x2, codes, xs):
    xr, ref_codes, ref_scale = _reference_codes(layer, x2)
    assert codes.dtype == torch.int8
    assert int(codes.min()) >= -8 and int(codes.max()) <= 7, 'unwritten or out-of-range codes'
    if layer.act_mode in ('dynamic_group', 'dynamic_group128'):
        torch.testing.assert_close(xs, ref_scale, rtol=1e-5, atol=0)
    elif layer.act_mode == 'dynamic_token':
        torch.testing.assert_close(xs, ref_scale[:, 0], rtol=1e-5, atol=0)
    diff = codes.float() != ref_codes
    if diff.any():
        per_channel = ref_scale.repeat_interleave(64, dim=-1)
        v = (xr / per_channel)[diff]
        # Only values on a rounding tie (or the clamp edge 7.5/-8.5) up to fp32 noise may flip.
        tie = (v.abs() - v.abs().floor() - 0.5).abs() < 1e-3
        assert bool(tie.all()), f'{int((~tie).sum())} code flips away from rounding ties'
        assert int((codes.float() - ref_codes)[diff].abs().max()) == 1
        # The per-token modes quantize a first pass stored as int16 steps of each group's
        # absmax (about 1e-4 of a code step off), so about 1e-4 of their codes sit that close.
        rare = 1e-3 if layer.act_mode in PER_TOKEN_MODES else 1e-4
        assert diff.float().mean().item() < rare
    return diff.any(dim=1)


def _scaled_reference(layer, codes, xs_full):
    from omegaq_ros.quant.linear import _block_matmul, grouped_int_matmul
    from omegaq_ros.quant.rotation import load_blocks
    y = grouped_int_matmul(codes.float(), xs_full, layer.weight_codes(),
                           layer.weight_scale.float())
    if layer.rot_out is not None:
        y = _block_matmul(y, load_blocks(layer.rot_out, layer.rot_out_scale), transpose=True)
    if layer.bias is not None:
        y = y + layer.bias
    return y


def _expand_scales(layer, xs, m):
    groups = layer.in_features // 64
    if layer.act_mode == 'static_group':
        return layer.table_row().expand(m, groups)
    if layer.act_mode in PER_TOKEN_MODES:
        return xs[:, None].expand(m, groups)
    return xs


def _assert_fp32_close(y, ref):
    assert bool(torch.isfinite(y).all()), 'NaN/inf in output: an element was not written'
    err = (y.double() - ref.double()).norm() / ref.double().norm()
    assert err.item() < 2e-6, f'relative error {err.item():.3g}'
    tol = 1e-5 * ref.abs().max().item() + 1e-6
    assert (y - ref).abs().max().item() <= tol


def _run_case(k, n, m, mode, seed, **features):
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.quant.linear import reference_forward
    layer = make_layer(k, n, mode, seed=seed, **features)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(seed + 1))
    _poison_allocator()
    codes_out = torch.full((m, k), 127, dtype=torch.int8, device=DEVICE)
    codes, xs, s_m, s_g = tw.quantize_input(layer, x, codes_out=codes_out)
    assert codes.data_ptr() == codes_out.data_ptr()
    natural = tw.natural_order(codes)
    assert torch.equal(tw.gemm_order(natural), codes)
    flipped_rows = _check_codes(layer, x, natural, xs)

    # The integer accumulation is exact: compare with a float64 product of the same codes.
    _poison_allocator()
    w = layer.weight_codes().double()
    ints = tw.int_matmul(codes, layer.weight_packed)
    assert ints.dtype == torch.int32
    assert torch.equal(ints.double(), natural.double() @ w.t())

    # Scaled GEMM + epilogue on the kernel's own codes: fp32 rounding of the same arithmetic.
    _poison_allocator()
    y_out = torch.full((m, n), float('nan'), device=DEVICE)
    y = tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32, out=y_out)
    assert y.data_ptr() == y_out.data_ptr()
    _assert_fp32_close(y, _scaled_reference(layer, natural, _expand_scales(layer, xs, m)))

    # The whole layer through the registered backend against the reference backend.
    _poison_allocator()
    layer.backend = 'triton'
    y_full = layer(x)
    ref = reference_forward(layer, x)
    assert bool(torch.isfinite(y_full).all())
    # Same kernels on the same input: bit-identical to the checked step-by-step result.
    assert torch.equal(y_full, y)
    # Against the reference: fp32 rounding on every row whose codes all equal the reference's.
    # A row holding one of the rare tie flips checked above differs by one quantization step
    # of one activation (about 1/sqrt(in * E[code^2]) of the row's norm), so it is excluded.
    # The per-token modes' codes come from int16 first-pass values, which put about 3e-5 of
    # the codes that close to a tie (H100): a 16384-wide row holds one 40% of the time.
    same = ~flipped_rows
    per_token = layer.act_mode in PER_TOKEN_MODES
    assert int(flipped_rows.sum()) <= max(1, m // 2 if per_token else m // 10)
    if bool(same.any()):
        _assert_fp32_close(y_full[same], ref[same])


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name,k,n,m', SHAPES, ids=[f'{s[0]}-M{s[3]}' for s in SHAPES])
def test_pi05_shapes_all_features(name, k, n, m, mode):
    """Perm, smoothing, input and output rotation and bias at every pi0.5 shape and mode."""
    _run_case(k, n, m, mode, seed=zlib.crc32(f'{name}{m}{mode}'.encode()) % 10000)


FEATURE_SETS = {
    'plain': {'perm': False, 'rot_in': False, 'rot_out': False, 'bias': False,
              'smooth': False},
    'perm_only': {'perm': True, 'rot_in': False, 'rot_out': False, 'bias': False,
                  'smooth': False},
    'rot_in_bias': {'perm': False, 'rot_in': True, 'rot_out': False, 'bias': True,
                    'smooth': True},
    'rot_out_only': {'perm': False, 'rot_in': False, 'rot_out': True, 'bias': False,
                     'smooth': False},
}


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('features', list(FEATURE_SETS))
@pytest.mark.parametrize('k,n,m', SUBSET_SHAPES)
def test_feature_subsets(k, n, m, features, mode):
    """Each optional stage on and off (swap-AB, split-K and tiled paths)."""
    _run_case(k, n, m, mode, seed=17, **FEATURE_SETS[features])


def test_bf16_input_and_batched_shape():
    """A bf16 [B, T, in] input comes back as bf16 [B, T, out] matching the reference."""
    from omegaq_ros.quant.linear import reference_forward
    k, n = (256, 128) if INTERPRETED else (1024, 4096)
    layer = make_layer(k, n, 'dynamic_group', seed=3)
    x = torch.randn(2, 25, k, device=DEVICE).to(torch.bfloat16)
    layer.backend = 'triton'
    y = layer(x)
    ref = reference_forward(layer, x)
    assert y.shape == (2, 25, n) and y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref.float(), rtol=1e-2, atol=1e-2)


@needs_cuda
def test_per_step_table_and_cuda_graph():
    """Per-step rows come from table_row() on the host; each step captures as a CUDA graph."""
    from omegaq_ros.quant.linear import reference_forward
    from omegaq_ros.quant.step_context import denoising_step, StepContextError
    layer = make_layer(1024, 2048, 'static_group', per_step=True, table_rows=10, seed=5)
    layer.backend = 'triton'
    x = torch.randn(10, 1024, device='cuda')
    with pytest.raises(StepContextError):
        layer(x)
    outs = []
    for step in (0, 7):
        with denoising_step(step, 10):
            ref = reference_forward(layer, x)
            layer(x)  # compile outside the capture
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                y = layer(x)
        y.fill_(float('nan'))
        graph.replay()
        torch.cuda.synchronize()
        assert ((y - ref).norm() / ref.norm()).item() < 1e-4
        outs.append(y.clone())
    assert not torch.allclose(outs[0], outs[1]), 'steps 0 and 7 used the same scale row'


@pytest.mark.parametrize('mode', ['static_channel', 'none'])
def test_non_integer_modes_fall_back_to_reference(mode):
    """static_channel and none cannot use the integer GEMM: the backend returns the reference."""
    from omegaq_ros.quant.linear import reference_forward
    layer = make_layer(256, 128, mode, seed=9)
    x = torch.randn(10, 256, device=DEVICE)
    layer.backend = 'triton'
    torch.testing.assert_close(layer(x), reference_forward(layer, x), rtol=0, atol=0)


def test_quantized_small_linear_end_to_end():
    """A layer made by omegaq_ros.quant.quantize from an nn.Linear runs on the backend."""
    from omegaq_ros.quant import quantize, Recipe
    from omegaq_ros.quant.linear import QuantLinear, reference_forward
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 128))
    batches = [(torch.randn(4, 16, 256),) for _ in range(4)]
    recipe = Recipe.preset('omega-dynamic', weight_method='rtn')
    qmodel = quantize(model, batches, recipe)
    layer = next(mod for mod in qmodel.modules() if isinstance(mod, QuantLinear)).to(DEVICE)
    x = torch.randn(30, 256, device=DEVICE)
    layer.backend = 'triton'
    y = layer(x)
    ref = reference_forward(layer, x)
    assert ((y - ref).norm() / ref.norm()).item() < 1e-4


class _Siblings(torch.nn.Module):
    """Three linears reading one input, named like an attention's q/k/v."""

    def __init__(self, q_proj, k_proj, v_proj):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = q_proj, k_proj, v_proj

    def forward(self, x):
        return [self.q_proj(x), self.k_proj(x), self.v_proj(x)]


def _on_triton(layers):
    """One linear, or three fused as q/k/v siblings (each its own input transform), on Triton."""
    from omegaq_ros import kernels
    parent = _Siblings(*layers) if len(layers) == 3 else layers[0]
    for layer in layers:
        layer.backend = 'triton'
    if len(layers) == 3:
        (group,), _ = kernels.fuse_siblings(parent, (('q_proj', 'k_proj', 'v_proj'),))
        assert not group.shared_transform
    return parent


def _outputs(parent, x) -> list:
    """Return parent(x) as a list of outputs (one per linear)."""
    y = parent(x)
    return y if isinstance(y, list) else [y]


FUSED_SHAPES = ([(256, (256, 64, 64), 10), (128, (128, 64, 64), 80)] if INTERPRETED else
                [(2048, (2048, 256, 256), 1), (2048, (2048, 256, 256), 968),
                 (1024, (2048, 256, 256), 10), (1024, (4096, 4096), 50)])


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('k,outs,m', FUSED_SHAPES)
def test_fused_siblings_match_each_layer(k, outs, m, mode):
    """
    q/k/v (or gate/up) fused: one quantize and one GEMM launch, each layer's own output.

    Every layer keeps its own rotation and table, so its codes equal the unfused ones; only
    the GEMM's split (planned for the concatenated N) changes fp32 summation order.
    """
    from omegaq_ros import kernels
    from omegaq_ros.quant.linear import reference_forward
    layers = [make_layer(k, n, mode, per_step=True, table_rows=3, seed=31 + i)
              for i, n in enumerate(outs)]
    names = ('q_proj', 'k_proj', 'v_proj')[:len(layers)]
    parent = torch.nn.Module()
    for name, layer in zip(names, layers):
        setattr(parent, name, layer)
        layer.backend = 'triton'
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(7))
    from omegaq_ros.quant.step_context import denoising_step
    with denoising_step(1, 3):
        single = [layer(x) for layer in layers]
        reference = [reference_forward(layer, x) for layer in layers]
        sizes = [layer.weight_packed.numel() for layer in layers]
        groups, skipped = kernels.fuse_siblings(parent, (names,))
        assert len(groups) == 1 and not skipped
        group = groups[0]
        # Views into one concatenation, not a second copy of the weights.
        assert group.weight_packed.numel() == sum(sizes)
        for layer in layers:
            assert layer.weight_packed.untyped_storage().data_ptr() == \
                group.weight_packed.untyped_storage().data_ptr()
        _poison_allocator()
        kernels.LAUNCHES.clear()
        fused = [layer(x) for layer in layers]
        assert kernels.LAUNCHES['quantize'] == (2 if mode == 'dynamic_token' else 1)
        assert kernels.LAUNCHES['gemm'] == 1
    for layer, y, y_single, ref in zip(layers, fused, single, reference):
        assert y.shape == y_single.shape
        # Rows whose codes sit on a rounding tie (checked in the per-layer tests) may differ
        # by one activation step; the rest agree within fp32 rounding.
        for other in (y_single, ref):
            close = ((y - other).abs() <= 1e-5 * other.abs().max() + 1e-6).all(dim=1)
            assert int((~close).sum()) <= max(1, m // 10)


def test_fused_siblings_follow_the_input_and_replaced_weights():
    """A member fed another tensor recomputes; weights replaced after fusing are used."""
    from omegaq_ros import kernels
    from omegaq_ros.quant.linear import reference_forward
    layers = [make_layer(128, n, 'dynamic_group', seed=40 + i) for i, n in enumerate(
        (128, 64, 64))]
    model = _Siblings(*layers)
    for layer in layers:
        layer.backend = 'triton'
    kernels.fuse_siblings(model, (('q_proj', 'k_proj', 'v_proj'),))
    g = torch.Generator(device=DEVICE).manual_seed(3)
    x1, x2 = (torch.randn(10, 128, device=DEVICE, generator=g) for _ in range(2))
    q = model.q_proj(x1)
    k = model.k_proj(x2)          # not the tensor q saw: the group runs again on x2
    _assert_fp32_close(q, reference_forward(model.q_proj, x1))
    _assert_fp32_close(k, reference_forward(model.k_proj, x2))
    x1.mul_(2.0)                  # same tensor, modified in place: not served from the cache
    _assert_fp32_close(model.v_proj(x1), reference_forward(model.v_proj, x1))
    # A buffer replaced after fusing (as module.to() or a reload does): the group re-joins.
    fresh = make_layer(128, 64, 'dynamic_group', seed=99)
    model.k_proj.weight_packed = fresh.weight_packed.clone()
    outputs = model(x2)
    for layer, y in zip(layers, outputs):
        _assert_fp32_close(y, reference_forward(layer, x2))


def test_siblings_without_an_integer_gemm_are_left_unfused():
    """static_channel q/k/v run layer by layer (reference arithmetic); the reason is returned."""
    from omegaq_ros import kernels
    model = _Siblings(*(make_layer(128, 64, 'static_channel', seed=i) for i in range(3)))
    groups, skipped = kernels.fuse_siblings(model, (('q_proj', 'k_proj', 'v_proj'),))
    assert groups == [] and len(skipped) == 1 and 'static_channel' in skipped[0][1]
    assert all(layer._fused is None for layer in (model.q_proj, model.k_proj, model.v_proj))


def test_fused_siblings_with_a_shared_input_transform():
    """share_input_rotation layers fuse with one transform: one quantize for the group."""
    from omegaq_ros import kernels
    from omegaq_ros.quant import quantize, Recipe
    from omegaq_ros.quant.linear import reference_forward
    torch.manual_seed(0)
    model = _Siblings(torch.nn.Linear(128, 128), torch.nn.Linear(128, 64),
                      torch.nn.Linear(128, 64))
    batches = [(torch.randn(4, 16, 128),) for _ in range(4)]
    recipe = Recipe.preset('omega-dynamic', weight_method='rtn', share_input_rotation=True)
    qmodel = quantize(model, batches, recipe).to(DEVICE)
    assert qmodel.k_proj.input_from == qmodel.q_proj.name
    for layer in (qmodel.q_proj, qmodel.k_proj, qmodel.v_proj):
        layer.backend = 'triton'
    (group,), _ = kernels.fuse_siblings(qmodel, (('q_proj', 'k_proj', 'v_proj'),))
    assert group.shared_transform
    for tokens in (15, 40):     # 30 rows (the few-row plan) and 80
        x = torch.randn(2, tokens, 128, device=DEVICE)
        kernels.LAUNCHES.clear()
        outputs = qmodel(x)
        assert kernels.LAUNCHES['quantize'] == 1 and kernels.LAUNCHES['gemm'] == 1
        for layer, y in zip((qmodel.q_proj, qmodel.k_proj, qmodel.v_proj), outputs):
            ref = reference_forward(layer, x)
            assert y.shape == ref.shape
            assert ((y - ref).norm() / ref.norm()).item() < 1e-4


GATED_SHAPES = ([(256, 128, 10), (128, 64, 80)] if INTERPRETED else
                [(4096, 1024, 50), (16384, 2048, 816)])


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('gating', ('gelu_gate', 'silu_gate'))
@pytest.mark.parametrize('k,n,m', GATED_SHAPES)
def test_gated_projection_gates_inside_the_quantize(k, n, m, gating, mode):
    """
    A gated MLP's down projection takes the gate and up outputs and gates them itself.

    The quantize launch computes act(gate) * up (rounded to the input's dtype, as the fused
    pointwise kernel stores it) from two column ranges of one fused gate/up output: the same
    codes as quantizing that product (up to rounding ties), the same output, and no launch
    of its own. Layers off the integer kernels run the gating as written.
    """
    from omegaq_ros.kernels import act_modes
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.policy import pointwise
    from omegaq_ros.quant.linear import reference_forward
    dtype = torch.float32 if INTERPRETED else torch.bfloat16
    seed = zlib.crc32(f'{gating}{mode}'.encode()) % 10000
    layer = make_layer(k, n, mode, rot_out=False, seed=seed)
    layer.backend = 'triton'
    fused = torch.randn(m, 2 * k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                        .manual_seed(3)).to(dtype) * 2
    gate, up = fused[:, :k], fused[:, k:]
    act = F.gelu(gate.float(), approximate='tanh') if gating == 'gelu_gate' else \
        F.silu(gate.float())
    gated = (act * up.float()).to(dtype)

    codes, xs, _, _ = tw.quantize_input(layer, gate, up=up, gate=act_modes.GATES[gating])
    natural = tw.natural_order(codes)
    tw.LAUNCHES.clear()
    y = tw.gated_projection(layer, gate, up, gating, pointwise.EAGER)
    assert tw.LAUNCHES['quantize'] == (2 if mode == 'dynamic_token' else 1)
    assert tw.LAUNCHES['gemm'] == 1
    assert y.dtype == dtype and y.shape == (m, n)
    ref = reference_forward(layer, gated.float())
    if dtype == torch.float32:
        flipped_rows = _check_codes(layer, gated.float(), natural, xs)
        assert int(flipped_rows.sum()) <= max(1, m // 10)
        _assert_fp32_close(y[~flipped_rows], ref[~flipped_rows])
    else:
        # The kernel's fp32 GELU and torch's differ in the last bits, which moves a few
        # products across a bfloat16 rounding boundary: a few codes one step apart (a wrong
        # gating moves most of them), and the output within bfloat16 noise.
        _, ref_codes, _ = _reference_codes(layer, gated.float())
        diff = (natural.float() - ref_codes).abs()
        assert diff.max().item() <= 1 and (diff > 0).float().mean().item() < 1e-4
        assert ((y.float() - ref).norm() / ref.norm()).item() < 1e-2

    layer.backend = 'reference'
    expected = layer(getattr(pointwise.EAGER, gating)(gate, up))
    assert torch.equal(tw.gated_projection(layer, gate, up, gating, pointwise.EAGER), expected)


def test_bundled_policy_actions_match_the_reference_backend(tmp_path):
    """
    Whole chunks of the bundled policy: triton backend vs reference backend, same artifact.

    A W4A4 network is a step function of its input: the two backends round fp32 sums in a
    different order, so an activation within rounding noise of a quantization boundary takes
    the neighbouring code in one of them, and one flip can cascade through 56 layers and 10
    steps (scaling the noise by 1 + 1e-6 moves the bundled artifact's actions by as much as
    quantization itself on some observations, RESULTS §4). So the bound is the quantization
    error: a wrong kernel lands far outside it (every layer is checked exactly elsewhere).
    """
    import copy
    from omegaq_ros.policy.pi05_processing import prepare_images
    from omegaq_ros.policy.recipes import method_recipe
    from omegaq_ros.policy.pi05_runtime import Pi05Policy
    from omegaq_ros.quant import quantize, save_artifact
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fp = Pi05Policy.load(os.path.join(root, 'models', 'pi05_small', 'checkpoint'), DEVICE)
    rng = np.random.default_rng(0)
    state = rng.uniform(-0.3, 0.3, 14).astype(np.float32)

    def observation():
        return [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
    batches = []
    for index in range(6):
        images, masks = prepare_images(observation(), [True] * 3, 96, fp.device)
        tokens, mask = fp.tokenizer(f'Task: lift the red cube {index};\nAction: ')
        batches.append({'images': images, 'image_masks': masks,
                        'tokens': torch.from_numpy(tokens)[None].to(DEVICE),
                        'token_masks': torch.from_numpy(mask)[None].to(DEVICE),
                        'noise': torch.randn(1, 20, 32, generator=torch.Generator()
                                             .manual_seed(index)).to(DEVICE)})
    recipe = method_recipe('omega-dynamic')
    model = quantize(copy.deepcopy(fp.model), batches, recipe)
    path = save_artifact(model, recipe, str(tmp_path / 'omega-dynamic'),
                         extra_manifest=fp.artifact_extra(), extra_files=fp.extra_files())
    reference = Pi05Policy.load(path, DEVICE)
    fast = Pi05Policy.load(path, DEVICE, backend='triton')
    backends, quantization, worst = [], [], 0.0
    for _ in range(2):
        images = observation()
        noise = rng.standard_normal((20, 32)).astype(np.float32)
        chunks = [p.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
                  for p in (fp, reference, fast)]
        quantization.append(float(np.abs(chunks[1] - chunks[0]).mean()))
        backends.append(float(np.abs(chunks[2] - chunks[1]).mean()))
        worst = max(worst, float(np.abs(chunks[2] - chunks[1]).max()))
    # q/k/v and gate/up fused: 4 quantize and 4 GEMM launches per Gemma layer instead of 7.
    from omegaq_ros import kernels
    from omegaq_ros.policy.runtime import set_backend
    launches = {}
    for fuse in (False, True):
        set_backend(fast.model, 'triton', fuse=fuse)
        kernels.LAUNCHES.clear()
        fast.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
        launches[fuse] = dict(kernels.LAUNCHES)
    two_kernels, fused = launches[False], launches[True]
    # Per layer run in full 7 -> 4; the prefix's last layer runs only q/k/v: 3 -> 1.
    config = fast.model.config
    full = config.language.depth - 1 + config.num_steps * config.expert.depth
    assert (two_kernels['gemm'], fused['gemm']) == (7 * full + 3, 4 * full + 1)
    assert (two_kernels['quantize'], fused['quantize']) == (7 * full + 3, 4 * full + 1)
    print(f'launches per chunk: {launches}')
    print(f'mean |triton - reference| = {np.mean(backends):.2e}, max {worst:.2e}; '
          f'mean |reference - fp| = {np.mean(quantization):.2e} (normalized action units)')
    assert np.isfinite(worst) and np.mean(backends) < np.mean(quantization)


@pytest.mark.parametrize('mode', ['static_group', 'dynamic_group'])
@pytest.mark.parametrize('k,n,m', [(512, 128, 10), (512, 64, 50)])
def test_paired_rescale_matches_one_group_at_a_time(k, n, m, mode):
    """
    Two 64-groups of a weight group rescaled at once, ((p0 xs0 + p1 xs1) ws), on every split.

    The plan pairs groups wherever a split holds an even number of them; a split of one
    group, or {'pairs': False}, rescales group by group. All equal the reference in fp32.
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    layer = make_layer(k, n, mode, rot_out=False, seed=31)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(32))
    codes, xs, s_m, s_g = tw.quantize_input(layer, x)
    expected = _scaled_reference(layer, tw.natural_order(codes), _expand_scales(layer, xs, m))
    plan = tw.plan(m, n, k, tuned=False)
    groups = k // 64
    paired_default = tw.PAIRED_RESCALE['enabled']
    tw.set_paired_rescale(True)
    try:
        for split in (1, 2, groups):
            for pairs in (True, False):
                p = dict(plan, split=split, gps=groups // split, pairs=pairs)
                _poison_allocator()
                y = tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32,
                                     plan_override=p)
                _assert_fp32_close(y, expected)
    finally:
        tw.set_paired_rescale(paired_default)


@pytest.mark.skipif(INTERPRETED, reason='the autotuner times its candidates on a GPU')
@pytest.mark.parametrize('mode,scale_unit', [('static_group', False), ('dynamic_group', False),
                                             ('dynamic_two_level', True)])
def test_every_tuned_gemm_config_matches_the_reference(mode, scale_unit):
    """The autotuner may pick any candidate for a prefix shape: each must be right."""
    from omegaq_ros.kernels import triton_w4a4 as tw
    k, n, m = 1024, 512, 300
    layer = make_layer(k, n, mode, rot_out=False, seed=23, scale_unit=scale_unit)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(24))
    codes, xs, s_m, s_g = tw.quantize_input(layer, x)
    expected = _scaled_reference(layer, tw.natural_order(codes), _expand_scales(layer, xs, m))
    assert tw.plan(m, n, k)['tuned']
    paired_default = tw.PAIRED_RESCALE['enabled']
    tw.set_paired_rescale(True)
    try:
        for swap, bm, bn, warps, stages, pairs in tw.TUNED_CONFIGS:
            fixed = {'swap': swap, 'bm': bm, 'bn': bn, 'split': 1, 'gps': k // 64,
                     'num_warps': warps, 'num_stages': stages, 'pairs': pairs}
            _poison_allocator()
            y = tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32,
                                 plan_override=fixed)
            _assert_fp32_close(y, expected)
        for paired in (True, False):
            tw.set_paired_rescale(paired)
            _poison_allocator()
            _assert_fp32_close(tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32),
                               expected)
    finally:
        tw.set_paired_rescale(paired_default)


@pytest.mark.parametrize('token_mode,weight_scales', [('dynamic_token', 'group'),
                                                      ('dynamic_two_level', 'two_level')])
def test_mixed_act_modes_run_on_the_integer_kernels(token_mode, weight_scales):
    """
    act_mode_by_scope: per-token and per-64-group layers of one model, siblings fused.

    With weight_scales_by_scope the per-token layers also take two-level weight scales (the
    GEMM's integer-only loop), fused gate/up included.
    """
    from omegaq_ros.policy.runtime import set_backend
    from omegaq_ros.quant import quantize, Recipe
    from toy_models import ToySharedInputs
    torch.manual_seed(0)
    model = ToySharedInputs()
    model.SIBLING_LINEARS = (('q_proj', 'k_proj', 'v_proj'), ('gate_proj', 'up_proj'))
    batches = [(torch.randn(2, 16, 128),) for _ in range(3)]
    scope = '^(gate|up|down)_proj$'
    recipe = Recipe.preset('omega-dynamic', weight_method='rtn',
                           act_mode_by_scope={scope: token_mode},
                           weight_scales_by_scope={scope: weight_scales})
    qmodel = quantize(model, batches, recipe).to(DEVICE)
    units = {n for n in ('q_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')
             if qmodel.get_submodule(n).weight_scale_unit is not None}
    scoped = {'gate_proj', 'up_proj', 'down_proj'}
    assert units == (set() if weight_scales == 'group' else scoped)
    x = torch.randn(2, 40, 128, device=DEVICE)
    with torch.no_grad():
        reference = qmodel(x)
        summary = set_backend(qmodel, 'triton')
        assert summary['integer_kernels'] == 7 and summary['fused_sets'] == 2
        fast = qmodel(x)
    assert {qmodel.get_submodule(n).act_mode for n in ('q_proj', 'o_proj')} == {'dynamic_group'}
    assert {qmodel.get_submodule(n).act_mode for n in ('up_proj', 'down_proj')} == \
        {token_mode}
    # Rounding ties of the rotated activations may flip a code (per-layer tests); the block
    # output agrees to well under one 4-bit step.
    assert ((fast - reference).norm() / reference.norm()).item() < 5e-3


# (batch, tokens, query heads, K/V heads, head dim, cached prefix keys, plan overrides):
# pi0.5's expert over the prefix cache and its prefix (one K/V head, query heads folded into
# rows), grouped heads, no cache, forced key splits. Interpreted: the same paths, smaller.
ATTENTION_CASES = ([(1, 10, 4, 1, 32, 70, None), (1, 10, 4, 1, 32, 70, {'splits': 3, 'bn': 32}),
                    (2, 12, 4, 2, 16, 40, {'splits': 4, 'bn': 16}), (1, 40, 2, 1, 32, 0, None)]
                   if INTERPRETED else
                   [(1, 50, 8, 1, 256, 816, None), (1, 50, 8, 1, 256, 816, {'splits': 1}),
                    (1, 816, 8, 1, 256, 0, None), (2, 49, 32, 8, 64, 300, None),
                    (1, 10, 8, 1, 256, 816, {'bm': 64, 'splits': 5})])


@pytest.mark.parametrize('roped', (False, True), ids=('', 'rope'))
@pytest.mark.parametrize('masked', (True, False), ids=('mask', 'no_mask'))
@pytest.mark.parametrize('b,lq,heads,kv_heads,d,cached,plan', ATTENTION_CASES)
def test_fused_attention_matches_the_written_out_attention(b, lq, heads, kv_heads, d, cached,
                                                           plan, masked, roped):
    """
    One launch over the prefix cache and this call's keys equals concatenate-then-attend.

    Values read in place from wider rows, padded keys masked out, one query token that sees
    no key at all (softmax then averages every key, as the written-out attention does), key
    splits combined by the last to finish; with RoPE tables, q and this call's keys rotated
    inside the launch as pointwise.rope_qk rotates them.
    """
    from omegaq_ros.kernels.attention import fused_attention
    from omegaq_ros.policy import pointwise
    from omegaq_ros.policy.pi05_model import attention_mask, rope_tables
    dtype = torch.float32 if INTERPRETED else torch.bfloat16
    g = torch.Generator(device=DEVICE).manual_seed(lq + cached)

    def randn(*shape):
        return torch.randn(*shape, device=DEVICE, generator=g).to(dtype)
    # Values as views into wider rows (a fused q/k/v output): strides unlike the keys'.
    q, k, v = randn(b, lq, heads, d), randn(b, lq, kv_heads, d), randn(b, lq, kv_heads, 2 * d)
    v = v[..., d:]
    past = ((randn(b, cached, kv_heads, d), randn(b, cached, kv_heads, 3 * d)[..., :d])
            if cached else None)
    keys = cached + lq
    visible = (torch.rand(b, 1, keys, device=DEVICE, generator=g) > 0.2).expand(b, lq, keys)
    visible = visible.clone()
    visible[:, :, 0] = True
    visible[:, 1, :] = False
    mask = attention_mask(visible, heads, kv_heads, dtype) if masked else None
    rope = None
    q_ref, k_ref = q.float(), k.float()
    if roped:
        positions = cached + torch.arange(lq, device=DEVICE)[None].expand(b, lq)
        rope = rope_tables(positions, d, 10000.0, dtype)
        # The rotation rounded to dtype once, as the compiled rope_qk and the kernel round it.
        q_ref, k_ref = (t.to(dtype).float() for t in pointwise.rope_qk(
            q.float(), k.float(), rope[0].float(), rope[1].float()))
    ref = pointwise.math_attention(q_ref, k_ref, v.float(),
                                   mask.float() if masked else torch.zeros((), device=DEVICE),
                                   None if past is None else (past[0].float(), past[1].float()))
    out = fused_attention(q, k, v, mask, past, plan, rope)
    assert out.shape == (b, lq, heads * d) and out.dtype == dtype
    if INTERPRETED:
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    else:
        # bf16 inputs, fp32 scores and softmax, probabilities rounded to bf16 for the product.
        torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


@needs_cuda
def test_fused_attention_with_key_splits_replays_in_a_cuda_graph():
    """The split tiles' arrival counters reset themselves: every replay combines afresh."""
    from omegaq_ros.kernels.attention import fused_attention
    from omegaq_ros.policy import pointwise
    q = torch.randn(1, 50, 8, 256, device='cuda', dtype=torch.bfloat16)
    k, v = (torch.randn(1, 50, 1, 256, device='cuda', dtype=torch.bfloat16) for _ in range(2))
    past = tuple(torch.randn(1, 816, 1, 256, device='cuda', dtype=torch.bfloat16)
                 for _ in range(2))
    fused_attention(q, k, v, None, past)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fused_attention(q, k, v, None, past)
    for _ in range(3):
        q.copy_(torch.randn_like(q))
        graph.replay()
        ref = pointwise.math_attention(q.float(), k.float(), v.float(),
                                       torch.zeros((), device='cuda'),
                                       (past[0].float(), past[1].float()))
        torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='programmatic launches need CUDA')
def test_programmatic_launches_give_the_same_chunks_in_cuda_graphs():
    """
    With PDL, each kernel waits for the one before: the graphed chunk stays bit-equal.

    The bundled W4A4 policy on the fast path (bfloat16, fused pointwise work, split-K GEMMs
    whose last split reduces, attention over the prefix cache), graphs captured with and
    without programmatic launches, three new observations each.
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.policy.pi05_runtime import Pi05Policy
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, 'models', 'pi05_small_w4a4')
    state = np.random.default_rng(5).uniform(-0.3, 0.3, 14).astype(np.float32)
    chunks = {}
    try:
        for enabled in (False, True):
            tw.set_programmatic_launch(enabled)
            policy = Pi05Policy.load(path, 'cuda', dtype='bfloat16', backend='triton',
                                     cuda_graph=True, fused_pointwise=True)
            chunks[enabled] = []
            for seed in range(3):
                rng = np.random.default_rng(seed)
                images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
                noise = rng.standard_normal((20, 32)).astype(np.float32)
                chunks[enabled].append(policy.predict(images, state, 'lift the red cube',
                                                      noise=noise, normalized=True))
    finally:
        tw.set_programmatic_launch(True)
    for plain, programmatic in zip(chunks[False], chunks[True]):
        np.testing.assert_array_equal(programmatic, plain)
    assert not np.array_equal(chunks[True][0], chunks[True][1])


@pytest.mark.parametrize('m', [10, 80])
def test_two_level_scales_give_the_reference_values_with_one_scale_per_token(m):
    """
    dynamic_two_level: int8 operands code * m (m in 1..SUBSCALES), one scale per token.

    Groups far below their token's largest take smaller steps; the operand times the
    token's scale equals the reference code times its group's scale (to the last bit of the
    group scale's rounding).
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.quant.activations import SUBSCALES
    from omegaq_ros.quant.linear import reference_forward
    k, n = 512, 128
    layer = make_layer(k, n, 'dynamic_two_level', perm=False, seed=61)
    g = torch.Generator(device=DEVICE).manual_seed(62)
    spread = (2.0 ** -torch.arange(k // 64, device=DEVICE, dtype=torch.float32))
    x = torch.randn(m, k, device=DEVICE, generator=g) * spread.repeat_interleave(64)
    codes, xs, s_m, s_g = tw.quantize_input(layer, x)
    assert s_g == 0 and xs.shape == (m,)
    operands = tw.natural_order(codes).float()
    ref_scale = _reference_codes(layer, x)[2]
    token = ref_scale.amax(-1)
    # The kernel's rotation (tensor cores on a GPU) and the reference's round differently.
    torch.testing.assert_close(xs, token / SUBSCALES, rtol=1e-5, atol=0)
    subscales = (ref_scale * SUBSCALES / token[:, None]).round()
    assert int(subscales.max()) == SUBSCALES and int(subscales.min()) == 1, 'groups not spread'
    assert int(operands.abs().max()) <= 7 * SUBSCALES
    flips = operands != _reference_operands(layer, x)
    # Only a rounding tie may round the other way (fp32 noise in the rotation, the first
    # pass's int16 values).
    assert flips.float().mean().item() < 1e-3
    layer.backend = 'triton'
    y = layer(x)
    rows = ~flips.any(dim=1)
    assert int(rows.sum()) >= m - max(1, m // 10)
    _assert_fp32_close(y[rows], reference_forward(layer, x)[rows])


@pytest.mark.parametrize('mode', ['dynamic_token', 'dynamic_two_level', 'dynamic_group'])
@pytest.mark.parametrize('k,n,m', [(512, 128, 10), (512, 64, 50), (256, 128, 80)])
def test_two_level_weight_scales_match_the_reference_on_every_split(k, n, m, mode):
    """
    Weight scales that are multiples of a row unit give the reference's output.

    With one scale per token the GEMM sums codes * multiple in int32 over the whole split
    and scales once (SCALE_UNITS); with 64-group scales it rescales per group as usual. Both
    equal the reference, which reads the group scales, on every K split and on the tiled
    path, and through the layer.
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.quant.linear import reference_forward
    layer = make_layer(k, n, mode, rot_out=False, seed=71, scale_unit=True)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(72))
    codes, xs, s_m, s_g = tw.quantize_input(layer, x)
    natural = tw.natural_order(codes)
    expected = _scaled_reference(layer, natural, _expand_scales(layer, xs, m))
    plan = tw.plan(m, n, k, tuned=False)
    groups = k // 64
    for split in (1, 2, groups):
        _poison_allocator()
        y = tw.scaled_matmul(layer, codes, xs, s_m, s_g, torch.float32,
                             plan_override=dict(plan, split=split, gps=groups // split))
        _assert_fp32_close(y, expected)
    layer.backend = 'triton'
    y = layer(x)
    # Rows where a code sits on a rounding tie (_check_codes) may round the other way.
    same = (natural.float() == _reference_operands(layer, x)).all(dim=1)
    assert int(same.sum()) >= m - max(1, m // 10)
    ref = reference_forward(layer, x)
    torch.testing.assert_close(y[same], ref[same], rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@needs_cuda
@pytest.mark.parametrize('mode', ['static_group', 'dynamic_group', 'dynamic_token',
                                  'dynamic_two_level'])
def test_bfloat16_input_rotates_in_one_dot_to_the_three_dot_values(mode):
    """
    A bfloat16 input (no smoothing) rotates on the tensor cores in one bfloat16 dot.

    The fp32 path splits x into three bfloat16 parts; for bfloat16 values two of them are
    zero, so the one-dot codes and scales equal those of the same values given as fp32.
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    layer = make_layer(1024, 64, mode, smooth=False, seed=91)
    g = torch.Generator(device=DEVICE).manual_seed(93)
    x = (torch.randn(50, 1024, device=DEVICE, generator=g) * 3).to(torch.bfloat16)
    one_dot = tw._quantize(x, layer, [layer.input_owner])[:2]
    three_dots = tw._quantize(x.float(), layer, [layer.input_owner])[:2]
    for single, split in zip(one_dot, three_dots):
        assert torch.equal(single, split)


@pytest.mark.parametrize('mode', ['dynamic_token', 'dynamic_two_level'])
@pytest.mark.parametrize('outs', [(128,), (128, 64, 64)], ids=('one', 'fused'))
def test_widened_weights_give_the_register_unpacked_outputs(mode, outs):
    """
    Many tokens, one scale per token, two-level weights: the weights are widened first.

    widen_kernel writes the codes times their multiples as int8 and wide_gemm_kernel
    multiplies them from shared memory; the int32 sums, and so the outputs, equal those of
    the register-unpacking GEMM bit for bit, for one linear and for fused q/k/v (each
    member with its own input transform and token scales), with the bias.
    """
    from omegaq_ros import kernels
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.quant.linear import reference_forward
    k, m = 256, tw.TUNED_MIN_ROWS + 4
    layers = [make_layer(k, n, mode, rot_out=False, seed=101 + i, scale_unit=True)
              for i, n in enumerate(outs)]
    parent = _on_triton(layers)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(105))
    outputs = {}
    default = tw.WIDENED_WEIGHTS['enabled']
    try:
        for widened in (False, True):
            tw.set_widened_weights(widened)
            _poison_allocator()
            kernels.LAUNCHES.clear()
            outputs[widened] = _outputs(parent, x)
            assert kernels.LAUNCHES['widen'] == int(widened)
            assert kernels.LAUNCHES['gemm'] == 1
    finally:
        tw.set_widened_weights(default)
    for layer, plain, widened in zip(layers, outputs[False], outputs[True]):
        assert bool(torch.isfinite(widened).all())
        assert torch.equal(widened, plain)
        same = (tw.natural_order(tw.quantize_input(layer, x)[0]).float()
                == _reference_operands(layer, x)).all(dim=1)
        assert int(same.sum()) >= m - max(1, m // 10)
        ref = reference_forward(layer, x)[same]
        assert ((widened[same] - ref).norm() / ref.norm()).item() < 1e-3


@pytest.mark.parametrize('mode', ('dynamic_group', 'dynamic_two_level'))
@pytest.mark.parametrize('outs', ((192,), (128, 64, 64)))
def test_gathered_inputs_give_the_quantize_gather_outputs(mode, outs):
    """
    Many rows: a permuted input is gathered by a launch of its own, with the same outputs.

    gather_kernel writes x's columns in each member's permutation, and the quantize then
    reads them in place; the codes, scales and so the outputs equal those of the quantize
    gathering the columns itself, bit for bit, for one linear and fused q/k/v (each member
    with its own permutation). Below GATHERED_MIN_ROWS, and with smoothing, the quantize
    gathers (no extra launch).
    """
    from omegaq_ros import kernels
    from omegaq_ros.kernels import triton_w4a4 as tw
    k, m = 256, tw.GATHERED_MIN_ROWS + 4
    two_level = mode == 'dynamic_two_level'
    layers = [make_layer(k, n, mode, smooth=False, rot_out=False, seed=121 + i,
                         scale_unit=two_level) for i, n in enumerate(outs)]
    parent = _on_triton(layers)
    dtype = torch.float32 if INTERPRETED else torch.bfloat16
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(125)).to(dtype)
    outputs, launches = {}, {}
    try:
        for gathered in (False, True):
            tw.set_gathered_input(gathered)
            _poison_allocator()
            kernels.LAUNCHES.clear()
            outputs[gathered] = _outputs(parent, x)
            launches[gathered] = kernels.LAUNCHES['gather']
        kernels.LAUNCHES.clear()
        parent(x[:tw.GATHERED_MIN_ROWS - 1])
        smoothing = make_layer(k, 64, mode, rot_out=False, seed=127, scale_unit=two_level)
        smoothing.backend = 'triton'
        smoothing(x)
        assert kernels.LAUNCHES['gather'] == 0
    finally:
        tw.set_gathered_input(True)
    assert launches == {False: 0, True: 1}
    for plain, gathered in zip(outputs[False], outputs[True]):
        assert bool(torch.isfinite(gathered).all())
        assert torch.equal(gathered, plain)


@pytest.mark.parametrize('gating', ('gelu_gate', 'silu_gate'))
def test_gated_mlp_ends_the_gate_up_gemm_in_the_down_first_pass(gating):
    """
    A prefix-sized gated MLP on two-level scales: gate and up never go through memory.

    wide_gated_kernel multiplies both members' codes by their widened weights and stores the
    down projection's first pass (gated, rotated values and token maxima); the down
    projection then only quantizes them. Its output equals the unfused path's (gate/up GEMM,
    gated first pass, quantize, GEMM) except on rows where a rotated value sits on a
    rounding tie (the rotation runs in another kernel).
    """
    from omegaq_ros import kernels
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.policy import pointwise
    k, hidden, m = 128, 256, tw.TUNED_MIN_ROWS + 4
    mode = 'dynamic_two_level'
    parent = torch.nn.Module()
    parent.gate_proj, parent.up_proj = (
        make_layer(k, hidden, mode, rot_out=False, bias=False, seed=111 + i, scale_unit=True)
        for i in range(2))
    parent.down_proj = make_layer(hidden, k, mode, perm=False, smooth=False, rot_out=False,
                                  seed=113, scale_unit=True)
    for layer in (parent.gate_proj, parent.up_proj, parent.down_proj):
        layer.backend = 'triton'
    kernels.fuse_siblings(parent, (('gate_proj', 'up_proj'),))
    dtype = torch.float32 if INTERPRETED else torch.bfloat16
    h = torch.randn(2, m // 2, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(114)).to(dtype)
    outputs, launches = {}, {}
    default = tw.WIDENED_WEIGHTS['enabled']
    try:
        for widened in (False, True):
            tw.set_widened_weights(widened)
            _poison_allocator()
            kernels.LAUNCHES.clear()
            outputs[widened] = kernels.gated_mlp(parent.gate_proj, parent.up_proj,
                                                 parent.down_proj, h, gating, pointwise.EAGER)
            launches[widened] = dict(kernels.LAUNCHES)
    finally:
        tw.set_widened_weights(default)
    # Widened: gate/up's first pass and quantize, the down projection's quantize only.
    assert launches[True] == {'quantize': 3, 'widen': 2, 'gemm': 2}
    assert launches[False] == {'quantize': 4, 'gemm': 2}
    fused, unfused = outputs[True], outputs[False]
    assert fused.shape == (2, m // 2, k) and fused.dtype == dtype
    assert bool(torch.isfinite(fused).all())
    if dtype == torch.float32:
        # The interpreter's float32 epilogues may round a sum an ulp apart (numpy 2.4 does);
        # a code on a rounding tie moves an output by a 4-bit step, far more.
        differ = (fused - unfused).abs() > 1e-5 * unfused.abs().amax()
    else:
        differ = fused != unfused
    rows_differ = differ.any(dim=-1).reshape(-1)
    assert int(rows_differ.sum()) <= max(1, m // 10)
    assert ((fused.float() - unfused.float()).norm() / unfused.float().norm()).item() < 1e-2


@pytest.fixture
def integer_gemm_only():
    """Run dynamic_group128 layers on the integer GEMM (not cuBLAS FP8) for one test."""
    from omegaq_ros.kernels import triton_w4a4 as tw
    tw.set_fp8_gemm(False)
    yield
    tw.set_fp8_gemm(True)


@pytest.mark.parametrize('features', list(FEATURE_SETS))
@pytest.mark.parametrize('k,n,m', SUBSET_SHAPES)
def test_wide_groups_on_the_integer_gemm(k, n, m, features, integer_gemm_only):
    """
    dynamic_group128 off Hopper: pairs of 64-groups share a scale, on the integer GEMM.

    One quantize program per pair gives both groups the pair's scale, and the GEMM is
    dynamic_group's.
    """
    _run_case(k, n, m, 'dynamic_group128', seed=23, **FEATURE_SETS[features])


@pytest.mark.parametrize('dtype', ('float32', 'bfloat16'))
@pytest.mark.parametrize('k,n,m', SUBSET_SHAPES)
def test_fp8_operands_are_the_integer_operands(k, n, m, dtype):
    """
    The FP8 GEMM's operands are the integer GEMM's, and their product is the reference's.

    e4m3 codes equal the int8 ones, one scale per (token, pair) is stored pair-major
    ([M, K / 128] with stride (1, M), cuBLAS's 1x128 layout), and widen_fp8_kernel writes
    the weights' codes and 128-group scales. Their block-scaled product is the reference
    output up to fp32 rounding.
    """
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.quant.linear import reference_forward
    layer = make_layer(k, n, 'dynamic_group128', rot_out=False, seed=29)
    x = torch.randn(m, k, device=DEVICE, generator=torch.Generator(device=DEVICE)
                    .manual_seed(30)).to(getattr(torch, dtype))
    codes8, scales8, _, _ = tw.quantize_input(layer, x, fp8=True)
    codes, scales, _, _ = tw.quantize_input(layer, x, fp8=False)
    assert codes8.dtype == torch.float8_e4m3fn and codes.dtype == torch.int8
    assert torch.equal(codes8.float(), codes.float())
    assert scales8.shape == (m, k // 128) and scales8.stride() == (1, m)
    assert torch.equal(scales8, scales[:, 0::2]) and torch.equal(scales8, scales[:, 1::2])
    weights8, weight_scales = tw._widen_fp8(layer, x)
    unpacked = tw.gemm_order(layer.weight_codes().to(torch.int8))
    assert torch.equal(weights8.float(), unpacked.float())
    assert torch.equal(weight_scales, layer.weight_scale.float().t())
    y = torch.zeros(m, n, device=DEVICE)
    for j in range(k // 128):
        block = slice(128 * j, 128 * (j + 1))
        y += (codes8[:, block].float() @ weights8[:, block].float().t()
              * scales8[:, j, None] * weight_scales[j][None, :])
    ref = reference_forward(layer, x.float())
    flipped_rows = _check_codes(layer, x.float(), tw.natural_order(codes), scales)
    _assert_fp32_close((y + layer.bias)[~flipped_rows], ref[~flipped_rows])


def test_resident_fp8_operands_follow_the_weights():
    """The few-row GEMMs' kept FP8 weights are widened again once the weights change."""
    from omegaq_ros.kernels import triton_w4a4 as tw
    layer = make_layer(256, 128, 'dynamic_group128', rot_out=False, seed=33)
    x = torch.zeros(4, 256, device=DEVICE)
    tw.LAUNCHES.clear()
    first = tw._resident_fp8(layer, x)
    assert tw._resident_fp8(layer, x)[0] is first[0] and tw.LAUNCHES['widen'] == 1
    assert tw.resident_bytes(torch.nn.Sequential(layer)) == 256 * 128 + 2 * 128 * 4
    layer.weight_packed.copy_(layer.weight_packed.flip(0))      # a reload, in place
    again = tw._resident_fp8(layer, x)
    assert again[0] is not first[0] and tw.LAUNCHES['widen'] == 2
    assert torch.equal(again[0].float(), first[0].float().flip(0))


needs_fp8_gemm = pytest.mark.skipif(
    INTERPRETED or not torch.cuda.is_available()
    or torch.cuda.get_device_capability()[0] != 9, reason='the FP8 block-scaled GEMM needs sm_90')


@needs_fp8_gemm
@pytest.mark.parametrize('dtype', ('float32', 'bfloat16'))
def test_fp8_gemm_layers_match_the_reference(dtype):
    """
    dynamic_group128 on an H100/H200: cuBLAS's block-scaled FP8 GEMM gives the integer GEMM.

    Each linear, fused q/k/v (each its own transform: a GEMM per member) and a gated down
    projection run on it and agree with the same codes on the integer GEMM (fp32: to fp32
    rounding; bfloat16: cuBLAS rounds its output within bfloat16 noise of ours) and with the
    reference backend (a near-tie code may flip), and replay in a CUDA graph. A row count
    cuBLAS refuses (it did 50 rows on an H100, RESULTS 7x) takes the integer GEMM.
    """
    from omegaq_ros import kernels
    from omegaq_ros.kernels import triton_w4a4 as tw
    from omegaq_ros.policy import pointwise
    from omegaq_ros.quant.linear import reference_forward
    dtype = getattr(torch, dtype)
    same_codes_tol, reference_tol = (1e-5, 1e-3) if dtype == torch.float32 else (1e-2, 1e-2)
    k, m = 2048, 816
    layers = [make_layer(k, n, 'dynamic_group128', rot_out=False, seed=50 + i)
              for i, n in enumerate((2048, 256, 256))]
    model = _Siblings(*layers)
    x = torch.randn(m, k, device='cuda', generator=torch.Generator(device='cuda')
                    .manual_seed(51)).to(dtype)
    for layer in layers:
        layer.backend = 'triton'
        assert tw.fp8_gemm_fits(layer, x)
        codes, _, _, _ = tw.quantize_input(layer, x)
        assert codes.dtype == torch.float8_e4m3fn
    references = [reference_forward(layer, x) for layer in layers]

    def rel(y, ref):
        return ((y.float() - ref.float()).norm() / ref.float().norm()).item()

    def on_the_integer_gemm(run):
        tw.set_fp8_gemm(False)
        try:
            return run()
        finally:
            tw.set_fp8_gemm(True)

    integer = on_the_integer_gemm(lambda: [layer(x) for layer in layers])
    kernels.LAUNCHES.clear()
    alone = [layer(x) for layer in layers]
    assert kernels.LAUNCHES['gemm'] == 3 and kernels.LAUNCHES['widen'] == 3
    assert all(y.dtype == dtype for y in alone)
    assert all(rel(y, i) < same_codes_tol for y, i in zip(alone, integer))
    assert all(rel(y, ref) < reference_tol for y, ref in zip(alone, references))
    kernels.fuse_siblings(model, (('q_proj', 'k_proj', 'v_proj'),))
    kernels.LAUNCHES.clear()
    fused = model(x)
    assert kernels.LAUNCHES['quantize'] == 1 and kernels.LAUNCHES['widen'] == 1
    assert all(rel(y, i) < same_codes_tol for y, i in zip(fused, integer))

    # The reference gates as the quantize does: fp32 GELU and product, rounded once.
    down = make_layer(4096, 1024, 'dynamic_group128', rot_out=False, seed=52)
    down.backend = 'triton'
    gate_up = torch.randn(m, 8192, device='cuda').to(dtype)
    gate, up = gate_up[:, :4096], gate_up[:, 4096:]
    product = (F.gelu(gate.float(), approximate='tanh') * up.float()).to(dtype)
    gated = tw.gated_projection(down, gate, up, 'gelu_gate', pointwise.EAGER)
    assert rel(gated, on_the_integer_gemm(
        lambda: tw.gated_projection(down, gate, up, 'gelu_gate', pointwise.EAGER))) \
        < same_codes_tol
    assert rel(gated, reference_forward(down, product.float())) < reference_tol

    few = x[:48]
    kernels.LAUNCHES.clear()
    steps = [model(few) for _ in range(2)]
    if tw.fp8_gemm_fits(layers[0], few):
        assert kernels.LAUNCHES['widen'] == 1 and kernels.LAUNCHES['gemm'] == 6
    else:
        assert kernels.LAUNCHES['widen'] == 0 and kernels.LAUNCHES['gemm'] == 2
    assert torch.equal(steps[0][0], steps[1][0])
    assert all(rel(y, reference_forward(layer, few)) < reference_tol
               for y, layer in zip(steps[0], layers))

    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        replayed = model(x)
    for y in replayed:
        y.fill_(float('nan'))
    graph.replay()
    torch.cuda.synchronize()
    assert all(torch.equal(y, f) for y, f in zip(replayed, fused))
