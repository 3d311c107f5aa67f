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

from omegaq_ros.quant.packing import fp16_scale
import torch

BLOCK = 64


def hadamard(size: int, device=None) -> torch.Tensor:
    """Return the normalized Sylvester Hadamard matrix (float64), size a power of two."""
    if size < 1 or size & (size - 1):
        raise ValueError(f'Hadamard size must be a power of two, got {size}')
    h = torch.ones(1, 1, dtype=torch.float64, device=device)
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
    # On the CPU: the deal below is a scalar loop.
    energy = weight.detach().double().pow(2).mean(0).cpu()
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


ROTATION_CODE_MAX = 127


def store_blocks(blocks: torch.Tensor):
    """
    Round [n, B, B] block matrices to their stored form: int8 codes and one fp16 scale per column.

    R_hat[b, i, j] = codes[b, i, j] * scale[b, j]. Entries of a 64x64 orthogonal block are at
    most 1 in magnitude and mostly near 1/8, so int8 codes keep them to about 0.5% relative;
    the weight side uses the exact inverse of R_hat (BlockRotation.apply_to_weight), so the
    stored rounding never changes x W^T, only how evenly R_hat spreads the energy.
    Returns (codes int8 [n, B, B], scale float16 [n, B]).
    """
    blocks = blocks.detach().double()
    scale = fp16_scale(blocks.abs().amax(dim=1) / ROTATION_CODE_MAX)
    codes = torch.round(blocks / scale.double()[:, None, :])
    codes = codes.clamp(-ROTATION_CODE_MAX, ROTATION_CODE_MAX)
    return codes.to(torch.int8), scale


def load_blocks(codes: torch.Tensor, scale: torch.Tensor,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dequantize stored block matrices: codes [n, B, B] * scale [n, 1, B] in dtype."""
    return codes.to(dtype) * scale.to(dtype)[:, None, :]


@dataclass
class BlockRotation:
    """
    x -> x[..., perm] then per-block @ blocks[b]; perm or blocks may be absent.

    `blocks` are the stored (int8-rounded, see store_blocks) matrices in float64, so the
    calibration pass sees exactly the activations the deployed layer computes.
    """

    perm: Optional[torch.Tensor]      # int64 [in]
    blocks: Optional[torch.Tensor]    # float64 [in // B, B, B], values of the stored form

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate activations: x P R_hat (block-diagonal R_hat)."""
        if self.perm is not None:
            x = x.index_select(-1, self.perm.to(x.device))
        if self.blocks is not None:
            x = _blockwise(x, self.blocks.to(x.device, x.dtype))
        return x

    def apply_to_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """
        Rotate a weight [out, in] so that apply(x) @ result^T == x @ weight^T exactly.

        That is W P R_hat^{-T}; for an orthogonal R_hat it equals apply(W).
        """
        w = weight
        if self.perm is not None:
            w = w.index_select(-1, self.perm.to(w.device))
        if self.blocks is not None:
            inverse_t = torch.linalg.inv(self.blocks.double()).transpose(1, 2)
            w = _blockwise(w.double(), inverse_t.to(w.device)).to(weight.dtype)
        return w

    def dense(self) -> torch.Tensor:
        """Return the full in x in matrix M with apply(x) == x @ M (tests and reports only)."""
        size = self.perm.numel() if self.perm is not None else (
            self.blocks.shape[0] * self.blocks.shape[1])
        return self.apply(torch.eye(size, dtype=torch.float64))


def _blockwise(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    n_blocks, block, _ = blocks.shape
    shape = x.shape
    xb = x.reshape(-1, n_blocks, block).transpose(0, 1)
    return torch.bmm(xb, blocks).transpose(0, 1).reshape(shape)


def _hadamard_blocks(permuted: torch.Tensor, block: int) -> torch.Tensor:
    n_blocks = permuted.shape[1] // block
    return hadamard(block, permuted.device).expand(n_blocks, block, block)


def _composite_blocks(permuted: torch.Tensor, block: int) -> torch.Tensor:
    return svd_block_rotations(permuted, block) @ hadamard(block, permuted.device)


# The input rotations a recipe can name: each builds the [in/B, B, B] blocks from the weight
# with its input channels already permuted (None: no rotation). A new kind is one entry here.
ROTATIONS = {'none': None, 'hadamard': _hadamard_blocks, 'svd': svd_block_rotations,
             'composite': _composite_blocks}


def build_input_rotation(weight: torch.Tensor, kind: str, zigzag: bool,
                         zigzag_smoothing: float = 0.15, block: int = BLOCK) -> BlockRotation:
    """
    Build the input rotation a recipe asks for from a weight [out, in].

    For linears that share an input, pass their weights stacked (stack_weights). The blocks
    come back in their stored precision (store_blocks), as float64.
    """
    if kind not in ROTATIONS:
        raise ValueError(f"rotation must be one of {'|'.join(ROTATIONS)}, got '{kind}'")
    in_features = weight.shape[1]
    if kind != 'none' and in_features % block:
        raise ValueError(f'in_features {in_features} is not a multiple of the block size {block}')
    perm = zigzag_permutation(weight, block, zigzag_smoothing) if zigzag else None
    if kind == 'none':
        return BlockRotation(perm, None)
    permuted = weight.detach()[:, perm] if perm is not None else weight.detach()
    codes, scale = store_blocks(ROTATIONS[kind](permuted, block))
    return BlockRotation(perm, load_blocks(codes, scale, torch.float64))


def stack_weights(weights) -> torch.Tensor:
    """
    Stack the weights of linears that read one input, each scaled to unit Frobenius norm.

    The shared rotation then equalizes the summed column energy with every linear counting
    equally, whatever its number of outputs (q has 8x the rows of k and v in Gemma).
    """
    weights = [w.detach().double() for w in weights]
    if len(weights) == 1:
        return weights[0]
    return torch.cat([w / w.norm().clamp_min(1e-30) for w in weights])


def build_output_rotation(rotated_weight: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """
    Per-64-row-block eigenvectors Q of W_b W_b^T (no Hadamard), float64 [out // B, B, B].

    Returned in their stored precision (store_blocks). The weight is stored as Q^{-1} W_r
    (rotate_rows with the inverse) and the layer output is y_r Q^T, so row outliers are spread
    across their block before the weight is quantized.
    """
    out_features = rotated_weight.shape[0]
    if out_features % block:
        raise ValueError(f'out_features {out_features} is not a multiple of the block size '
                         f'{block}')
    codes, scale = store_blocks(svd_block_rotations(rotated_weight.detach().t(), block))
    return load_blocks(codes, scale, torch.float64)


def rotate_rows(weight: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """Apply block matrices on the output (row) axis: blocks[b] @ W_b for each 64-row block."""
    n_blocks, block, _ = blocks.shape
    w = weight.reshape(n_blocks, block, -1)
    return torch.bmm(blocks.to(weight.dtype), w).reshape(weight.shape)
