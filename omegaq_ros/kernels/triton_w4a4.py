# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Triton W4A4 QuantLinear backend: fused rotate+quantize prologue and an int8 tensor-core GEMM.

Per call (act modes static_group, dynamic_group, dynamic_token, dynamic_two_level;
act_modes.py):
  1. quant_kernel: x -> smooth -> perm -> 64x64 block rotation (int8 codes x fp16 column
     scale: three bf16 tensor-core dots on a GPU, a fp32 dot under the interpreter) -> int4
     codes held in int8 in GEMM order (gemm_order: per 64-group the even columns, then the
     odd ones), plus the per-(token, 64-group) scale where the mode computes one (group-major,
     [groups, tokens]). The per-token modes run amax_kernel first (the transformed values
     and each token's absmax), then quantize those values: both launches spread over (token tiles x
     groups) however wide the input. Run once per input tensor for a group of layers that
     share their input.
  2. gemm_kernel: per 64-wide K-group one exact int32 tl.dot(int8, int8) against the packed
     int4 weights, unpacked in registers four bytes per instruction into [low nibbles | high
     nibbles] (= the even | odd order of the codes, so nothing is interleaved), scaled in fp32
     by act scale x weight scale (weight groups are weight_group/64 act groups; with one
     scale per token, the per-token modes, the products of a weight group add up on the
     tensor cores and are rescaled once, the token's scale last: a third of the CUDA-core
     work of the per-64-group rescale, which costs more than the int8 MMA it follows; with
     two-level weight scales as well, weights.scale_units, the unpack multiplies each code by
     its group's integer multiple and the whole split sums in int32 with no rescale in the
     loop, SCALE_UNITS). Tokens <= 64
     swap operands (the weight fills the 64-row MMA side) and split K over the SMs (plan);
     from TUNED_MIN_ROWS tokens the tiles are autotuned per shape (_tuned_gemm over
     TUNED_CONFIGS). From TUNED_MIN_ROWS tokens with SCALE_UNITS, widen_kernel first writes
     the weights as int8 codes times their multiples and wide_gemm_kernel, a plain int8 GEMM
     whose operands both come through shared memory, multiplies them (WIDENED_WEIGHTS).
  3. With split-K the GEMM's last program to finish a tile sums its partials, adds the bias
     and casts (no third launch). finish_kernel runs only for layers with an output block
     rotation (rot_out): sum of the partials, rotation, bias, cast.
