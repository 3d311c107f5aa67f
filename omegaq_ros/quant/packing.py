# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Two signed 4-bit codes per byte.

Layout (the artifact format depends on it): codes are two's-complement nibbles in [-8, 7];
along the last axis, the code at even index 2i goes to the low nibble of byte i and the
code at odd index 2i+1 to its high nibble. So byte = (c[2i] & 0xF) | ((c[2i+1] & 0xF) << 4),
stored as uint8 with shape [..., K // 2]. This is the QuaRot nibble order (low first).
"""

import torch

INT4_MIN = -8
INT4_MAX = 7
# Scales are stored in fp16 (weight groups, activation tables, rotation columns): clamped to
# the normal fp16 range, so none is 0, subnormal or inf.
FP16_MIN_NORMAL = 2.0 ** -14
FP16_MAX = 65504.0


def fp16_scale(scale: torch.Tensor) -> torch.Tensor:
    """Return scales as the fp16 values they are stored as (clamped to the normal range)."""
    return scale.clamp(FP16_MIN_NORMAL, FP16_MAX).half()


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack int codes in [-8, 7] along the last axis (even length) into uint8."""
    if codes.shape[-1] % 2:
        raise ValueError(f'pack_int4 needs an even last dimension, got shape {tuple(codes.shape)}')
    if codes.is_floating_point():
        raise TypeError(f'pack_int4 takes integer codes, got {codes.dtype}')
    if codes.numel() and (codes.min() < INT4_MIN or codes.max() > INT4_MAX):
        raise ValueError(f'int4 codes must lie in [{INT4_MIN}, {INT4_MAX}], '
                         f'got [{int(codes.min())}, {int(codes.max())}]')
    nibbles = codes.to(torch.int16) & 0xF
    low, high = nibbles[..., 0::2], nibbles[..., 1::2]
    return (low | (high << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4: uint8 [..., K // 2] -> int8 codes [..., K]."""
    if packed.dtype != torch.uint8:
        raise TypeError(f'unpack_int4 takes uint8, got {packed.dtype}')
    as_int = packed.to(torch.int16)
    low = as_int & 0xF
    high = (as_int >> 4) & 0xF
    codes = torch.stack((low, high), dim=-1).flatten(-2)
    # Sign-extend the 4-bit two's complement.
    return (codes - ((codes & 0x8) << 1)).to(torch.int8)
