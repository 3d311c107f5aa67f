# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Rotations: orthogonal, output-preserving, and equalizing as the method claims."""

from omegaq_ros.quant.rotation import (build_input_rotation, build_output_rotation, hadamard,
                                       load_blocks, rotate_rows, store_blocks,
                                       zigzag_permutation)
import pytest
import torch


def outlier_weight(out_features=192, in_features=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=gen)
    w[:, [3, 70, 71, 200]] *= torch.tensor([40.0, 25.0, 12.0, 30.0])
    return w


def test_hadamard_is_orthogonal_with_equal_magnitudes():
    h = hadamard(64)
    assert torch.allclose(h @ h.t(), torch.eye(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(h.abs(), torch.full_like(h, 1 / 8))
    with pytest.raises(ValueError):
        hadamard(48)


def block_energy_spread(w, perm):
    energy = w.pow(2).mean(0)[perm].reshape(-1, 64).sum(1)
    return float(energy.max() / energy.min())


def test_zigzag_is_a_permutation_that_balances_blocks():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(96, 256, generator=gen) * torch.linspace(0.1, 6.0, 256)
    perm = zigzag_permutation(w)
    assert torch.equal(perm.sort().values, torch.arange(256))
    ranked = w.pow(2).mean(0).argsort(descending=True)
    # Omega-QVLA's code: max, min, 2nd max, 2nd min, ... cut into consecutive blocks.
    ends = torch.stack((ranked[:128], ranked.flip(0)[:128]), 1).flatten()
    assert block_energy_spread(w, perm) < 1.05
    assert block_energy_spread(w, ends) > 1.5
    assert block_energy_spread(w, ranked) > 10.0


def test_zigzag_puts_each_outlier_channel_in_its_own_block():
    perm = zigzag_permutation(outlier_weight())
    blocks = [int((perm == c).nonzero()) // 64 for c in (3, 70, 71, 200)]
    assert sorted(blocks) == [0, 1, 2, 3]


@pytest.mark.parametrize('kind', ['hadamard', 'svd', 'composite'])
@pytest.mark.parametrize('zigzag', [False, True])
def test_every_rotation_is_orthogonal_and_preserves_the_product(kind, zigzag):
    w = outlier_weight()
    rotation = build_input_rotation(w, kind, zigzag)
    assert rotation.blocks.dtype == torch.float64 and rotation.blocks.shape == (4, 64, 64)
    # The blocks are in their stored int8 form: orthogonal to the storage rounding only ...
    for block in rotation.blocks:
        assert (block @ block.t() - torch.eye(64, dtype=torch.float64)).abs().max() < 1e-2
    dense = rotation.dense()
    assert (dense @ dense.t() - torch.eye(256, dtype=torch.float64)).abs().max() < 1e-2
    # ... but the weight side takes their exact inverse, so the product is unchanged.
    x = torch.randn(5, 256, dtype=torch.float64)
    y = rotation.apply(x) @ rotation.apply_to_weight(w.double()).t()
    assert torch.allclose(y, x @ w.double().t(), rtol=1e-9, atol=1e-9)


def test_stored_blocks_round_trip_within_int8_precision():
    rotation = torch.linalg.qr(torch.randn(3, 64, 64, dtype=torch.float64))[0]
    codes, scale = store_blocks(rotation)
    assert codes.dtype == torch.int8 and scale.dtype == torch.float16
    assert scale.shape == (3, 64) and int(codes.abs().max()) == 127
    restored = load_blocks(codes, scale, torch.float64)
    column_max = rotation.abs().amax(dim=1, keepdim=True)
    assert ((restored - rotation).abs() <= column_max / 254 * 1.01).all()
    # A Hadamard block is stored exactly up to one common factor within fp16 rounding.
    codes, scale = store_blocks(hadamard(64)[None])
    assert bool((codes.abs() == 127).all())
    assert abs(float(load_blocks(codes, scale, torch.float64)[0, 0, 0]) - 0.125) < 1e-4


def test_composite_equalizes_column_energy_inside_each_block():
    w = outlier_weight()
    rotation = build_input_rotation(w, 'composite', zigzag=True)
    norms = rotation.apply_to_weight(w.double()).norm(dim=0).reshape(4, 64)
    inside = norms.max(1).values / norms.min(1).values
    # Exactly equal with the float64 rotation; the int8-stored blocks leave a few percent.
    assert inside.max() < 1.06
    before = w.norm(dim=0)
    after = norms.flatten()
    assert after.max() / after.min() < 0.1 * (before.max() / before.min())


def test_output_rotation_is_orthogonal_and_restores_the_output():
    w = outlier_weight(out_features=128)
    q = build_output_rotation(w)
    for block in q:
        assert (block @ block.t() - torch.eye(64, dtype=torch.float64)).abs().max() < 1e-2
    stored = rotate_rows(w.double(), torch.linalg.inv(q))
    assert torch.allclose(rotate_rows(stored, q), w.double(), atol=1e-9)


def test_sizes_that_do_not_block_are_refused():
    with pytest.raises(ValueError, match='multiple of the block size'):
        build_input_rotation(torch.randn(8, 100), 'composite', zigzag=True)