Linears that read one input (q/k/v, gate/up: the model's SIBLING_LINEARS) run as a group,
FusedLinears: step 1 once for all members (grid axis 2 over their stacked transforms), step 2
once over their concatenated weights (each N-tile reads its member's codes), so an attention
+ MLP block takes 4 quantize and 4 GEMM launches instead of 7 each.
On sm_90 and later every launch is a programmatic dependent launch (launch_options): it may
start while the kernel before still runs, waits for it before reading its output, and the
GEMM prefetches its first weight lines into L2 meanwhile.
static_channel and none cannot use the integer GEMM (per-channel scales do not factor out of
an integer dot product); they run the reference backend (torch fp32).
Triton is imported lazily so this module imports on machines without triton or CUDA.
"""

import collections
import functools
import math
import os
import warnings

from omegaq_ros.kernels import act_modes
from omegaq_ros.quant.linear import InputMemo, QuantLinear, reference_forward, version_stamp
from omegaq_ros.quant.step_context import current_step
import torch

ACT_BLOCK = 64
_MODE_IDS = act_modes.IDS
INTEGER_MODES = tuple(_MODE_IDS)
# Kernel launches by kind since import (tests and benchmarks read and reset it).
LAUNCHES = collections.Counter()


def triton_available() -> bool:
    """Return True when triton imports and either CUDA or the Triton interpreter is usable."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or _interpreting()


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


@functools.lru_cache(maxsize=None)
def _kernels():
    """Import the Triton kernels on first use, so importing this module needs no triton."""
    from omegaq_ros.kernels import _triton_kernels
    return _triton_kernels


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    if not torch.cuda.is_available():
        return 132
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def plan(m: int, n: int, k: int, sms: int = 132, n_align: int = 0, tuned: bool = True) -> dict:
    """
    Choose tiles for an M x K x N W4A4 GEMM.

    Returns swap (weight as the MMA's 64-row side, for M <= 64), bm, bn, split (K splits,
    equal runs of whole 64-groups), groups_per_split, num_warps, num_stages. n_align: N-tiles
    must not straddle a multiple of it (the boundaries of concatenated weights); 0: none.
    From TUNED_MIN_ROWS rows on CUDA (and tuned), the tiles are left to _tuned_gemm.
    """
    groups = k // ACT_BLOCK
    if tuned and m >= TUNED_MIN_ROWS and not _interpreting():
        return {'tuned': True, 'swap': None, 'bm': None, 'bn': None, 'split': 1,
                'gps': groups, 'num_warps': None, 'num_stages': None}
    if m <= 64:
        swap, bn, num_warps = True, 64, 4
        bm = max(16, triton_next_pow2(m))
    else:
        swap, bm, bn, num_warps = False, 128, 128, 8
        if n % bn or (n_align and n_align % bn):
            bn = 64
    tiles = -(-n // bn) * -(-m // bm)
    split = 1
    target = 2 * sms
    if tiles < sms:
        # Each split adds a partial store and the last arrival's sum; each K-group a
        # dependent MMA and rescale. At the expert's shapes a program running about 8
        # K-groups (4 at <= 16 rows) was fastest (bench_w4a4_launch.py, RESULTS 7f).
        per_split = 4 if bm <= 16 else 8
        want = max(1, min(groups // per_split, target // tiles))
        # The largest divisor of the group count not above `want`: equal runs of K-groups.
        split = max(d for d in range(1, want + 1) if groups % d == 0)
    gps = groups // split
    return {'swap': swap, 'bm': bm, 'bn': bn, 'split': split, 'gps': gps,
            'num_warps': num_warps, 'num_stages': 4 if swap else 3}


# From this many rows (the prefix: ~800 tokens), GEMM tiles are chosen by timing (_tuned_gemm).
TUNED_MIN_ROWS = 256
# Candidates timed per GEMM shape: (SWAP, BM tokens, BN weight rows, warps, stages). Each fits
# the registers without spilling on sm_90 (ptxas resource report). SWAP puts the unpacked
# weight in the MMA's register operand, so it never goes through shared memory. The main
# loop issues about 4 instructions per output element and K-group against the MMA's 1/4 (per
# warp scheduler, scripts/inspect_kernels.py), so the candidates favour tiles whose loop
# has the fewest instructions per element (swap-AB 128x64 with 4 warps, 256x64 with 8) and,
# with 4 warps and <= 226 registers, two resident blocks per SM, whose MMA waits and
# rescales can interleave.
# PAIRS: rescale two 64-groups of a weight group at once (gemm_kernel's PAIRS; offered only on
# tiles where the second product fits the registers: 128x64 with 4 warps spills).
TUNED_CONFIGS = ((True, 128, 64, 4, 3, False), (True, 128, 64, 4, 4, False),
                 (True, 128, 64, 4, 2, False), (True, 256, 64, 8, 3, False),
                 (True, 256, 64, 8, 2, False), (True, 64, 64, 4, 4, False),
                 (True, 128, 64, 8, 3, False), (True, 128, 128, 8, 3, False),
                 (False, 128, 64, 8, 3, False), (True, 64, 64, 4, 4, True),
                 (True, 128, 64, 8, 3, True), (False, 128, 64, 8, 3, True))


# Rescale two 64-groups at once where they fit (gemm_kernel's PAIRS: 20-25% fewer main-loop
# instructions on sm_90, scripts/inspect_kernels.py; 3-10% faster per GEMM and 1 ms per
# pi0.5 chunk on an H100, RESULTS 7i). Benches and tests turn it off to compare.
PAIRED_RESCALE = {'enabled': True}


def set_paired_rescale(enabled: bool):
    """Choose whether GEMMs may rescale 64-groups in pairs (default) or one at a time."""
    PAIRED_RESCALE['enabled'] = bool(enabled)
    _tuned_gemm.cache_clear()


@functools.lru_cache(maxsize=None)
def _tuned_gemm():
    """Return the GEMM kernel under triton.autotune over TUNED_CONFIGS (built on first use)."""
    import triton as _triton
    configs = [_triton.Config({'SWAP': swap, 'BM': bm, 'BN': bn, 'PAIRS': pairs},
                              num_warps=warps, num_stages=stages)
               for swap, bm, bn, warps, stages, pairs in TUNED_CONFIGS
               if PAIRED_RESCALE['enabled'] or not pairs]

    def fitting(configs, named_args, **kwargs):
        def arg(name):
            return kwargs.get(name, named_args.get(name))
        # Tiles must not straddle the boundary of two concatenated weights; paired rescales
        # need whole pairs of 64-groups in one weight group (and no per-token scales).
        pairs_fit = _pairs_fit(arg('GPS'), arg('WG_RATIO'), arg('TOKEN_SCALES'))
        return [c for c in configs if arg('N_ALIGN') % c.kwargs['BN'] == 0
                and (pairs_fit or not c.kwargs['PAIRS'])] or configs[:1]

    return _triton.autotune(configs, key=['M', 'N', 'G', 'N_ALIGN', 'TOKEN_SCALES',
                                          'SCALE_UNITS'],
                            prune_configs_by={'early_config_prune': fitting})(
                                _kernels().gemm_kernel)


# From TUNED_MIN_ROWS tokens, a GEMM with one scale per token and two-level weight scales
# (SCALE_UNITS) first unpacks its weights into int8 operands (widen_kernel: q * m, 1.5 bytes
# of traffic per weight) and then runs wide_gemm_kernel, whose operands both come through
# shared memory: the compiler pipelines it like a plain int8 GEMM, where gemm_kernel's
# register-unpacked weight makes each MMA wait for the one before (RESULTS 7l). At ~800
# tokens one unpack serves 7 token tiles. Built and checked under the interpreter in session
# 16; on an H100 it took 1.15 ms off the prefix (RESULTS 7o), so it is on.
WIDENED_WEIGHTS = {'enabled': True}


def set_widened_weights(enabled: bool):
    """Choose whether many-token two-level GEMMs widen their weights to int8 first (default)."""
    WIDENED_WEIGHTS['enabled'] = bool(enabled)


# wide_gemm_kernel's candidates (BM tokens, BN weight rows, BK, warps, stages): each stage
# holds (BM + BN) * BK bytes of shared memory.
# Triton 3.6 waits for each integer wgmma before the next K step (pendings 0,
# scripts/inspect_kernels.py), so two warpgroups per program (8 warps) keep the tensor cores
# busy while one of them waits, and a deep BK makes fewer waits. (The same GEMM on
# asynchronous wgmma through Gluon was no faster in the chunk, RESULTS 7q.)
WIDE_CONFIGS = ((128, 256, 128, 8, 3), (128, 128, 128, 8, 4), (128, 128, 256, 8, 3),
                (256, 128, 128, 8, 3), (128, 256, 64, 8, 4), (64, 256, 128, 4, 4),
                (64, 128, 128, 4, 4), (128, 64, 128, 4, 5))


@functools.lru_cache(maxsize=None)
def _tuned_wide_gemm():
    """Return wide_gemm_kernel under triton.autotune over WIDE_CONFIGS (built on first use)."""
    import triton as _triton
    configs = [_triton.Config({'BM': bm, 'BN': bn, 'BK': bk}, num_warps=warps,
                              num_stages=stages)
               for bm, bn, bk, warps, stages in WIDE_CONFIGS]

    def fitting(configs, named_args, **kwargs):
        align = kwargs.get('N_ALIGN', named_args.get('N_ALIGN'))
        return [c for c in configs if align % c.kwargs['BN'] == 0] or configs[-1:]

    return _triton.autotune(configs, key=['M', 'N', 'K', 'N_ALIGN', 'MEMBERS'],
                            prune_configs_by={'early_config_prune': fitting})(
                                _kernels().wide_gemm_kernel)


def _pairs_fit(gps: int, wg_ratio: int, token_scales: bool) -> bool:
    # gemm_kernel's PAIRS loop takes the 64-groups of a split two at a time, both in one
    # weight group.
    return gps % 2 == 0 and wg_ratio % 2 == 0 and not token_scales


def triton_next_pow2(v: int) -> int:
    """Return the smallest power of two >= v (v >= 1)."""
    return 1 << max(0, (int(v) - 1).bit_length())


# Programmatic dependent launch on sm_90 and later (the kernels' PDL, after_predecessor): a
# kernel's launch and its weight prefetch overlap the kernel before it (0.8 ms per pi0.5
# chunk on an H100, RESULTS 7j). Benches and tests turn it off to compare; sm_87 (Orin) has
# no such launch.
PROGRAMMATIC_LAUNCH = {'enabled': True}


def set_programmatic_launch(enabled: bool):
    """Choose whether kernels launch as programmatic dependents where the GPU can (default)."""
    PROGRAMMATIC_LAUNCH['enabled'] = bool(enabled)


@functools.lru_cache(maxsize=None)
def _capability(device_index: int):
    return torch.cuda.get_device_capability(device_index)


def launch_options(t: torch.Tensor) -> dict:
    """Return the kernel arguments that launch a kernel on t's device (PDL where it can)."""
    if (PROGRAMMATIC_LAUNCH['enabled'] and t.is_cuda and not _interpreting()
            and _capability(t.device.index or 0)[0] >= 9):
        return {'PDL': True, 'launch_pdl': True}
    return {}


def _check_device(t: torch.Tensor):
    if not (t.is_cuda or _interpreting()):
        raise RuntimeError('the triton QuantLinear backend needs CUDA tensors '
                           '(or TRITON_INTERPRET=1 for CPU tensors)')


def gemm_order(codes: torch.Tensor) -> torch.Tensor:
    """Reorder codes [..., K] from natural column order to the kernels' (even | odd per group)."""
    k = codes.shape[-1]
    pairs = codes.reshape(*codes.shape[:-1], k // ACT_BLOCK, ACT_BLOCK // 2, 2)
    return pairs.transpose(-1, -2).reshape(codes.shape)


def natural_order(codes: torch.Tensor) -> torch.Tensor:
    """Reorder codes [..., K] from the kernels' GEMM order back to natural column order."""
    k = codes.shape[-1]
    halves = codes.reshape(*codes.shape[:-1], k // ACT_BLOCK, 2, ACT_BLOCK // 2)
    return halves.transpose(-1, -2).reshape(codes.shape)


def quantize_input(layer, x2: torch.Tensor, codes_out=None, up=None, gate=act_modes.NO_GATE,
                   fp8=None):
    """
    Run the fused prologue on x2 [M, in]: codes [M, in] and the scale tensor the GEMM reads.

    gate (act_modes.GELU_TANH_GATE, SILU_GATE): x2 is a gated MLP's gate projection and up
    [M, in] its up projection (same strides); the quantized input is act(x2) * up.

    Returns (codes, xs, s_xs_m, s_xs_g): codes in GEMM order (natural_order undoes it); the
    act scale of (row m, group g) is xs[m * s_xs_m + g * s_xs_g] of xs's storage (for
    static_group the layer's fp16 table row of the current step, layer.table_index(); for
    dynamic_group a [M, groups] view of group-major storage). codes_out: optional int8
    [M, in] buffer for the codes. fp8 (dynamic_group128; None: where fp8_gemm_fits): the
    FP8 GEMM's operands, e4m3 codes and a [M, in / 128] view of pair-major scales.
    """
    codes, xs, s_m, s_g, _ = _quantize(x2, layer, [layer.input_owner], codes_out, up, gate,
                                       fp8=fp8)
    if layer.act_mode == 'static_group':
        return codes[0], xs, s_m, s_g
    if layer.act_mode in ('dynamic_group', 'dynamic_group128'):
        return codes[0], xs[0].t(), s_m, s_g
    return codes[0], xs[0], s_m, s_g


def _static_row(layer, owners):
    """
    Return the static_group table row of the current step and the member stride.

    With several owners their tables are rows of one stacked [T, rows, groups] tensor, so
    member p's row lies p * rows * groups elements after the first owner's.
    """
    tables = owners[0].act_scale
    return tables[layer.table_index()], (tables.numel() if len(owners) > 1 else 0)


def _scale_buffers(layer, owners, mode: int, m: int, groups: int, dev, fp8: bool = False):
    """
    Return the activation scales a quantize launch reads or writes, and their strides.

    (xs, s_xs_m, s_xs_g, s_member_srow, s_member_xs): static_group the table row of the
    current step; dynamic_group and dynamic_group128 [T, groups, M] to fill (group-major;
    for the FP8 GEMM [T, groups / 2, M], a scale per pair, and s_xs_g the pair's stride);
    dynamic_token and dynamic_two_level [T, M].
    """
    count = len(owners)
    if mode == act_modes.STATIC_GROUP:
        xs, s_member_xs = _static_row(layer, owners)
        return xs, 0, 1, s_member_xs, s_member_xs
    if mode in (act_modes.DYNAMIC_GROUP, act_modes.DYNAMIC_GROUP128):
        rows = groups // 2 if fp8 else groups
        xs = torch.empty(count, rows, m, dtype=torch.float32, device=dev)
        return xs, 1, m, 0, m * rows
    return torch.empty(count, m, dtype=torch.float32, device=dev), 1, 0, m, m


def _transform_args(owner, dummy):
    """Return the input transform's kernel pointers by name (dummy where absent), HAS_* flags."""
    tensors = {'perm_ptr': owner.perm_in, 'smooth_ptr': owner.smooth, 'rot_ptr': owner.rot_in,
               'rscale_ptr': owner.rot_in_scale}
    flags = {'HAS_PERM': owner.perm_in is not None, 'HAS_SMOOTH': owner.smooth is not None,
             'HAS_ROT': owner.rot_in is not None, 'TC_ROT': not _interpreting()}
    return {name: t if t is not None else dummy for name, t in tensors.items()}, flags


def _quantize(x2, layer, owners, codes_out=None, up=None, gate=act_modes.NO_GATE,
              first_pass=None, fp8=None):
    """
    Rotate and quantize x2 once per input transform in `owners` (one launch for all).

    gate, up: as quantize_input's (one owner). first_pass: a per-token mode's first pass
    (_first_pass_buffers) as amax_kernel leaves it, made by another kernel
    (wide_gated_kernel); x2 is then not read. fp8: as quantize_input's.

    Returns codes [T, M, K] (int8; e4m3 for the FP8 GEMM), xs, s_xs_m, s_xs_g and s_xs_member
    (the member stride of xs).
    With several owners their buffers must be rows of one stacked tensor (FusedLinears).
    """
    _check_device(x2)
    mode = _MODE_IDS[layer.act_mode]
    m, k = x2.shape
    groups = k // ACT_BLOCK
    dev = x2.device
    count = len(owners)
    if gate != act_modes.NO_GATE and (up.stride() != x2.stride() or x2.stride(-1) != 1):
        x2, up = x2.contiguous(), up.contiguous()
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    if fp8 is None:
        fp8 = (mode == act_modes.DYNAMIC_GROUP128 and codes_out is None
               and fp8_gemm_fits(layer, x2))
    fp8 = fp8 and mode == act_modes.DYNAMIC_GROUP128
    codes = (codes_out.view(1, m, k) if codes_out is not None else
             torch.empty(count, m, k, dtype=torch.float8_e4m3fn if fp8 else torch.int8,
                         device=dev))
    xs, s_m, s_g, s_member_srow, s_member_xs = _scale_buffers(layer, owners, mode, m, groups,
                                                              dev, fp8)
    transform, flags = _transform_args(owners[0], codes)
    x_member = 0
    if (gate == act_modes.NO_GATE and first_pass is None and flags['HAS_PERM']
            and not flags['HAS_SMOOTH'] and m >= GATHERED_MIN_ROWS and GATHERED_INPUT['enabled']):
        x2 = _gathered(x2, transform['perm_ptr'], count)[0]      # member 0's; the rest follow
        x_member = m * k
        transform['perm_ptr'], flags['HAS_PERM'] = codes, False
    # Rows per program: 16 (more programs in flight) unless that makes over 4096 programs;
    # measured fastest at 50 and 816 rows, where 64 rows won only for the 16384-wide down
    # projection input (RESULTS 7f).
    bm = 16
    programs = groups // 2 if mode == act_modes.DYNAMIC_GROUP128 else groups
    while triton.cdiv(m, bm) * programs * count > 4096 and bm < 64:
        bm *= 2
    grid = (triton.cdiv(m, bm), programs, count)
    gating = {'up_ptr': up if up is not None else x2, 'GATE': gate}
    source = dict(x_ptr=x2, stride_xm=x2.stride(0), s_member_x=x_member, **transform, **flags,
                  **gating)
    if mode == act_modes.STATIC_GROUP:
        srow = xs
    elif mode in act_modes.TOKEN_MODES:
        # The token's scale needs all of its groups: a first pass stores the transformed input
        # and each token's maximum of it; the quantize reads those values.
        if first_pass is None:
            first_pass = _first_pass_buffers(count, m, k, dev)
            values, gmax, srow = first_pass
            _kernels().amax_kernel[grid](
                x_ptr=x2, stride_xm=x2.stride(0), **transform, amax_ptr=srow,
                values_ptr=values, gmax_ptr=gmax, M=m, G=groups, s_member_x=x_member,
                s_member_k=k, s_member_amax=s_member_srow, **flags, **gating, BM=bm,
                num_warps=4, **launch_options(x2))
            LAUNCHES['quantize'] += 1
        values, gmax, srow = first_pass
        source = dict(x_ptr=values, up_ptr=values, stride_xm=k, s_member_x=m * k, gmax_ptr=gmax,
                      **transform, **dict.fromkeys(flags, False), GATE=act_modes.NO_GATE)
    else:
        srow = codes
    source.setdefault('gmax_ptr', xs)              # read only in the per-token modes
    static = mode == act_modes.STATIC_GROUP
    _kernels().quant_kernel[grid](
        **source, srow_ptr=srow, codes_ptr=codes, xs_ptr=codes if static else xs, M=m,
        G=groups, s_member_k=k, s_member_srow=s_member_srow, s_member_xs=s_member_xs,
        MODE=mode, BM=bm, SCALE_PER_PAIR=fp8, num_warps=4, **launch_options(x2))
    LAUNCHES['quantize'] += 1
    return codes, xs, s_m, s_g, s_member_xs


# From this many rows (the prefix), an input permutation is applied by its own launch
# (gather_kernel: each row read in column order) before the quantize reads the permuted
# copies in place; below it, inside the quantize (one launch fewer). The quantize's own
# gather took 8.6 of 20 us at 816 x 2048 on an H100 (RESULTS 7f 'no permutation'), each of
# its programs reading one 64-group's scattered columns of many rows; with the launch the
# pi0.5 prefix took 0.59 ms less (RESULTS 7t). Smoothing factors are indexed in the source
# order, so layers with smoothing keep the quantize's gather.
GATHERED_MIN_ROWS = 256
GATHERED_INPUT = {'enabled': True}


def set_gathered_input(enabled: bool):
    """Choose whether many-row permuted inputs are gathered by a launch of their own."""
    GATHERED_INPUT['enabled'] = bool(enabled)


def _gathered(x2: torch.Tensor, perm: torch.Tensor, count: int, bm: int = 1, bk: int = 2048,
              num_warps: int = 4) -> torch.Tensor:
    """
    Return x2's columns in each of `count` stacked permutations perm: [count, M, K].

    bm rows per program, bk columns per step (bench_w4a4_launch.py times other tiles: on an
    H100 one row of 2048 columns per program took 4.5 us at 816 x 2048, four of 512 6.2).
    """
    m, k = x2.shape
    out = torch.empty(count, m, k, dtype=x2.dtype, device=x2.device)
    _kernels().gather_kernel[(triton.cdiv(m, bm), count)](
        x2, x2.stride(0), perm, out, m, k, BM=bm, BK=math.gcd(bk, k), num_warps=num_warps,
        **launch_options(x2))
    LAUNCHES['gather'] += 1
    return out


def _first_pass_buffers(count: int, m: int, k: int, device) -> tuple:
    """
    Return the buffers of a per-token first pass of `count` inputs [m, k].

    (values [count, m, k] int16: steps of their 64-group's absmax; the group maxima
    [count, m, k / 64] fp32; each token's absmax [count, m] fp32, zeros for the atomic max).
    Half the bytes of fp32 values; a value is off by at most 1/65534 of its group's absmax.
    """
    return (torch.empty(count, m, k, dtype=torch.int16, device=device),
            torch.empty(count, m, k // ACT_BLOCK, dtype=torch.float32, device=device),
            torch.zeros(count, m, dtype=torch.float32, device=device))


def int_matmul(codes: torch.Tensor, weight_packed: torch.Tensor) -> torch.Tensor:
    """
    Exact int32 product codes [M, K] x unpack(weight_packed [N, K/2])^T through the GEMM.

    codes: int8 in GEMM order, as quantize_input returns them (gemm_order makes them).
    """
    _check_device(codes)
    m, k = codes.shape
    n = weight_packed.shape[0]
    p = plan(m, n, k, _sms(codes), tuned=False)
    out = torch.empty(p['split'], m, n, dtype=torch.int32, device=codes.device)
    grid = (triton.cdiv(n, p['bn']), triton.cdiv(m, p['bm']), p['split'])
    _kernels().int_gemm_kernel[grid](
        codes_ptr=codes.contiguous(), wp_ptr=weight_packed, out_ptr=out, s_out_split=m * n,
        M=m, N=n, G=k // ACT_BLOCK, GPS=p['gps'], BM=p['bm'], BN=p['bn'], SWAP=p['swap'],
        ASM_UNPACK=_asm_unpack(), num_warps=p['num_warps'], num_stages=p['num_stages'])
    return out.sum(0, dtype=torch.int32)


def _asm_unpack() -> bool:
    # The interpreter runs no PTX; the kernel then unpacks with int8 shifts.
    return not _interpreting()


@functools.lru_cache(maxsize=None)
def _arrival_counts(device: torch.device) -> torch.Tensor:
    """Per-tile split arrival counters of a device, zero between launches (kernels reset them)."""
    return torch.zeros(ARRIVAL_SLOTS, dtype=torch.int32, device=device)


# More tiles than any split-K launch has (K is split only when tiles < the SM count).
ARRIVAL_SLOTS = 4096


def _sms(t: torch.Tensor) -> int:
    return _sm_count(t.device.index or 0) if t.is_cuda else 132


def scaled_matmul(layer, codes, xs, s_xs_m, s_xs_g, out_dtype, out=None, plan_override=None):
    """Run GEMM (+ finish) for precomputed codes: y [M, out_features] in out_dtype (or out)."""
    return _matmul(layer, layer, codes, xs, s_xs_m, s_xs_g, 0, None, out_dtype, out,
                   plan_override)


def _plan_for(weights, m: int, k: int, t: torch.Tensor) -> dict:
    """Plan an M x K GEMM against `weights` (a QuantLinear or FusedLinears) on t's device."""
    return plan(m, weights.weight_packed.shape[0], k, _sms(t),
                n_align=getattr(weights, 'n_align', 0))


def _matmul(layer, weights, codes, xs, s_xs_m, s_xs_g, s_xs_member, member_ends, out_dtype,
            out=None, plan_override=None):
    """
    GEMM (+ finish) of codes against `weights` (a QuantLinear or FusedLinears' concatenation).

    member_ends: None when every output column reads the same codes, else where each member's
    columns end (FusedLinears.member_ends); member p reads codes[p] and scales xs + p * stride.
    """
    if codes.dtype == torch.float8_e4m3fn:
        return _fp8_matmul(weights, codes, xs, member_ends, out_dtype, out)
    m, k = codes.shape[-2:]
    if (plan_override is None and WIDENED_WEIGHTS['enabled']
            and m >= TUNED_MIN_ROWS
            and s_xs_g == 0 and s_xs_m == 1 and weights.weight_scale_unit is not None
            and weights.rot_out is None):
        return _widened_matmul(layer, weights, codes, xs, s_xs_member, member_ends, out_dtype,
                               out)
    p = plan_override or _plan_for(weights, m, k, codes)
    dev = codes.device
    n = weights.weight_packed.shape[0]
    tuned = p.get('tuned', False)
    bias, rot, rscale = weights.bias, weights.rot_out, weights.rot_out_scale
    final = p['split'] == 1 and rot is None
    reduce = p['split'] > 1 and rot is None
    y = out if out is not None else torch.empty(m, n, dtype=out_dtype, device=dev)
    part = y if final else torch.empty(p['split'], m, n, dtype=torch.float32, device=dev)
    ws, units = weights.weight_scale, weights.weight_scale_unit
    wg_ratio = layer.weight_group // ACT_BLOCK
    ends = member_ends if member_ends is not None else (n, n)
    arrivals = _arrival_counts(dev)
    if reduce and triton.cdiv(n, p['bn']) * triton.cdiv(m, p['bm']) > ARRIVAL_SLOTS:
        raise ValueError(f'split-K GEMM {m}x{k}x{n} has more tiles than {ARRIVAL_SLOTS}')
    args = dict(codes_ptr=codes, xs_ptr=xs, s_xs_m=s_xs_m, s_xs_g=s_xs_g,
                s_member_xs=s_xs_member, wp_ptr=weights.weight_packed, ws_ptr=ws,
                s_ws_n=ws.stride(0), wu_ptr=units if units is not None else ws,
                bias_ptr=bias if bias is not None else ws,
                out_ptr=part, s_out_split=m * n,
                y_ptr=y, arrivals_ptr=arrivals, M=m, N=n, G=k // ACT_BLOCK, GPS=p['gps'],
                member_end1=ends[0], member_end2=ends[1],
                WG_RATIO=wg_ratio, FINAL=final, REDUCE=reduce,
                HAS_BIAS=bias is not None, MEMBERS=member_ends is not None,
                ASM_UNPACK=_asm_unpack(),
                TOKEN_SCALES=s_xs_g == 0 and p['gps'] % wg_ratio == 0,
                SCALE_UNITS=s_xs_g == 0 and units is not None, **launch_options(y))
    if not tuned:
        # A plan may turn the paired rescale off ({'pairs': False}: benches, tests).
        args['PAIRS'] = (PAIRED_RESCALE['enabled'] and p.get('pairs', True)
                         and _pairs_fit(p['gps'], wg_ratio, args['TOKEN_SCALES']))
    if tuned:
        # Tiles, orientation, warps and stages chosen per (M, N, K, member alignment) by
        # timing the candidates on first use (before any CUDA-graph capture).
        def grid(meta):
            return (triton.cdiv(n, meta['BN']), triton.cdiv(m, meta['BM']), 1)
        _tuned_gemm()[grid](**args, N_ALIGN=getattr(weights, 'n_align', 0) or n)
    else:
        grid = (triton.cdiv(n, p['bn']), triton.cdiv(m, p['bm']), p['split'])
        _kernels().gemm_kernel[grid](**args, BM=p['bm'], BN=p['bn'], SWAP=p['swap'],
                                     num_warps=p['num_warps'], num_stages=p['num_stages'])
    LAUNCHES['gemm'] += 1
    if rot is not None:
        bm = 16 if m <= 16 else 32
        _kernels().finish_kernel[(triton.cdiv(m, bm), n // ACT_BLOCK)](
            part_ptr=part, s_split=m * n, SPLIT=p['split'], rot_ptr=rot, rscale_ptr=rscale,
            bias_ptr=bias if bias is not None else part, out_ptr=y, M=m, N=n, HAS_ROT=True,
            HAS_BIAS=bias is not None, BM=bm, num_warps=4, **launch_options(y))
        LAUNCHES['finish'] += 1
    return y


def _widen(layer, weights, after: torch.Tensor, bn: int = 32, groups: int = 8,
           num_warps: int = 4) -> torch.Tensor:
    """
    Return `weights`' two-level codes times their multiples as int8 [N, K] (widen_kernel).

    bn weight rows and `groups` 64-groups per program (fewer where they do not divide K;
    bench_w4a4_launch.py times other tiles: on an H100 32 x 8 came nearest the traffic floor).
    """
    n, k = weights.weight_packed.shape[0], layer.in_features
    groups = math.gcd(groups, k // ACT_BLOCK)
    ws = weights.weight_scale
    widened = torch.empty(n, k, dtype=torch.int8, device=after.device)
    _kernels().widen_kernel[(triton.cdiv(n, bn), k // ACT_BLOCK // groups)](
        wp_ptr=weights.weight_packed, ws_ptr=ws, s_ws_n=ws.stride(0),
        wu_ptr=weights.weight_scale_unit, out_ptr=widened, N=n, G=k // ACT_BLOCK,
        WG_RATIO=layer.weight_group // ACT_BLOCK, BN=bn, ASM_UNPACK=_asm_unpack(),
        GROUPS=groups, num_warps=num_warps, **launch_options(after))
    LAUNCHES['widen'] += 1
    return widened


def _widened_matmul(layer, weights, codes, xs, s_xs_member, member_ends, out_dtype, out=None):
    """_matmul of many tokens with SCALE_UNITS: widen_kernel, then wide_gemm_kernel."""
    m, k = codes.shape[-2:]
    n = weights.weight_packed.shape[0]
    dev = codes.device
    units, bias = weights.weight_scale_unit, weights.bias
    widened = _widen(layer, weights, codes)
    y = out if out is not None else torch.empty(m, n, dtype=out_dtype, device=dev)
    ends = member_ends if member_ends is not None else (n, n)
    args = dict(codes_ptr=codes, xs_ptr=xs, s_member_xs=s_xs_member, w_ptr=widened,
                wu_ptr=units, bias_ptr=bias if bias is not None else units, y_ptr=y, M=m, N=n,
                K=k, member_end1=ends[0], member_end2=ends[1], HAS_BIAS=bias is not None,
                MEMBERS=member_ends is not None, **launch_options(y))
    if _interpreting():
        # Triton's interpreter has no autotuner timings to take: one small tile.
        _kernels().wide_gemm_kernel[(triton.cdiv(m, 64), triton.cdiv(n, 64))](
            **args, BM=64, BN=64, BK=64)
    else:
        def grid(meta):
            return (triton.cdiv(m, meta['BM']), triton.cdiv(n, meta['BN']))
        _tuned_wide_gemm()[grid](**args, N_ALIGN=getattr(weights, 'n_align', 0) or n)
    LAUNCHES['gemm'] += 1
    return y


# Hopper's cuBLAS multiplies float8 e4m3 operands with one float scale per 128-group of K on
# both (1x128 block scaling, promoted in its main loop; cuBLAS 12.9+ through
# torch._scaled_mm). int4 codes are exact in e4m3, so a dynamic_group128 layer with 128-wide
# weight groups runs on it: its quantize writes e4m3 codes and a scale per (token, 128
# channels), widen_fp8_kernel the weights' codes and scales (RESULTS 7w). Elsewhere (no
# sm_90, the interpreter, an output rotation) the layer takes the integer GEMM with each
# pair's scale given to both of its 64-groups.
FP8_GEMM = {'enabled': True}


def set_fp8_gemm(enabled: bool):
    """Choose whether dynamic_group128 layers run on cuBLAS's block-scaled FP8 GEMM (sm_90)."""
    FP8_GEMM['enabled'] = bool(enabled)


# (device index, rows, output dtype) -> whether the block-scaled FP8 GEMM gave the probe's
# product.
_FP8_PROBES = {}


def _fp8_block_gemm_works(device_index: int, m: int, out_dtype: torch.dtype) -> bool:
    """
    Return True where torch._scaled_mm multiplies m rows with 1x128 block scales correctly.

    A torch or cuBLAS build may refuse these scales, some row counts or output types, or
    read the scale layout differently: the probe multiplies random int4 codes with distinct
    scales per block (K = 256, N = 128) into columns of a wider output and compares with the
    product block by block (to the output's rounding), so only a GEMM that computes what
    _fp8_matmul means is used. Where it fails, a warning says so and the layer takes the
    integer GEMM. Inside a CUDA-graph capture nothing is probed: the warm-up before it probed
    the same shapes (one first seen while capturing is taken as working).
    """
    key = (device_index, m, out_dtype)
    if key in _FP8_PROBES or torch.cuda.is_current_stream_capturing():
        return _FP8_PROBES.get(key, True)
    dev = torch.device('cuda', device_index)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randint(-8, 8, (m, 256), device=dev, generator=gen).float()
    b = torch.randint(-8, 8, (128, 256), device=dev, generator=gen).float()
    scale_a = torch.rand(2, m, device=dev, generator=gen) + 0.5       # pair-major, as ours
    scale_b = torch.rand(2, 128, device=dev, generator=gen) + 0.5
    expected = sum(a[:, j * 128:(j + 1) * 128] @ b[:, j * 128:(j + 1) * 128].t()
                   * scale_a[j][:, None] * scale_b[j][None, :] for j in range(2))
    try:
        wide = torch.zeros(m, 256, dtype=out_dtype, device=dev)
        torch._scaled_mm(a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t(),
                         scale_a=scale_a.t(), scale_b=scale_b, out_dtype=out_dtype,
                         out=wide[:, 128:])
        rtol = 1e-4 if out_dtype == torch.float32 else 1e-2
        works = bool(torch.allclose(wide[:, 128:].float(), expected, rtol=rtol, atol=rtol)
                     and not wide[:, :128].any())
        reason = 'its product differs from the block-scaled reference'
    except RuntimeError as error:
        works, reason = False, str(error).splitlines()[0]
    if not works:
        warnings.warn(f'torch._scaled_mm with 1x128 block scales ({m} rows, {out_dtype} '
                      f'out) is not usable here ({reason}): dynamic_group128 layers take '
                      'the integer GEMM')
    _FP8_PROBES[key] = works
    return works


def fp8_gemm_applies(layer, device: torch.device) -> bool:
    """Return True where `layer` on `device` is meant for the FP8 GEMM (before the probe)."""
    device = torch.device(device)
    return (layer.act_mode == 'dynamic_group128' and FP8_GEMM['enabled']
            and device.type == 'cuda' and not _interpreting() and layer.weight_group == 128
            and layer.rot_out is None
            and _capability(device.index if device.index is not None else
                            torch.cuda.current_device())[0] == 9)


def fp8_gemm_fits(layer, x2: torch.Tensor) -> bool:
    """Return True where dynamic_group128 `layer` runs on the block-scaled FP8 GEMM."""
    return (fp8_gemm_applies(layer, x2.device)
            and _fp8_block_gemm_works(x2.device.index, x2.shape[0], _out_dtype(x2)))


def _widen_fp8(weights, after: torch.Tensor, bn: int = 32, groups: int = 8,
               num_warps: int = 4):
    """Return `weights`' codes as float8 e4m3 [N, K] and their scales fp32 [K / 128, N]."""
    n, k = weights.weight_packed.shape[0], weights.weight_packed.shape[1] * 2
    groups = math.gcd(groups, k // ACT_BLOCK)
    ws = weights.weight_scale
    codes = torch.empty(n, k, dtype=torch.float8_e4m3fn, device=after.device)
    scales = torch.empty(k // 128, n, dtype=torch.float32, device=after.device)
    _kernels().widen_fp8_kernel[(triton.cdiv(n, bn), k // ACT_BLOCK // groups)](
        wp_ptr=weights.weight_packed, ws_ptr=ws, s_ws_n=ws.stride(0), out_ptr=codes,
        wst_ptr=scales, N=n, G=k // ACT_BLOCK, BN=bn, ASM_UNPACK=_asm_unpack(), GROUPS=groups,
        num_warps=num_warps, **launch_options(after))
    LAUNCHES['widen'] += 1
    return codes, scales


def _fp8_operands(weights, after: torch.Tensor, edges=None):
    """
    Return the weights' e4m3 codes [N, K] and each member's scales [K / 128, columns].

    edges: the members' column bounds (_fp8_matmul's; None: one member). A member's scales
    are a contiguous copy of its columns, the layout cuBLAS reads.
    """
    codes, scales = _widen_fp8(weights, after)
    if edges is None or len(edges) == 2:
        return codes, [scales]
    return codes, [scales[:, a:b].contiguous() for a, b in zip(edges, edges[1:])]


def _resident_fp8(weights, after: torch.Tensor, edges=None):
    """
    Return _fp8_operands of `weights`, kept from call to call (RESIDENT_FP8_MAX_ROWS).

    Valid while weight_packed and weight_scale are the same tensors, unmodified (version
    counters): a buffer replaced or written in place (a reload) widens them again.
    """
    sources = (weights.weight_packed, weights.weight_scale)
    stamp = version_stamp(sources)
    kept = getattr(weights, '_fp8_resident', None)
    if kept is None or kept[0] != stamp or kept[1] is not sources[0]:
        kept = (stamp, sources[0]) + _fp8_operands(weights, after, edges)
        object.__setattr__(weights, '_fp8_resident', kept)
    return kept[2], kept[3]


def resident_bytes(model: torch.nn.Module) -> int:
    """Bytes of the FP8 weight operands kept for few-row GEMMs (_resident_fp8) in `model`."""
    holders = {id(m): m for m in model.modules() if isinstance(m, QuantLinear)}
    holders.update({id(m._fused): m._fused for m in list(holders.values())
                    if m._fused is not None})
    kept = [getattr(holder, '_fp8_resident', None) for holder in holders.values()]
    return sum(t.numel() * t.element_size() for k in kept if k is not None
               for t in [k[2], *k[3]])


# Below this many tokens (the denoising steps, which run each weight ten times a chunk) the
# FP8 weight operands stay in memory after their first widening (1 byte per weight beside the
# packed 0.5: the action expert's weights count 3x their int4 bytes); from it (the prefix,
# once a chunk) they are widened into a temporary on every call.
RESIDENT_FP8_MAX_ROWS = TUNED_MIN_ROWS


def _fp8_matmul(weights, codes, xs, member_ends, out_dtype, out=None):
    """
    _matmul on the FP8 GEMM: codes e4m3 [M, K] or [members, M, K], xs their pair scales.

    xs: [M, K / 128] (a view of pair-major storage, quantize_input's) or [members, K / 128, M].
    Each member's columns are one torch._scaled_mm of its codes, written in place into its
    columns of y (cuBLAS takes the row stride as the output's leading dimension, so a fused
    gate/up output is not copied together afterwards).
    """
    codes = codes if codes.dim() == 3 else codes.unsqueeze(0)
    xs = xs if xs.dim() == 3 else xs.t().unsqueeze(0)
    m, n = codes.shape[1], weights.weight_packed.shape[0]
    edges = [0] + ([e for e in member_ends if e < n] if member_ends is not None else []) + [n]
    operands = _resident_fp8 if m < RESIDENT_FP8_MAX_ROWS else _fp8_operands
    w8, member_scales = operands(weights, codes, edges)
    y = out if out is not None else torch.empty(m, n, dtype=out_dtype, device=codes.device)
    for p, (a, b) in enumerate(zip(edges, edges[1:])):
        torch._scaled_mm(codes[p], w8[a:b].t(), scale_a=xs[p].t(), scale_b=member_scales[p],
                         out_dtype=y.dtype, out=y[:, a:b])
        LAUNCHES['gemm'] += 1
    if weights.bias is not None:
        y.add_(weights.bias)
    return y


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float16, torch.bfloat16) \
        else torch.float32


def triton_forward(layer, x: torch.Tensor) -> torch.Tensor:
    """Run QuantLinear forward through the Triton kernels (static_channel, none: reference)."""
    if layer.act_mode not in _MODE_IDS:
        return reference_forward(layer, x)
    if layer._fused is not None:
        return layer._fused.output(layer, x)
    _check_layer(layer)
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    codes, xs, s_m, s_g = layer.shared_input(x, lambda _: quantize_input(layer, x2))
    y = scaled_matmul(layer, codes, xs, s_m, s_g, _out_dtype(x))
    return y.reshape(*shape[:-1], layer.out_features).to(x.dtype)


def gated_projection(down, gate: torch.Tensor, up: torch.Tensor, gating: str, ops):
    """
    Return down(ops.<gating>(gate, up)): a gated MLP's last projection ('gelu_gate', 'silu_gate').

    Where down runs on the Triton kernels in an integer mode, act(gate) * up is computed by
    its quantize launch from the gate and up projections (views of one fused output, or any
    two tensors of one shape): the gated input never goes through memory, and the launch that
    made it is saved. Elsewhere (reference
    backend, FP layers) it runs as written.
    """
    if not (isinstance(down, QuantLinear) and down.backend == 'triton'
            and down.act_mode in _MODE_IDS and down._fused is None):
        return down(getattr(ops, gating)(gate, up))
    _check_layer(down)
    shape = gate.shape
    gate2, up2 = gate.reshape(-1, shape[-1]), up.reshape(-1, shape[-1])
    codes, xs, s_m, s_g = quantize_input(down, gate2, up=up2, gate=act_modes.GATES[gating])
    y = scaled_matmul(down, codes, xs, s_m, s_g, _out_dtype(gate))
    return y.reshape(*shape[:-1], down.out_features).to(gate.dtype)


# wide_gated_kernel's candidates (BM tokens, BK, warps, stages).
GATED_CONFIGS = ((128, 128, 8, 3), (128, 64, 8, 4), (64, 128, 4, 4), (128, 128, 4, 3),
                 (256, 64, 8, 3))


@functools.lru_cache(maxsize=None)
def _tuned_wide_gated():
    """Return wide_gated_kernel under triton.autotune over GATED_CONFIGS (built on first use)."""
    import triton as _triton
    configs = [_triton.Config({'BM': bm, 'BK': bk}, num_warps=warps, num_stages=stages)
               for bm, bk, warps, stages in GATED_CONFIGS]
    # Timing a candidate runs it again: its outputs are overwritten, its maxima taken again.
    return _triton.autotune(configs, key=['M', 'K', 'HALF'])(_kernels().wide_gated_kernel)


def gated_mlp(gate_proj, up_proj, down_proj, h: torch.Tensor, gating: str, ops):
    """
    Return down_proj(ops.<gating>(gate_proj(h), up_proj(h))), gating 'gelu_gate' or 'silu_gate'.

    From TUNED_MIN_ROWS tokens (the prefix), where gate/up are fused siblings with one scale
    per token and two-level weight scales, and down_proj has one scale per token and reads
    its input in place (its permutation folded into the gate/up rows, as set_backend does; no
    smoothing), wide_gated_kernel multiplies gate and up on widened weights
    (WIDENED_WEIGHTS) and ends in the down projection's per-token first pass: gate and up
    never go through memory. Elsewhere gated_projection of the two outputs (few tokens: a
    GATED epilogue quantizing the down input inside the gate/up GEMM timed slower there,
    RESULTS 7o).
    """
    group = getattr(gate_proj, '_fused', None)
    x2 = h.reshape(-1, h.shape[-1])
    if not _gated_first_pass_fits(group, gate_proj, up_proj, down_proj, x2):
        return gated_projection(down_proj, gate_proj(h), up_proj(h), gating, ops)
    if not group._joined():
        group._join()
    _check_layer(down_proj)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y = _gated_mlp_first_pass_in_gemm(group, down_proj, x2, gating)
    return y.reshape(*h.shape[:-1], down_proj.out_features).to(h.dtype)


def _gated_mlp_first_pass_in_gemm(group, down_proj, x2, gating):
    """gated_mlp's many-token path: wide_gated_kernel makes down_proj's first pass."""
    m, k = x2.shape
    half = down_proj.in_features
    first = group.layers[0]
    owners = [first.input_owner] if group.shared_transform else group.layers
    codes, xs, _, _, s_member_xs = _quantize(x2, first, owners)
    widened = _widen(first, group, codes)
    first_pass = _first_pass_buffers(1, m, half, x2.device)
    values, gmax, amax = first_pass
    transform, flags = _transform_args(down_proj.input_owner, gmax)
    args = dict(codes_ptr=codes, s_member_codes=m * k if len(owners) > 1 else 0, xs_ptr=xs,
                s_member_xs=s_member_xs, w_ptr=widened, wu_ptr=group.weight_scale_unit,
                like_ptr=x2, rot_ptr=transform['rot_ptr'], rscale_ptr=transform['rscale_ptr'],
                values_ptr=values, gmax_ptr=gmax, amax_ptr=amax, M=m, K=k, HALF=half,
                GATE=act_modes.GATES[gating], HAS_ROT=flags['HAS_ROT'], TC_ROT=flags['TC_ROT'],
                **launch_options(x2))
    if _interpreting():
        grid = (triton.cdiv(m, 64), half // ACT_BLOCK)
        _kernels().wide_gated_kernel[grid](**args, BM=64, BK=64)
    else:
        def grid(meta):
            return (triton.cdiv(m, meta['BM']), half // ACT_BLOCK)
        _tuned_wide_gated()[grid](**args)
    LAUNCHES['gemm'] += 1
    codes, xs, s_m, s_g, _ = _quantize(values[0], down_proj, [down_proj.input_owner],
                                       first_pass=first_pass)
    return scaled_matmul(down_proj, codes[0], xs[0], s_m, s_g, _out_dtype(x2))


def _gated_first_pass_fits(group, gate_proj, up_proj, down_proj, x2) -> bool:
    """Return True where gated_mlp can end the gate/up GEMM in down_proj's first pass."""
    # gate/up fused on the integer kernels (no bias or output rotation) with two-level weight
    # scales, down_proj on its own input transform reading its input in place; one scale
    # per token in both; enough tokens for widened weights.
    token_modes = act_modes.TOKEN_MODES
    if not (WIDENED_WEIGHTS['enabled'] and x2.shape[0] >= TUNED_MIN_ROWS
            and isinstance(down_proj, QuantLinear) and down_proj.backend == 'triton'
            and _MODE_IDS.get(down_proj.act_mode) in token_modes
            and isinstance(group, FusedLinears) and group.layers == [gate_proj, up_proj]
            and gate_proj.backend == 'triton' and _MODE_IDS.get(gate_proj.act_mode) in token_modes
            and group.weight_scale_unit is not None and (x2.is_cuda or _interpreting())):
        return False
    down = down_proj.input_owner
    return (down_proj._fused is None and down_proj.input_from is None and down.perm_in is None
            and down.smooth is None and group.bias is None and group.rot_out is None
            and gate_proj.out_features == up_proj.out_features
            and down_proj.in_features == gate_proj.out_features
            and down_proj.in_features % ACT_BLOCK == 0)


def _check_layer(layer):
    if layer.in_features % ACT_BLOCK or layer.out_features % ACT_BLOCK:
        raise ValueError(f"triton backend: layer '{layer.name}' needs in/out features "
                         f'divisible by {ACT_BLOCK}, got {layer.in_features}x'
                         f'{layer.out_features}')
    if layer.weight_group % ACT_BLOCK:
        raise ValueError(f"triton backend: layer '{layer.name}' weight_group "
                         f'{layer.weight_group} is not a multiple of {ACT_BLOCK}')
    owner = layer.input_owner
    stored = {'weight_scale': (layer, torch.float16),
              'weight_scale_unit': (layer, torch.float16), 'bias': (layer, torch.float32),
              'rot_out': (layer, torch.int8), 'rot_out_scale': (layer, torch.float16),
              'smooth': (owner, torch.float32), 'perm_in': (owner, torch.int32),
              'rot_in': (owner, torch.int8), 'rot_in_scale': (owner, torch.float16),
              'act_scale': (owner, torch.float16)}
    for name, (holder, dtype) in stored.items():
        t = getattr(holder, name)
        if t is not None and (t.dtype != dtype or not t.is_contiguous()):
            raise ValueError(f"triton backend: layer '{holder.name}' buffer {name} must be "
                             f'contiguous {dtype}, got {t.dtype}')


# Stored per output row (concatenated along dim 0) and per input transform (stacked).
_OUTPUT_SIDE = ('weight_packed', 'weight_scale', 'weight_scale_unit', 'bias', 'rot_out',
                'rot_out_scale')
_INPUT_SIDE = ('perm_in', 'smooth', 'rot_in', 'rot_in_scale', 'act_scale')


class FusedLinears:
    """
    QuantLinears that read the same input (q/k/v, gate/up), run as one quantize + one GEMM.

    Their weights are concatenated along the output dimension into one buffer, and each
    layer's buffers become views into it (no second copy). Each layer keeps its own input
    transform (stacked so that one launch rotates and quantizes x for all of them) unless
    they share one (share_input_rotation), which is then applied once. The first member
    called with x computes every member's output; the others take their column range while x
    is the same, unmodified tensor at the same denoising step.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        first = self.layers[0]
        for layer in self.layers:
            _check_layer(layer)
        same = ('in_features', 'act_mode', 'per_step', 'weight_group')
        for layer in self.layers[1:]:
            for attr in same:
                if getattr(layer, attr) != getattr(first, attr):
                    raise ValueError(f"cannot fuse '{layer.name}' with '{first.name}': "
                                     f'{attr} differs')
        self.shared_transform = all(layer.input_owner is first.input_owner
                                    for layer in self.layers)
        if not self.shared_transform and any(layer.input_from for layer in self.layers):
            names = ', '.join(layer.name for layer in self.layers)
            raise ValueError(f'cannot fuse {names}: some share an input transform with a '
                             'layer outside the group')
        compared = _OUTPUT_SIDE + (() if self.shared_transform else _INPUT_SIDE)
        for layer in self.layers[1:]:
            for name in compared:
                if (getattr(layer, name) is None) != (getattr(first, name) is None):
                    raise ValueError(f"cannot fuse '{layer.name}' with '{first.name}': "
                                     f'one has {name}, the other not')
        sizes = [layer.out_features for layer in self.layers]
        self.bounds = [(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]
        self.n_align = functools.reduce(math.gcd, sizes)
        # The GEMM finds an N-tile's member by comparing its first column with these ends.
        ends = [b for _, b in self.bounds]
        if not self.shared_transform and len(ends) > 3:
            raise ValueError(f'cannot fuse {len(ends)} linears with their own input '
                             'transforms: the GEMM tells at most three apart')
        self.member_ends = tuple(ends[:2]) if len(ends) > 1 else None
        self.index = {id(layer): i for i, layer in enumerate(self.layers)}
        self._outputs = InputMemo()
        self._join()

    def _join(self):
        """Concatenate output-side buffers, stack input-side ones; members become views."""
        names = _OUTPUT_SIDE + (() if self.shared_transform else _INPUT_SIDE)
        for name in names:
            parts = [getattr(layer, name) for layer in self.layers]
            if parts[0] is None:
                setattr(self, name, None)
                continue
            stacked = name in _INPUT_SIDE
            whole = torch.stack(parts) if stacked else torch.cat(parts)
            setattr(self, name, whole)
            start = 0
            for layer, part in zip(self.layers, parts):
                if stacked:
                    view = whole[start]
                    start += 1
                else:
                    view = whole[start:start + part.shape[0]]
                    start += part.shape[0]
                setattr(layer, name, view)

    def _joined(self) -> bool:
        """Return True while every member's weights are still views of the concatenation."""
        return all(layer.weight_packed._base is self.weight_packed for layer in self.layers)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Return every member's output for x as one [M, sum of out_features] tensor."""
        if not self._joined():
            # The module was moved or its buffers replaced since fusing: join again.
            self._join()
        first = self.layers[0]
        x2 = x.reshape(-1, x.shape[-1])
        owners = [first.input_owner] if self.shared_transform else self.layers
        members = None if self.shared_transform else self.member_ends
        codes, xs, s_m, s_g, s_member = _quantize(x2, first, owners)
        return _matmul(first, self, codes, xs, s_m, s_g, s_member, members, _out_dtype(x))

    def output(self, layer, x: torch.Tensor) -> torch.Tensor:
        """Return `layer`'s output for x, computing the whole group's on first use of x."""
        y = self._outputs(x, (current_step(), x.dtype), layer, len(self.layers), self.run)
        a, b = self.bounds[self.index[id(layer)]]
        return y[:, a:b].reshape(*x.shape[:-1], b - a).to(x.dtype)


def fuse_siblings(model: torch.nn.Module, siblings):
    """
    Fuse each set of sibling QuantLinears in `model` that reads one input into FusedLinears.

    siblings: tuples of child names that read the same input wherever they occur together
    under one parent, e.g. ('q_proj', 'k_proj', 'v_proj'). Returns (groups made, [(layer
    names, reason)] of sets left unfused): sets in a non-integer activation mode or with
    mismatched features run layer by layer, as before.
    """
    groups, skipped = [], []
    for parent in model.modules():
        for names in siblings:
            layers = [getattr(parent, name, None) for name in names]
            if not all(isinstance(layer, QuantLinear) for layer in layers):
                continue
            try:
                if any(layer.act_mode not in _MODE_IDS for layer in layers):
                    raise ValueError(f'activation mode {layers[0].act_mode} has no integer GEMM')
                group = FusedLinears(layers)
            except ValueError as error:
                skipped.append(([layer.name for layer in layers], str(error)))
                continue
            for layer in layers:
                object.__setattr__(layer, '_fused', group)
            groups.append(group)
    return groups, skipped


def unfuse(model: torch.nn.Module):
    """Run every QuantLinear of `model` on its own again (its buffers stay views)."""
    for module in model.modules():
        if isinstance(module, QuantLinear):
            object.__setattr__(module, '_fused', None)


class _LazyTriton:
    """Module proxy so `triton.cdiv` resolves only when a kernel is launched."""

    def __getattr__(self, item):
        import triton as _triton
        return getattr(_triton, item)


triton = _LazyTriton()
