# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""int4 packing: exact for every code, documented nibble order, bad input refused."""

from omegaq_ros.quant.packing import pack_int4, unpack_int4
import pytest
import torch


def test_every_code_in_every_nibble_round_trips():
    codes = torch.arange(-8, 8, dtype=torch.int8)
    pairs = torch.cartesian_prod(codes, codes).to(torch.int8)          # all 256 bytes
    packed = pack_int4(pairs)
    assert packed.dtype == torch.uint8 and packed.shape == (256, 1)
    assert sorted(packed.flatten().tolist()) == list(range(256))
    assert torch.equal(unpack_int4(packed), pairs)


def test_nibble_order_is_low_first():
    packed = pack_int4(torch.tensor([[1, -1, -8, 7]], dtype=torch.int8))
    assert packed.tolist() == [[0xF1, 0x78]]


def test_random_matrix_round_trips():
    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(-8, 8, (37, 256), generator=gen, dtype=torch.int8)
    assert torch.equal(unpack_int4(pack_int4(codes)), codes)


@pytest.mark.parametrize('bad, error', [
    (torch.tensor([[8, 0]], dtype=torch.int8), ValueError),
    (torch.tensor([[-9, 0]], dtype=torch.int16), ValueError),
    (torch.tensor([[1, 2, 3]], dtype=torch.int8), ValueError),
    (torch.tensor([[0.5, 1.0]]), TypeError),
])
def test_bad_codes_are_refused(bad, error):
    with pytest.raises(error):
        pack_int4(bad)
