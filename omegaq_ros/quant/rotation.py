# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Block-diagonal input rotations of Omega-QVLA, stored as 64x64 blocks plus a permutation.

For a linear y = x W^T with in_features = n * B (B = 64), the input transform is
x_r = (x[..., perm]) reshaped to n blocks of B, each block multiplied by its own orthogonal
R_b. Rotating the weight the same way (W_r = W[:, perm] per block @ R_b) leaves the product
unchanged: x_r W_r^T = x P R R^T P^T W^T = x W^T. Quantization then sees x_r and W_r.

Kinds of R_b:
  hadamard   normalized Sylvester Hadamard H_B (data free).
  svd        U_b, the eigenvectors of W_b^T W_b (W_b = the weight's columns of block b).
  composite  U_b @ H_B. W_b U_b has orthogonal columns, and every entry of H_B has magnitude
             1/sqrt(B), so every column of W_b U_b H_B has squared norm ||W_b||_F^2 / B: the
             weight's column energy is exactly equal inside each block.
What is left is the imbalance between blocks; the zigzag permutation spreads high- and
low-energy channels over all blocks before they are formed.
"""

from dataclasses import dataclass
import math
from typing import Optional

import torch

BLOCK = 64


def hadamard(size: int) -> torch.Tensor:
    """Return the normalized Sylvester Hadamard matrix (float64), size a power of two."""
    if size < 1 or size & (size - 1):
        raise ValueError(f'Hadamard size must be a power of two, got {size}')
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < size:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h / math.sqrt(size)


def zigzag_permutation(weight: torch.Tensor, block: int = BLOCK,
                       smoothing: float = 0.15) -> torch.Tensor:
    """
    Input-channel permutation that deals channels to blocks by weight column energy.

    Energy e_j = mean_i W_ij^2, smoothed toward its mean by `smoothing` (as Omega-QVLA does;
    the smoothing is monotone, so it keeps the order and only matters for reports). Channels
    are sorted by energy and dealt out like cards in a snake: ranks 0..n-1 to blocks
    0..n-1, ranks n..2n-1 to blocks n-1..0, and so on. Every block then receives channels
    from both ends of the ranking and the block energies come out nearly equal.

    Omega-QVLA's own code interleaves max, min, 2nd max, 2nd min, ... and cuts that sequence
    into consecutive blocks, which puts the 32 strongest channels into block 0; the snake
    deal is the DuQuant zigzag that the paper describes.
    Returns perm (int64 [in]) with x_permuted = x[..., perm].
    """
    in_features = weight.shape[1]
    if in_features % block:
        raise ValueError(f'in_features {in_features} is not a multiple of the block size {block}')
    energy = weight.detach().double().pow(2).mean(0)
    energy = (1.0 - smoothing) * energy + smoothing * energy.mean()
    ranked = torch.argsort(energy, descending=True, stable=True)
    n_blocks = in_features // block
    slots = torch.empty(n_blocks, block, dtype=torch.int64)
    for rank in range(in_features):
        sweep, offset = divmod(rank, n_blocks)
        target = offset if sweep % 2 == 0 else n_blocks - 1 - offset
        slots[target, sweep] = ranked[rank]
    return slots.flatten()


def svd_block_rotations(weight: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """
    Per-block eigenvectors of W_b^T W_b, float64 [n_blocks, B, B], eigenvalues descending.

    eigh works for any number of rows (an SVD of a short W_b would give fewer than B vectors).
    Signs are fixed (largest component of each vector positive) so builds are reproducible.
    """
    w = weight.detach().double()
    out_features, in_features = w.shape
    blocks = w.reshape(out_features, in_features // block, block).transpose(0, 1)
    gram = blocks.transpose(1, 2) @ blocks
    _, vectors = torch.linalg.eigh(gram)
    vectors = vectors.flip(-1)
    pivot = vectors.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(torch.gather(vectors, 1, pivot))
    signs[signs == 0] = 1.0
    return vectors * signs


@dataclass
class BlockRotation:
    """x -> x[..., perm] then per-block @ blocks[b]; perm or blocks may be absent."""

    perm: Optional[torch.Tensor]      # int64 [in]
    blocks: Optional[torch.Tensor]    # float32 [in // B, B, B]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate activations (or the weight's rows, which live in the same input space)."""
        if self.perm is not None:
            x = x.index_select(-1, self.perm)
        if self.blocks is not None:
            n_blocks, block, _ = self.blocks.shape
            shape = x.shape
            x = x.reshape(-1, n_blocks, block).transpose(0, 1)
            x = torch.bmm(x, self.blocks.to(x.dtype)).transpose(0, 1).reshape(shape)
        return x

    def dense(self) -> torch.Tensor:
        """Return the full in x in matrix M with apply(x) == x @ M (tests and reports only)."""
        size = self.perm.numel() if self.perm is not None else (
            self.blocks.shape[0] * self.blocks.shape[1])
        return self.apply(torch.eye(size, dtype=torch.float64))


def build_input_rotation(weight: torch.Tensor, kind: str, zigzag: bool,
                         zigzag_smoothing: float = 0.15, block: int = BLOCK) -> BlockRotation:
    """Build the input rotation a recipe asks for from this linear's own weight."""
    if kind not in ('none', 'hadamard', 'svd', 'composite'):
        raise ValueError(f"rotation must be one of none|hadamard|svd|composite, got '{kind}'")
    in_features = weight.shape[1]
    if kind != 'none' and in_features % block:
        raise ValueError(f'in_features {in_features} is not a multiple of the block size {block}')
    perm = zigzag_permutation(weight, block, zigzag_smoothing) if zigzag else None
    if kind == 'none':
        return BlockRotation(perm, None)
    permuted = weight.detach()[:, perm] if perm is not None else weight.detach()
    n_blocks = in_features // block
    if kind == 'hadamard':
        blocks = hadamard(block).expand(n_blocks, block, block)
    elif kind == 'svd':
        blocks = svd_block_rotations(permuted, block)
    else:
        blocks = svd_block_rotations(permuted, block) @ hadamard(block)
    return BlockRotation(perm, blocks.float().contiguous())


def build_output_rotation(rotated_weight: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """
    Per-64-row-block eigenvectors of W_b W_b^T (no Hadamard), float32 [out // B, B, B].

    The weight is stored as Q^T W_r and the layer output is rotated back by Q, so row
    outliers are spread across their block before the weight is quantized.
    """
    out_features = rotated_weight.shape[0]
    if out_features % block:
        raise ValueError(f'out_features {out_features} is not a multiple of the block size '
                         f'{block}')
    return svd_block_rotations(rotated_weight.detach().t(), block).float().contiguous()


def rotate_rows(weight: torch.Tensor, blocks: torch.Tensor, transpose: bool) -> torch.Tensor:
    """Apply a block rotation on the output (row) axis: Q^T W when transpose, else Q W."""
    n_blocks, block, _ = blocks.shape
    w = weight.reshape(n_blocks, block, -1)
    q = blocks.to(weight.dtype)
    q = q.transpose(1, 2) if transpose else q
    return torch.bmm(q, w).reshape(weight.shape)
