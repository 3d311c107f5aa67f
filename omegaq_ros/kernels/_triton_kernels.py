# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Triton kernels of the W4A4 QuantLinear backend (imported only when a kernel first runs).

quant_kernel (rotate + quantize the input), gemm_kernel (the scaled W4A4 GEMM of its codes),
int_gemm_kernel (the bare int32 product) and finish_kernel (split-K sum + output rotation).
The @triton.jit helpers below them are shared, so the paths cannot drift apart. See
omegaq_ros/kernels/triton_w4a4.py for the data flow and the launch wrappers.
"""

from omegaq_ros.kernels import act_modes
from omegaq_ros.quant.activations import DYNAMIC_MIN_SCALE as _DYNAMIC_MIN_SCALE
from omegaq_ros.quant.activations import SUBSCALES as _SUBSCALES
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

# The activation-scale modes the kernels take as MODE (ids shared with the wrapper).
STATIC_GROUP = tl.constexpr(act_modes.STATIC_GROUP)
DYNAMIC_GROUP = tl.constexpr(act_modes.DYNAMIC_GROUP)
DYNAMIC_TOKEN = tl.constexpr(act_modes.DYNAMIC_TOKEN)
DYNAMIC_TWO_LEVEL = tl.constexpr(act_modes.DYNAMIC_TWO_LEVEL)
DYNAMIC_GROUP128 = tl.constexpr(act_modes.DYNAMIC_GROUP128)
SUBSCALES = tl.constexpr(_SUBSCALES)
DYNAMIC_MIN_SCALE = tl.constexpr(_DYNAMIC_MIN_SCALE)
# The gating a quantize may apply to its input first (GATE): none, GeGLU or SwiGLU.
NO_GATE = tl.constexpr(act_modes.NO_GATE)
GELU_TANH_GATE = tl.constexpr(act_modes.GELU_TANH_GATE)
SILU_GATE = tl.constexpr(act_modes.SILU_GATE)
# 128-byte lines of each weight row a PDL GEMM program prefetches (16 64-groups).
PREFETCH_LINES = tl.constexpr(4)
# A per-token first pass stores each transformed value as int16 steps of its 64-group's
# absmax (this many steps per absmax) beside that absmax: half the bytes of fp32 values, and a
# decoded value is off by at most 1/65534 of the group's absmax, about 1e-4 of a 4-bit step.
FIRST_PASS_STEPS = tl.constexpr(32767.0)


@triton.jit
def after_predecessor(PDL: tl.constexpr):
    """Wait for the kernel before to finish (programmatic dependent launches, sm_90+)."""
    # Launched with programmatic dependent launch, a grid may start while the kernel before
    # it still runs: nothing that kernel writes is read before this wait, which returns once
    # it has completed and its writes are visible. Every program waits, so completion is
    # transitive along a chain of such launches.
    if PDL:
        gdc_wait()


@triton.jit
def before_successor(PDL: tl.constexpr):
    """Let the next kernel start (its programs then wait in after_predecessor)."""
    # Once the main work is done, not earlier: waiting programs of the next grid would share
    # the SMs with this one's for longer.
    if PDL:
        gdc_launch_dependents()


@triton.jit
def _prefetch_l2(ptrs):
    # A hint: the lines at ptrs (int64 addresses) start coming into L2; nothing is returned.
    tl.inline_asm_elementwise('prefetch.global.L2 [$1]; // dummy $0', '=r,l', [ptrs],
                              dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _round_clamp(v):
    # Round half to even like torch.round, then clamp to the int4 range. Pre-clamping to
    # [-9, 9] keeps the 1.5 * 2^23 trick exact and does not change the clamped result.
    v = tl.minimum(tl.maximum(v, -9.0), 9.0)
    r = (v + 12582912.0) - 12582912.0
    return tl.minimum(tl.maximum(r, -8.0), 7.0)


@triton.jit
def _gated(gate, up, GATE: tl.constexpr):
    # act(gate) * up in fp32: gelu with the tanh approximation, 0.5 g (1 + tanh z) =
    # g sigmoid(2 z), or silu.
    if GATE == GELU_TANH_GATE:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        act = gate * tl.sigmoid(2.0 * inner)
    else:
        act = gate * tl.sigmoid(gate)
    return act * up


@triton.jit
def _transform_operands(perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, g, HAS_PERM: tl.constexpr,
                        HAS_SMOOTH: tl.constexpr, HAS_ROT: tl.constexpr):
    # One 64-group's input transform: its source columns, smoothing factors, rotation codes
    # [64, 64] (int8, row-major) and rotation scales (one per column). They depend on no
    # kernel, so a programmatic dependent launch loads them before after_predecessor, while
    # the kernel before it still runs. A transform that is off returns a placeholder.
    offs_k = tl.arange(0, 64)
    src = g * 64 + offs_k
    if HAS_PERM:
        src = tl.load(perm_ptr + src)
    smooth = offs_k
    if HAS_SMOOTH:
        smooth = tl.load(smooth_ptr + src)
    r = offs_k
    rs = offs_k
    if HAS_ROT:
        r = tl.load(rot_ptr + g * 4096 + offs_k[:, None] * 64 + offs_k[None, :])
        rs = tl.load(rscale_ptr + g * 64 + offs_k).to(tl.float32)
    return src, smooth, r, rs


@triton.jit
def _load_rotated(x_ptr, stride_xm, src, smooth, r, rs, offs_m, m_mask, HAS_SMOOTH: tl.constexpr,
                  HAS_ROT: tl.constexpr, TC_ROT: tl.constexpr, up_ptr=None,
                  GATE: tl.constexpr = NO_GATE):
    # Load one 64-group of rows offs_m from its source columns src and transform it
    # (_transform_operands' src, smooth, r, rs). GATE: x_ptr holds a gated MLP's gate and
    # up_ptr its up projection (same strides); the input is act(gate) * up, rounded to x's
    # dtype as the unfused model stores it.
    offsets = offs_m[:, None] * stride_xm + src[None, :]
    x = tl.load(x_ptr + offsets, mask=m_mask[:, None], other=0.0)
    if GATE != NO_GATE:
        up = tl.load(up_ptr + offsets, mask=m_mask[:, None], other=0.0).to(tl.float32)
        x = _gated(x.to(tl.float32), up, GATE).to(x_ptr.dtype.element_ty)
    return _rotated(x.to(tl.float32), smooth, r, rs, HAS_SMOOTH, HAS_ROT, TC_ROT,
                    x_ptr.dtype.element_ty == tl.bfloat16)


@triton.jit
def _rotated(x, smooth, r, rs, HAS_SMOOTH: tl.constexpr, HAS_ROT: tl.constexpr,
             TC_ROT: tl.constexpr, BF16_VALUES: tl.constexpr = False):
    # Smooth and rotate one 64-group of an input (fp32 [rows, 64]) by _transform_operands'
    # smooth, r, rs. BF16_VALUES: x holds bfloat16 values (a bfloat16 input, gated or not).
    if HAS_SMOOTH:
        x = x * smooth[None, :]
    if HAS_ROT:
        # x @ R = (x @ codes) * scale.
        if TC_ROT:
            # On tensor cores: the codes are exact in bfloat16 and x splits into three
            # bfloat16 parts (hi + mid + lo hold its 24 mantissa bits), so three dots with fp32
            # accumulation give the fp32 product to about fp32 rounding (the tensor cores'
            # accumulation is not IEEE: more near-tie codes flip than with the fp32 dot,
            # RESULTS 7).
            # A bfloat16 input without smoothing is its own hi part (mid and lo are zero and
            # their dots add exact zeros), so one dot gives the same fp32 product.
            codes = r.to(tl.bfloat16)
            hi = x.to(tl.bfloat16)
            acc = tl.dot(hi, codes, out_dtype=tl.float32)
            if not (BF16_VALUES and not HAS_SMOOTH):
                rest = x - hi.to(tl.float32)
                mid = rest.to(tl.bfloat16)
                lo = (rest - mid.to(tl.float32)).to(tl.bfloat16)
                acc = tl.dot(mid, codes, acc, out_dtype=tl.float32)
                acc = tl.dot(lo, codes, acc, out_dtype=tl.float32)
            x = acc * rs[None, :]
        else:
            # fp32 on the CUDA cores (Triton's interpreter has no bfloat16 dot).
            x = tl.dot(x, r.to(tl.float32) * rs[None, :], input_precision='ieee')
    return x


@triton.jit
def _gemm_order(q, BM: tl.constexpr):
    # A [BM, 64] group of codes in the order the GEMM reads: the even columns first, then the
    # odd ones, matching the low and high nibbles of the packed weight bytes. (Loading the
    # rotation's columns in that order instead was slower on an H100, RESULTS 7f.)
    even, odd = tl.split(tl.reshape(q, (BM, 32, 2)))
    return tl.reshape(tl.permute(tl.join(even, odd), (0, 2, 1)), (BM, 64))


@triton.jit
def _unpack_nibbles(wb, ASM_UNPACK: tl.constexpr):
    # wb: packed int4 weight bytes (uint8). Returns (low nibbles, high nibbles) as int8.
    # A nibble u holds q = u - 16 * (u >= 8); t = u ^ 8 = q + 8 lies in [0, 15], and
    # (t + 0x78) ^ 0x80 is q as a two's-complement byte. No byte exceeds 0x87 on the way, so
    # four bytes of a 32-bit word go through one instruction each without carries.
    if ASM_UNPACK:
        lo, hi = tl.inline_asm_elementwise(
            asm="""
            {
            .reg .b32 t;
            and.b32 t, $2, 0x0F0F0F0F;
            xor.b32 t, t, 0x08080808;
            add.u32 t, t, 0x78787878;
            xor.b32 $0, t, 0x80808080;
            shr.u32 t, $2, 4;
            and.b32 t, t, 0x0F0F0F0F;
            xor.b32 t, t, 0x08080808;
            add.u32 t, t, 0x78787878;
            xor.b32 $1, t, 0x80808080;
            }
            """,
            constraints='=r,=r,r', args=[wb], dtype=(tl.int8, tl.int8), is_pure=True, pack=4)
    else:
        # The interpreter runs no PTX: the same arithmetic one byte at a time.
        lo = ((((wb & 0x0F) ^ 0x08) + 0x78) ^ 0x80).to(tl.int8, bitcast=True)
        hi = ((((wb >> 4) ^ 0x08) + 0x78) ^ 0x80).to(tl.int8, bitcast=True)
    return lo, hi


@triton.jit
def _unpack_nibbles_times(wb, mb, ASM_UNPACK: tl.constexpr):
    # _unpack_nibbles scaled by the row's weight-scale multiple m (1..16, mb: [BN, 32] bytes
    # of it): q * m as int8 (|q m| <= 128). With t = q + 8 in [0, 15], t * m <= 240 fits a
    # byte, so one 32-bit multiply scales four bytes without carries; t m + (128 - 8 m) =
    # q m + 128 lies in [0, 240], and ^ 0x80 makes it q m as a two's-complement byte.
    if ASM_UNPACK:
        lo, hi = tl.inline_asm_elementwise(
            asm="""
            {
            .reg .b32 t, m, c;
            and.b32 m, $3, 0xFF;
            shl.b32 c, $3, 3;
            sub.u32 c, 0x80808080, c;
            and.b32 t, $2, 0x0F0F0F0F;
            xor.b32 t, t, 0x08080808;
            mul.lo.u32 t, t, m;
            add.u32 t, t, c;
            xor.b32 $0, t, 0x80808080;
            shr.u32 t, $2, 4;
            and.b32 t, t, 0x0F0F0F0F;
            xor.b32 t, t, 0x08080808;
            mul.lo.u32 t, t, m;
            add.u32 t, t, c;
            xor.b32 $1, t, 0x80808080;
            }
            """,
            constraints='=r,=r,r,r', args=[wb, mb], dtype=(tl.int8, tl.int8), is_pure=True,
            pack=4)
    else:
        m = mb.to(tl.int32)
        lo = ((((wb & 0x0F) ^ 0x08).to(tl.int32) - 8) * m).to(tl.int8)
        hi = ((((wb >> 4) ^ 0x08).to(tl.int32) - 8) * m).to(tl.int8)
    return lo, hi


@triton.jit
def _group_scale(xr, srow_ptr, g, offs_m, MODE: tl.constexpr, BM: tl.constexpr):
    # STATIC_GROUP: the table row's scale of group g; DYNAMIC_GROUP: the group's absmax / 7.
    if MODE == STATIC_GROUP:
        scale = tl.load(srow_ptr + g + offs_m * 0).to(tl.float32)
    else:
        amax = tl.max(tl.abs(xr), axis=1)
        scale = tl.maximum(tl.math.div_rn(amax, tl.full([BM], 7.0, tl.float32)), DYNAMIC_MIN_SCALE)
    return scale


@triton.jit
def _store_two_level_codes(xr, gmax, token_scale, codes_ptr, g, offs_m, m_mask, K,
                           BM: tl.constexpr):
    # DYNAMIC_TWO_LEVEL (activations.group_subscales): the group's scale is the token's
    # times m / SUBSCALES (the least m that holds the group's absmax gmax); its codes are
    # stored times m, so that the GEMM's one scale per token, token_scale / SUBSCALES, gives
    # each code its group's step.
    wanted = tl.math.div_rn(gmax, tl.full([BM], 7.0, tl.float32))
    m = tl.full([BM], 1.0, tl.float32)
    for i in tl.static_range(1, SUBSCALES):
        m += (token_scale * (i / SUBSCALES) < wanted).to(tl.float32)
    scale = token_scale * m * (1 / SUBSCALES)
    q = _round_clamp(tl.math.div_rn(xr, scale[:, None] + tl.zeros_like(xr))) * m[:, None]
    _store_group(q, codes_ptr, g, offs_m, m_mask, K, BM)


@triton.jit
def _store_codes(xr, scale, codes_ptr, g, offs_m, m_mask, K, BM: tl.constexpr):
    # Round xr / scale to int4 codes; store them (_store_group).
    q = _round_clamp(tl.math.div_rn(xr, scale[:, None] + tl.zeros_like(xr)))
    _store_group(q, codes_ptr, g, offs_m, m_mask, K, BM)


@triton.jit
def _store_group(q, codes_ptr, g, offs_m, m_mask, K, BM: tl.constexpr):
    # Store one 64-group's integer operands (fp32 [rows, 64]) in GEMM order, as int8 or, for
    # the FP8 GEMM, as float8 e4m3 (every int4 code is exact in it).
    if codes_ptr.dtype.element_ty == tl.int8:
        ordered = _gemm_order(q.to(tl.int8), BM)
    else:
        ordered = _gemm_order(q, BM).to(codes_ptr.dtype.element_ty)
    tl.store(codes_ptr + offs_m[:, None] * K + g * 64 + tl.arange(0, 64)[None, :], ordered,
             mask=m_mask[:, None])


@triton.jit
def _store_first_pass(xr, values_ptr, gmax_ptr, amax_ptr, offs_m, m_mask, g, K, G):
    # One transformed 64-group of a per-token first pass: its values as int16 steps of the
    # group's absmax at values_ptr [M, K], that absmax at gmax_ptr [M, G] and maxed into the
    # token's at amax_ptr [M] (zeros before; atomic max of non-negative floats).
    gmax = tl.max(tl.abs(xr), axis=1)
    inv = tl.where(gmax > 0, tl.math.div_rn(FIRST_PASS_STEPS + tl.zeros_like(gmax), gmax), 0.0)
    v = tl.minimum(tl.maximum(xr * inv[:, None], -FIRST_PASS_STEPS), FIRST_PASS_STEPS)
    v = (v + 12582912.0) - 12582912.0                # round half to even (as _round_clamp)
    tl.store(values_ptr + offs_m[:, None] * K + g * 64 + tl.arange(0, 64)[None, :],
             v.to(tl.int16), mask=m_mask[:, None])
    tl.store(gmax_ptr + offs_m * G + g, gmax, mask=m_mask)
    tl.atomic_max(amax_ptr + offs_m, gmax, mask=m_mask, sem='relaxed')


@triton.jit
def _load_first_pass(values_ptr, gmax_ptr, offs_m, m_mask, g, K, G):
    # _store_first_pass's group g, decoded: (values fp32 [rows, 64], the group's exact absmax).
    v = tl.load(values_ptr + offs_m[:, None] * K + g * 64 + tl.arange(0, 64)[None, :],
                mask=m_mask[:, None], other=0).to(tl.float32)
    gmax = tl.load(gmax_ptr + offs_m * G + g, mask=m_mask, other=0.0)
    step = tl.math.div_rn(gmax, FIRST_PASS_STEPS + tl.zeros_like(gmax))
    return v * step[:, None], gmax


@triton.jit
def gather_kernel(x_ptr, stride_xm, perm_ptr, out_ptr, M, K, BM: tl.constexpr,
                  BK: tl.constexpr, PDL: tl.constexpr = False):
    """
    Write x's columns in each member's input permutation: out[p, m, c] = x[m, perm[p, c]].

    Grid (M-tiles, members); perm_ptr [members, K], out_ptr [members, M, K]. A program walks
    its BM rows (a few KB, held in L1 once touched) in column order, so each 32-byte sector of
    x crosses from L2 once per program; a quantize program gathering one 64-group for many
    rows instead fetches a sector for every 2-byte element (RESULTS 7t).
    """
    pid_m = tl.program_id(0)
    p = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_mask = offs_m < M
    rows = x_ptr + offs_m[:, None] * stride_xm
    out_ptr += p * M * K + offs_m[:, None] * K
    perm_ptr += p * K
    after_predecessor(PDL)
    for k0 in range(0, K, BK):
        cols = k0 + tl.arange(0, BK)
        src = tl.load(perm_ptr + cols)
        tl.store(out_ptr + cols[None, :], tl.load(rows + src[None, :], mask=m_mask[:, None]),
                 mask=m_mask[:, None])
    before_successor(PDL)


@triton.jit
def amax_kernel(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, amax_ptr,
                values_ptr, gmax_ptr, M, G, s_member_x, s_member_k, s_member_amax,
                HAS_PERM: tl.constexpr, HAS_SMOOTH: tl.constexpr, HAS_ROT: tl.constexpr,
                TC_ROT: tl.constexpr, BM: tl.constexpr, GATE: tl.constexpr = NO_GATE,
                PDL: tl.constexpr = False):
    """
    Transform x once for the per-token modes: the values, their groups' and tokens' absmax.

    One program per (M-tile, group) stores its group's transformed values (natural column
    order, [members, M, G * 64]) as int16 steps of the group's absmax at values_ptr, that
    absmax at gmax_ptr [members, M, G], and takes it into the token's at amax_ptr [M] (zeros
    before) by atomic max (_store_first_pass), so the pass spreads over the whole GPU however
    wide the input. quant_kernel then quantizes these values with the token's scale (no
    second rotation: transforming x again there, instead of reading stored values, made the
    chunk 0.9-1.5 ms slower, RESULTS 7m). GATE: as quant_kernel's. Grid and members as
    quant_kernel's; member p's input starts p * s_member_x elements in (0: one x for all),
    its maxima p * s_member_amax, its values p * M * G * 64, its group maxima p * M * G.
    PDL: as quant_kernel's.
    """
    pid_m = tl.program_id(0)
    g = tl.program_id(1)
    p = tl.program_id(2)
    x_ptr += p * s_member_x
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_mask = offs_m < M
    K = G * 64
    src, smooth, r, rs = _transform_operands(
        perm_ptr + p * s_member_k, smooth_ptr + p * s_member_k, rot_ptr + p * s_member_k * 64,
        rscale_ptr + p * s_member_k, g, HAS_PERM, HAS_SMOOTH, HAS_ROT)
    after_predecessor(PDL)
    xr = _load_rotated(x_ptr, stride_xm, src, smooth, r, rs, offs_m, m_mask, HAS_SMOOTH,
                       HAS_ROT, TC_ROT, up_ptr, GATE)
    before_successor(PDL)
    _store_first_pass(xr, values_ptr + p * M * K, gmax_ptr + p * M * G,
                      amax_ptr + p * s_member_amax, offs_m, m_mask, g, K, G)


@triton.jit
def quant_kernel(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, srow_ptr,
                 codes_ptr, xs_ptr, gmax_ptr, M, G, s_member_x, s_member_k, s_member_srow,
                 s_member_xs, MODE: tl.constexpr, HAS_PERM: tl.constexpr, HAS_SMOOTH: tl.constexpr,
                 HAS_ROT: tl.constexpr, TC_ROT: tl.constexpr, BM: tl.constexpr,
                 GATE: tl.constexpr = NO_GATE, PDL: tl.constexpr = False,
                 SCALE_PER_PAIR: tl.constexpr = False):
    """
    Smooth, permute, rotate and quantize x [M, G * 64] into int4 codes (GEMM order).

    MODE STATIC_GROUP: scales from the table row srow_ptr (one per 64-group); DYNAMIC_GROUP:
    each (token, group) absmax / 7, stored group-major at xs_ptr [G, M]; DYNAMIC_TOKEN: each
    token's absmax (amax_kernel's, at srow_ptr [M]) / 7, stored at xs_ptr [M];
    DYNAMIC_TWO_LEVEL: that scale / SUBSCALES at xs_ptr, and per group its integer
    sub-scale applied to the codes (_store_two_level_codes). In these two modes x is
    amax_kernel's first pass (int16 values, their group maxima at gmax_ptr [members, M, G]:
    _load_first_pass) and the HAS_* transforms are off. DYNAMIC_GROUP128: grid axis 1 runs
    pairs of 64-groups, one scale per (token, pair), stored at xs_ptr [G, M] for both groups
    (as DYNAMIC_GROUP's) or, SCALE_PER_PAIR, once at xs_ptr [G / 2, M] (the FP8 GEMM's).
    The codes are int8 or float8 e4m3 (codes_ptr's type). Grid (M-tiles, groups,
    members): axis 2 runs the input transforms of linears that read the same x (one launch
    for q/k/v or gate/up): member p's input starts p * s_member_x elements in (0: one x for
    all), its perm, smooth and rotation scales p * s_member_k (its rotation codes
    p * 64 * s_member_k), its codes p * M * K, its table row or token maxima
    p * s_member_srow, its dynamic scales p * s_member_xs. GATE (GELU_TANH_GATE, SILU_GATE):
    x is a gated MLP's gate projection and up_ptr its up projection, and the input to
    quantize is act(gate) * up, so no launch of its own computes it (one member). PDL: launched
    as a programmatic dependent launch (after_predecessor, before_successor).
    """
    pid_m = tl.program_id(0)
    g = tl.program_id(1)
    p = tl.program_id(2)
    x_ptr += p * s_member_x
    perm_ptr += p * s_member_k
    smooth_ptr += p * s_member_k
    rot_ptr += p * s_member_k * 64
    rscale_ptr += p * s_member_k
    srow_ptr += p * s_member_srow
    xs_ptr += p * s_member_xs
    offs_m = pid_m * BM + tl.arange(0, BM)
    m_mask = offs_m < M
    K = G * 64
    codes_ptr += p * M * K
    if MODE == DYNAMIC_GROUP128:
        _quantize_pair(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr,
                       codes_ptr, xs_ptr, g, offs_m, m_mask, M, K, HAS_PERM, HAS_SMOOTH,
                       HAS_ROT, TC_ROT, BM, GATE, PDL, SCALE_PER_PAIR)
    else:
        _quantize_group(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr,
                        srow_ptr, codes_ptr, xs_ptr, gmax_ptr + p * M * G, g, offs_m, m_mask,
                        M, G, MODE, HAS_PERM, HAS_SMOOTH, HAS_ROT, TC_ROT, BM, GATE, PDL)


@triton.jit
def _quantize_pair(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr,
                   codes_ptr, xs_ptr, pair, offs_m, m_mask, M, K, HAS_PERM: tl.constexpr,
                   HAS_SMOOTH: tl.constexpr, HAS_ROT: tl.constexpr, TC_ROT: tl.constexpr,
                   BM: tl.constexpr, GATE: tl.constexpr, PDL: tl.constexpr,
                   SCALE_PER_PAIR: tl.constexpr):
    # quant_kernel's DYNAMIC_GROUP128: the 64-groups 2 pair and 2 pair + 1 (each rotated by
    # its own block) share one scale, their joint absmax / 7.
    lo, hi = 2 * pair, 2 * pair + 1
    src0, smooth0, r0, rs0 = _transform_operands(perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, lo,
                                                 HAS_PERM, HAS_SMOOTH, HAS_ROT)
    src1, smooth1, r1, rs1 = _transform_operands(perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, hi,
                                                 HAS_PERM, HAS_SMOOTH, HAS_ROT)
    after_predecessor(PDL)
    x0 = _load_rotated(x_ptr, stride_xm, src0, smooth0, r0, rs0, offs_m, m_mask, HAS_SMOOTH,
                       HAS_ROT, TC_ROT, up_ptr, GATE)
    x1 = _load_rotated(x_ptr, stride_xm, src1, smooth1, r1, rs1, offs_m, m_mask, HAS_SMOOTH,
                       HAS_ROT, TC_ROT, up_ptr, GATE)
    amax = tl.maximum(tl.max(tl.abs(x0), axis=1), tl.max(tl.abs(x1), axis=1))
    scale = tl.maximum(tl.math.div_rn(amax, tl.full([BM], 7.0, tl.float32)), DYNAMIC_MIN_SCALE)
    if SCALE_PER_PAIR:
        # [G / 2, M]: the FP8 GEMM's outer-dim-major 1x128 block scales.
        tl.store(xs_ptr + pair * M + offs_m, scale, mask=m_mask)
    else:
        # [G, M] as DYNAMIC_GROUP's, both groups of the pair given the scale.
        tl.store(xs_ptr + lo * M + offs_m, scale, mask=m_mask)
        tl.store(xs_ptr + hi * M + offs_m, scale, mask=m_mask)
    before_successor(PDL)
    _store_codes(x0, scale, codes_ptr, lo, offs_m, m_mask, K, BM)
    _store_codes(x1, scale, codes_ptr, hi, offs_m, m_mask, K, BM)


@triton.jit
def _quantize_group(x_ptr, up_ptr, stride_xm, perm_ptr, smooth_ptr, rot_ptr, rscale_ptr,
                    srow_ptr, codes_ptr, xs_ptr, gmax_ptr, g, offs_m, m_mask, M, G,
                    MODE: tl.constexpr, HAS_PERM: tl.constexpr, HAS_SMOOTH: tl.constexpr,
                    HAS_ROT: tl.constexpr, TC_ROT: tl.constexpr, BM: tl.constexpr,
                    GATE: tl.constexpr, PDL: tl.constexpr):
    # quant_kernel's other modes: one 64-group g (gmax_ptr: this member's group maxima).
    K = G * 64
    if MODE != DYNAMIC_TOKEN and MODE != DYNAMIC_TWO_LEVEL:
        src, smooth, r, rs = _transform_operands(perm_ptr, smooth_ptr, rot_ptr, rscale_ptr, g,
                                                 HAS_PERM, HAS_SMOOTH, HAS_ROT)
    after_predecessor(PDL)
    if MODE == DYNAMIC_TOKEN or MODE == DYNAMIC_TWO_LEVEL:
        xr, gmax = _load_first_pass(x_ptr, gmax_ptr, offs_m, m_mask, g, K, G)
        amax = tl.load(srow_ptr + offs_m, mask=m_mask, other=0.0).to(tl.float32)
        scale = tl.maximum(tl.math.div_rn(amax, tl.full([BM], 7.0, tl.float32)),
                           DYNAMIC_MIN_SCALE)
        if g == 0:
            if MODE == DYNAMIC_TWO_LEVEL:
                tl.store(xs_ptr + offs_m, scale * (1 / SUBSCALES), mask=m_mask)
            else:
                tl.store(xs_ptr + offs_m, scale, mask=m_mask)
    else:
        xr = _load_rotated(x_ptr, stride_xm, src, smooth, r, rs, offs_m, m_mask, HAS_SMOOTH,
                           HAS_ROT, TC_ROT, up_ptr, GATE)
        scale = _group_scale(xr, srow_ptr, g, offs_m, MODE, BM)
        if MODE == DYNAMIC_GROUP:
            # Group-major [G, M]: the GEMM reads one group's scales for consecutive tokens.
            tl.store(xs_ptr + g * M + offs_m, scale, mask=m_mask)
    before_successor(PDL)
    if MODE == DYNAMIC_TWO_LEVEL:
        _store_two_level_codes(xr, gmax, scale, codes_ptr, g, offs_m, m_mask, K, BM)
    else:
        _store_codes(xr, scale, codes_ptr, g, offs_m, m_mask, K, BM)


@triton.jit
def _tile(M, N, BM: tl.constexpr, BN: tl.constexpr):
    # This program's token rows and weight rows with their bounds masks (grid: N-tiles,
    # M-tiles, K-splits).
    offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
    offs_m = tl.program_id(1) * BM + tl.arange(0, BM)
    return offs_m, offs_n, offs_m < M, offs_n < N


@triton.jit
def _member(pid_n, BN: tl.constexpr, member_end1, member_end2):
    # The member (0, 1 or 2) of concatenated weights whose columns N-tile pid_n lies in
    # (member p's columns end at member_end{p+1}; tiles never straddle an end).
    n0 = pid_n * BN
    return (n0 >= member_end1).to(tl.int32) + (n0 >= member_end2).to(tl.int32)


@triton.jit
def _weight_group(w_ptrs, n_mask, ASM_UNPACK: tl.constexpr, BN: tl.constexpr):
    # One 64-wide K-group of BN weight rows as int8 codes [BN, 64] in GEMM order: the low
    # nibbles of the 32 packed bytes, then the high ones (= the even | odd order of the codes).
    w_lo, w_hi = _unpack_nibbles(tl.load(w_ptrs, mask=n_mask[:, None], other=0), ASM_UNPACK)
    return _low_then_high(w_lo, w_hi, BN)


@triton.jit
def _low_then_high(w_lo, w_hi, BN: tl.constexpr):
    # [BN, 32] low and high nibbles as one [BN, 64] group: the low ones first.
    return tl.reshape(tl.permute(tl.join(w_lo, w_hi), (0, 2, 1)), (BN, 64))


@triton.jit
def _weight_group_times(w_ptrs, n_mask, mult, ASM_UNPACK: tl.constexpr, BN: tl.constexpr):
    # _weight_group with each row's codes times its weight-scale multiple mult [BN] (int32).
    mb = tl.broadcast_to(mult.to(tl.uint8)[:, None], (BN, 32))
    w_lo, w_hi = _unpack_nibbles_times(tl.load(w_ptrs, mask=n_mask[:, None], other=0), mb,
                                       ASM_UNPACK)
    return _low_then_high(w_lo, w_hi, BN)


@triton.jit
def _multiples(ws_ptrs, n_mask, per_unit):
    # The integer multiples m (int32 [BN]) of a weight group's two-level scales: ws = m * unit
    # exactly (weights.scale_multiples), so ws / unit rounds to m.
    wsv = tl.load(ws_ptrs, mask=n_mask, other=0.0)
    return (wsv.to(tl.float32) * per_unit + 0.5).to(tl.int32)


@triton.jit
def _unit_scaled(p, units, xsv, SWAP: tl.constexpr):
    # A two-level int32 product in fp32: times each weight row's unit, then each token's
    # scale ([BN, BM] with SWAP, else [BM, BN]).
    if SWAP:
        r = p.to(tl.float32) * units[:, None] * xsv[None, :]
    else:
        r = p.to(tl.float32) * units[None, :] * xsv[:, None]
    return r


@triton.jit
def _int_dot(x, w, SWAP: tl.constexpr):
    # Exact int32 product of codes x [BM, 64] and weights w [BN, 64]: [BN, BM] with SWAP (the
    # weight fills the MMA's 64-row side), else [BM, BN].
    if SWAP:
        p = tl.dot(w, tl.trans(x), out_dtype=tl.int32)
    else:
        p = tl.dot(x, tl.trans(w), out_dtype=tl.int32)
    return p


@triton.jit
def _int_dot_into(p, x, w, SWAP: tl.constexpr):
    # p + _int_dot(x, w, SWAP), accumulated by the tensor cores (no wait between the dots).
    if SWAP:
        p = tl.dot(w, tl.trans(x), p, out_dtype=tl.int32)
    else:
        p = tl.dot(x, tl.trans(w), p, out_dtype=tl.int32)
    return p


@triton.jit
def _rescaled(p, xsv, ws_ptrs, n_mask, SWAP: tl.constexpr):
    # One K-group's int32 product times the activation scale (per token) and the weight
    # scale (per output row, loaded from ws_ptrs), in fp32.
    wsv = tl.load(ws_ptrs, mask=n_mask, other=0.0).to(tl.float32)
    if SWAP:
        r = p.to(tl.float32) * xsv[None, :] * wsv[:, None]
    else:
        r = p.to(tl.float32) * xsv[:, None] * wsv[None, :]
    return r


@triton.jit
def _token_scaled(p, xsv, SWAP: tl.constexpr):
    # A K-group's int32 product times the activation scale (per token), in fp32.
    if SWAP:
        r = p.to(tl.float32) * xsv[None, :]
    else:
        r = p.to(tl.float32) * xsv[:, None]
    return r


@triton.jit
def _weight_scaled(p, ws_ptrs, n_mask, SWAP: tl.constexpr):
    # A weight group's int32 product times the weight scale (per output row), in fp32.
    wsv = tl.load(ws_ptrs, mask=n_mask, other=0.0).to(tl.float32)
    if SWAP:
        r = p.to(tl.float32) * wsv[:, None]
    else:
        r = p.to(tl.float32) * wsv[None, :]
    return r


@triton.jit
def _accumulator(BM: tl.constexpr, BN: tl.constexpr, SWAP: tl.constexpr, DTYPE: tl.constexpr):
    if SWAP:
        acc = tl.zeros((BN, BM), dtype=DTYPE)
    else:
        acc = tl.zeros((BM, BN), dtype=DTYPE)
    return acc


@triton.jit
def _write_tile(acc, offs_m, offs_n, m_mask, n_mask, N, out_ptr, s_out_split, bias_ptr,
                y_ptr, arrivals_ptr, SWAP: tl.constexpr, FINAL: tl.constexpr,
                REDUCE: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr,
                BN: tl.constexpr):
    # FINAL: out_ptr is the output (no K split); the bias is added here. Otherwise out_ptr
    # holds fp32 partials [splits, M, N] and, with REDUCE, the last split of a tile to arrive
    # sums them into y_ptr (_reduce_splits), so no finish launch is needed.
    if SWAP:
        out = tl.trans(acc)
    else:
        out = acc
    if FINAL and HAS_BIAS:
        out = out + tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
    tile = offs_m[:, None] * N + offs_n[None, :]
    mask = m_mask[:, None] & n_mask[None, :]
    tl.store(out_ptr + tl.program_id(2) * s_out_split + tile,
             out.to(out_ptr.dtype.element_ty), mask=mask)
    if REDUCE:
        arrival_ptr = arrivals_ptr + tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
        _reduce_splits(out_ptr, s_out_split, tile, mask, offs_n, n_mask, bias_ptr, y_ptr,
                       arrival_ptr, tl.num_programs(2), HAS_BIAS, BM, BN)


@triton.jit
def _reduce_splits(part_ptr, s_split, tile, mask, offs_n, n_mask, bias_ptr, y_ptr, arrival_ptr,
                   SPLITS, HAS_BIAS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    # Every thread's partial store precedes the release of the arrival count; the last
    # arrival acquires it, so all partials are visible to its (L2) loads. The order of the
    # sum is the split order whoever arrives last: results are deterministic and equal the
    # finish kernel's. The last arrival resets the count for the next launch (CUDA graphs).
    tl.debug_barrier()
    arrived = tl.atomic_add(arrival_ptr, 1, sem='acq_rel', scope='gpu')
    if arrived == SPLITS - 1:
        total = tl.zeros([BM, BN], dtype=tl.float32)
        for s in range(0, SPLITS):
            total += tl.load(part_ptr + s * s_split + tile, mask=mask, other=0.0,
                             cache_modifier='.cg')
        if HAS_BIAS:
            total = total + tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)[None, :]
        tl.store(y_ptr + tile, total.to(y_ptr.dtype.element_ty), mask=mask)
        tl.atomic_xchg(arrival_ptr, 0, sem='relaxed', scope='gpu')


@triton.jit
def gemm_kernel(codes_ptr, xs_ptr, s_xs_m, s_xs_g, s_member_xs,
                wp_ptr, ws_ptr, s_ws_n, wu_ptr, bias_ptr,
                out_ptr, s_out_split, y_ptr, arrivals_ptr,
                M, N, G, GPS, member_end1, member_end2,
                WG_RATIO: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                SWAP: tl.constexpr, FINAL: tl.constexpr, REDUCE: tl.constexpr,
                HAS_BIAS: tl.constexpr, MEMBERS: tl.constexpr, ASM_UNPACK: tl.constexpr,
                TOKEN_SCALES: tl.constexpr = False, PAIRS: tl.constexpr = False,
                SCALE_UNITS: tl.constexpr = False, PDL: tl.constexpr = False, N_ALIGN=0):
    """
    Scaled W4A4 GEMM of activation codes from quant_kernel: y = sum_g (x_g . w_g) * xs * ws.

    codes_ptr: int8 codes [M, G * 64] in GEMM order (per 64-group the 32 even columns, then
    the 32 odd ones: the low nibbles of a weight byte row meet the first half, the high
    nibbles the second). The activation scale of (token m, group g) is
    xs_ptr[m * s_xs_m + g * s_xs_g]; weight group g // WG_RATIO of row n is
    ws_ptr[n * s_ws_n + g // WG_RATIO]. wp_ptr: packed int4 weights [N, G * 32].
    Grid (N-tiles, M-tiles, K-splits); split k runs the GPS groups from k * GPS; partials and
    the split-K sum as in _write_tile. MEMBERS: the concatenated weights of up to three
    linears with their own input transform; an N-tile's member reads its own codes
    (codes_ptr + member * M * K) and scales (xs_ptr + member * s_member_xs).
    TOKEN_SCALES: the activation scale is per token (s_xs_g == 0, DYNAMIC_TOKEN) and GPS a
    multiple of WG_RATIO, so the loop rescales once per weight group, not per 64-group.
    PAIRS (per-64-group scales, WG_RATIO and GPS even): two 64-groups per iteration, their
    scaled products summed before the shared weight scale multiplies them.
    SCALE_UNITS (one scale per token, s_xs_g == 0, and two-level weight scales): weight group
    scales are integer multiples m of a per-row unit wu_ptr[n]; the codes are multiplied by m
    as they are unpacked, so the split's whole product adds up in int32 on the tensor cores and is
    scaled once, by the unit and the token's scale (no per-group work on the CUDA cores).
    PDL: launched as a programmatic dependent launch; the first weight lines of the tile are
    prefetched into L2 while the kernel before still runs (weights depend on no kernel).
    N_ALIGN: read only by the autotuner (tiles must divide it).
    """
    K = G * 64
    offs_m, offs_n, m_mask, n_mask = _tile(M, N, BM, BN)
    g0 = tl.program_id(2) * GPS
    if PDL:
        lines = tl.minimum(tl.arange(0, PREFETCH_LINES) * 128, GPS * 32 - 1)
        rows = tl.where(n_mask, offs_n, 0).to(tl.int64) * (K // 2)
        _prefetch_l2((wp_ptr + rows[:, None] + g0 * 32 + lines[None, :]).to(tl.int64))
    after_predecessor(PDL)
    if MEMBERS:
        member = _member(tl.program_id(0), BN, member_end1, member_end2)
        xs_ptr += member * s_member_xs
        codes_ptr += member * M * K
    acc = _accumulator(BM, BN, SWAP, tl.float32)
    x_ptrs = codes_ptr + offs_m[:, None] * K + tl.arange(0, 64)[None, :]
    w_ptrs = wp_ptr + offs_n[:, None] * (K // 2) + tl.arange(0, 32)[None, :]
    if SCALE_UNITS:
        units = tl.load(wu_ptr + offs_n, mask=n_mask, other=1.0).to(tl.float32)
        per_unit = 1.0 / units
        p = _accumulator(BM, BN, SWAP, tl.int32)
        for i in range(0, GPS):
            g = g0 + i
            mult = _multiples(ws_ptr + offs_n * s_ws_n + g // WG_RATIO, n_mask, per_unit)
            p = _int_dot_into(p, tl.load(x_ptrs + g * 64, mask=m_mask[:, None], other=0),
                              _weight_group_times(w_ptrs + g * 32, n_mask, mult, ASM_UNPACK,
                                                  BN), SWAP)
        xsv = tl.load(xs_ptr + offs_m * s_xs_m, mask=m_mask, other=0.0).to(tl.float32)
        acc = _unit_scaled(p, units, xsv, SWAP)
    elif TOKEN_SCALES:
        # One scale per token: the int32 products of a whole weight group add up on the
        # tensor cores and are rescaled once by the weight scale; the token's scale comes last.
        for i in range(0, GPS, WG_RATIO):
            g = g0 + i
            p = _int_dot(tl.load(x_ptrs + g * 64, mask=m_mask[:, None], other=0),
                         _weight_group(w_ptrs + g * 32, n_mask, ASM_UNPACK, BN), SWAP)
            for j in tl.static_range(1, WG_RATIO):
                p = _int_dot_into(p, tl.load(x_ptrs + (g + j) * 64, mask=m_mask[:, None],
                                             other=0),
                                  _weight_group(w_ptrs + (g + j) * 32, n_mask, ASM_UNPACK, BN),
                                  SWAP)
            acc += _weight_scaled(p, ws_ptr + offs_n * s_ws_n + g // WG_RATIO, n_mask, SWAP)
        xsv = tl.load(xs_ptr + offs_m * s_xs_m, mask=m_mask, other=0.0).to(tl.float32)
        if SWAP:
            acc = acc * xsv[None, :]
        else:
            acc = acc * xsv[:, None]
    elif PAIRS:
        # Two 64-groups of one weight group: (p0 xs0 + p1 xs1) ws, 5 operations per output
        # and weight group instead of 6.
        for i in range(0, GPS, 2):
            g = g0 + i
            p = _int_dot(tl.load(x_ptrs + g * 64, mask=m_mask[:, None], other=0),
                         _weight_group(w_ptrs + g * 32, n_mask, ASM_UNPACK, BN), SWAP)
            t = _token_scaled(p, tl.load(xs_ptr + offs_m * s_xs_m + g * s_xs_g, mask=m_mask,
                                         other=0.0).to(tl.float32), SWAP)
            p = _int_dot(tl.load(x_ptrs + (g + 1) * 64, mask=m_mask[:, None], other=0),
                         _weight_group(w_ptrs + (g + 1) * 32, n_mask, ASM_UNPACK, BN), SWAP)
            t += _token_scaled(p, tl.load(xs_ptr + offs_m * s_xs_m + (g + 1) * s_xs_g,
                                          mask=m_mask, other=0.0).to(tl.float32), SWAP)
            wsv = tl.load(ws_ptr + offs_n * s_ws_n + g // WG_RATIO, mask=n_mask,
                          other=0.0).to(tl.float32)
            if SWAP:
                acc += t * wsv[:, None]
            else:
                acc += t * wsv[None, :]
    else:
        for i in range(0, GPS):
            g = g0 + i
            x = tl.load(x_ptrs + g * 64, mask=m_mask[:, None], other=0)
            p = _int_dot(x, _weight_group(w_ptrs + g * 32, n_mask, ASM_UNPACK, BN), SWAP)
            xsv = tl.load(xs_ptr + offs_m * s_xs_m + g * s_xs_g, mask=m_mask,
                          other=0.0).to(tl.float32)
            acc += _rescaled(p, xsv, ws_ptr + offs_n * s_ws_n + g // WG_RATIO, n_mask, SWAP)
    before_successor(PDL)
    _write_tile(acc, offs_m, offs_n, m_mask, n_mask, N, out_ptr, s_out_split, bias_ptr, y_ptr,
                arrivals_ptr, SWAP, FINAL, REDUCE, HAS_BIAS, BM, BN)


@triton.jit
def widen_kernel(wp_ptr, ws_ptr, s_ws_n, wu_ptr, out_ptr, N, G, WG_RATIO: tl.constexpr,
                 BN: tl.constexpr, ASM_UNPACK: tl.constexpr, GROUPS: tl.constexpr = 1,
                 PDL: tl.constexpr = False):
    """
    Unpack two-level int4 weights into int8 operands: out [N, G * 64] = q * m, GEMM order.

    What gemm_kernel's SCALE_UNITS loop unpacks in registers, written once for every token
    tile of wide_gemm_kernel to read from shared memory (|q m| <= 128 fits int8). Grid
    (N-tiles, G / GROUPS): GROUPS consecutive 64-groups per program. PDL: the weights are
    read before the kernel before has finished, the output written after (its memory may be
    what an earlier launch still reads).
    """
    offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
    n_mask = offs_n < N
    K = G * 64
    per_unit = 1.0 / tl.load(wu_ptr + offs_n, mask=n_mask, other=1.0).to(tl.float32)
    for i in tl.static_range(GROUPS):
        g = tl.program_id(1) * GROUPS + i
        mult = _multiples(ws_ptr + offs_n * s_ws_n + g // WG_RATIO, n_mask, per_unit)
        w = _weight_group_times(wp_ptr + offs_n[:, None] * (K // 2) + g * 32
                                + tl.arange(0, 32)[None, :], n_mask, mult, ASM_UNPACK, BN)
        if i == 0:
            after_predecessor(PDL)
        if i == GROUPS - 1:
            before_successor(PDL)
        tl.store(out_ptr + offs_n[:, None] * K + g * 64 + tl.arange(0, 64)[None, :], w,
                 mask=n_mask[:, None])


@triton.jit
def widen_fp8_kernel(wp_ptr, ws_ptr, s_ws_n, out_ptr, wst_ptr, N, G, BN: tl.constexpr,
                     ASM_UNPACK: tl.constexpr, GROUPS: tl.constexpr = 2,
                     PDL: tl.constexpr = False):
    """
    Unpack int4 weights into float8 e4m3 codes out [N, G * 64] (GEMM order, exact in e4m3).

    Also writes the rows' weight-group scales (groups of 128, ws_ptr [N, G / 2] fp16) as
    fp32 [G / 2, N] at wst_ptr: the FP8 GEMM's 1x128 block scales of the weight operand.
    Grid (N-tiles, G / GROUPS), GROUPS even (whole 128-groups per program). PDL: as
    widen_kernel's.
    """
    offs_n = tl.program_id(0) * BN + tl.arange(0, BN)
    n_mask = offs_n < N
    K = G * 64
    for i in tl.static_range(GROUPS):
        g = tl.program_id(1) * GROUPS + i
        w = _weight_group(wp_ptr + offs_n[:, None] * (K // 2) + g * 32
                          + tl.arange(0, 32)[None, :], n_mask, ASM_UNPACK, BN)
        if i % 2 == 0:
            wsv = tl.load(ws_ptr + offs_n * s_ws_n + g // 2, mask=n_mask, other=0.0)
        if i == 0:
            after_predecessor(PDL)
        if i == GROUPS - 1:
            before_successor(PDL)
        tl.store(out_ptr + offs_n[:, None] * K + g * 64 + tl.arange(0, 64)[None, :],
                 w.to(tl.float16).to(out_ptr.dtype.element_ty), mask=n_mask[:, None])
        if i % 2 == 0:
            tl.store(wst_ptr + (g // 2) * N + offs_n, wsv.to(tl.float32), mask=n_mask)


@triton.jit
def wide_gemm_kernel(codes_ptr, xs_ptr, s_member_xs, w_ptr, wu_ptr, bias_ptr, y_ptr,
                     M, N, K, member_end1, member_end2, HAS_BIAS: tl.constexpr,
                     MEMBERS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                     BK: tl.constexpr, PDL: tl.constexpr = False, N_ALIGN=0):
    """
    Two-level W4A4 GEMM of many tokens on int8 operands: y = (codes . w^T) * unit * xs + bias.

    codes_ptr: int8 [M, K] (GEMM order; member p's at p * M * K), xs_ptr: the tokens' scales
    [M] (member p's at p * s_member_xs), w_ptr: widen_kernel's int8 [N, K], wu_ptr: the
    rows' units [N]. Both operands go through shared memory, so the compiler pipelines their
    loads and the tensor cores' int32 products over K (no unpack or rescale in the loop).
    Grid (M-tiles, N-tiles): the token tiles of one weight tile run side by side and share
    its reads in L2. MEMBERS, N_ALIGN: as gemm_kernel's.
    """
    offs_m = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_n = tl.program_id(1) * BN + tl.arange(0, BN)
    m_mask = offs_m < M
    n_mask = offs_n < N
    after_predecessor(PDL)
    if MEMBERS:
        member = _member(tl.program_id(1), BN, member_end1, member_end2)
        xs_ptr += member * s_member_xs
        codes_ptr += member * M * K
    offs_k = tl.arange(0, BK)
    x_ptrs = codes_ptr + offs_m[:, None] * K + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[:, None] * K + offs_k[None, :]
    p = tl.zeros((BM, BN), dtype=tl.int32)
    for k in range(0, K, BK):
        x = tl.load(x_ptrs + k, mask=m_mask[:, None], other=0)
        w = tl.load(w_ptrs + k, mask=n_mask[:, None], other=0)
        p = tl.dot(x, tl.trans(w), p, out_dtype=tl.int32)
    before_successor(PDL)
    units = tl.load(wu_ptr + offs_n, mask=n_mask, other=1.0).to(tl.float32)
    xsv = tl.load(xs_ptr + offs_m, mask=m_mask, other=0.0).to(tl.float32)
    _write_tile(_unit_scaled(p, units, xsv, False), offs_m, offs_n, m_mask, n_mask, N, y_ptr,
                0, bias_ptr, y_ptr, y_ptr, False, True, False, HAS_BIAS, BM, BN)


@triton.jit
def wide_gated_kernel(codes_ptr, s_member_codes, xs_ptr, s_member_xs, w_ptr, wu_ptr, like_ptr,
                      rot_ptr, rscale_ptr, values_ptr, gmax_ptr, amax_ptr, M, K, HALF,
                      GATE: tl.constexpr, HAS_ROT: tl.constexpr, TC_ROT: tl.constexpr,
                      BM: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr = False):
    """
    Multiply a gated MLP's fused gate/up and end in its down projection's per-token first pass.

    Program (token tile, j) multiplies the codes of gate (member 0) and up (member 1,
    s_member_codes and s_member_xs after member 0's; 0 when they share one transform) by
    widened weight rows j * 64.. of gate and HALF + j * 64.. of up (widen_kernel's int8
    [2 * HALF, K], two-level scales: units at wu_ptr). Their outputs, rounded to the
    activations' dtype (like_ptr's, not read) as the unfused GEMM stores them, give
    act(gate) * up rounded the same way (_gated), that is 64-group j of the down projection's
    input, whose permutation is folded into the gate/up rows: rotated by its block j (rot_ptr,
    rscale_ptr), and stored as amax_kernel stores a first pass (_store_first_pass: values_ptr
    [M, HALF], gmax_ptr [M, HALF / 64], amax_ptr [M], zeros before). gate and up are never
    written.
    """
    offs_m = tl.program_id(0) * BM + tl.arange(0, BM)
    j = tl.program_id(1)
    rows = j * 64 + tl.arange(0, 64)
    m_mask = offs_m < M
    after_predecessor(PDL)
    offs_k = tl.arange(0, BK)
    x_ptrs = codes_ptr + offs_m[:, None] * K + offs_k[None, :]
    w_ptrs = w_ptr + rows[:, None] * K + offs_k[None, :]
    p_gate = tl.zeros((BM, 64), dtype=tl.int32)
    p_up = tl.zeros((BM, 64), dtype=tl.int32)
    for k in range(0, K, BK):
        p_gate = tl.dot(tl.load(x_ptrs + k, mask=m_mask[:, None], other=0),
                        tl.trans(tl.load(w_ptrs + k)), p_gate, out_dtype=tl.int32)
        p_up = tl.dot(tl.load(x_ptrs + s_member_codes + k, mask=m_mask[:, None], other=0),
                      tl.trans(tl.load(w_ptrs + HALF * K + k)), p_up, out_dtype=tl.int32)
    before_successor(PDL)
    dtype = like_ptr.dtype.element_ty
    gate = _unit_scaled(p_gate, tl.load(wu_ptr + rows).to(tl.float32),
                        tl.load(xs_ptr + offs_m, mask=m_mask, other=0.0), False)
    up = _unit_scaled(p_up, tl.load(wu_ptr + HALF + rows).to(tl.float32),
                      tl.load(xs_ptr + s_member_xs + offs_m, mask=m_mask, other=0.0), False)
    x = _gated(gate.to(dtype).to(tl.float32), up.to(dtype).to(tl.float32), GATE).to(dtype)
    # (Its rotation block loads here, not before the loop: held there, it would take registers
    # from the GEMM.)
    _, _, r, rs = _transform_operands(rot_ptr, rscale_ptr, rot_ptr, rscale_ptr, j, False, False,
                                      HAS_ROT)
    xr = _rotated(x.to(tl.float32), r, r, rs, False, HAS_ROT, TC_ROT, dtype == tl.bfloat16)
    _store_first_pass(xr, values_ptr, gmax_ptr, amax_ptr, offs_m, m_mask, j, HALF, HALF // 64)


@triton.jit
def int_gemm_kernel(codes_ptr, wp_ptr, out_ptr, s_out_split, M, N, G, GPS,
                    BM: tl.constexpr, BN: tl.constexpr, SWAP: tl.constexpr,
                    ASM_UNPACK: tl.constexpr):
    """
    Multiply codes [M, G * 64] (GEMM order) and the packed int4 weights.

    Writes split k's partial sum to out_ptr + k * s_out_split ([splits, M, N] int32): what
    gemm_kernel computes before any scale, for checking the integer path on its own.
    """
    offs_m, offs_n, m_mask, n_mask = _tile(M, N, BM, BN)
    K = G * 64
    g0 = tl.program_id(2) * GPS
    acc = _accumulator(BM, BN, SWAP, tl.int32)
    x_ptrs = codes_ptr + offs_m[:, None] * K + tl.arange(0, 64)[None, :]
    w_ptrs = wp_ptr + offs_n[:, None] * (K // 2) + tl.arange(0, 32)[None, :]
    for i in range(0, GPS):
        g = g0 + i
        x = tl.load(x_ptrs + g * 64, mask=m_mask[:, None], other=0)
        acc += _int_dot(x, _weight_group(w_ptrs + g * 32, n_mask, ASM_UNPACK, BN), SWAP)
    _write_tile(acc, offs_m, offs_n, m_mask, n_mask, N, out_ptr, s_out_split, out_ptr, out_ptr,
                out_ptr, SWAP, False, False, False, BM, BN)


@triton.jit
def finish_kernel(part_ptr, s_split, SPLIT, rot_ptr, rscale_ptr, bias_ptr, out_ptr, M, N,
                  HAS_ROT: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr,
                  PDL: tl.constexpr = False):
    """
    Finish a split-K GEMM whose layer rotates its output.

    y = (sum of the SPLIT partials [SPLIT, M, N]) @ blockdiag(R_b)^T + bias, one 64-column
    block b per program. PDL: as quant_kernel's.
    """
    after_predecessor(PDL)
    pid_m = tl.program_id(0)
    b = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_j = tl.arange(0, 64)
    cols = b * 64 + offs_j
    m_mask = offs_m < M
    ptrs = part_ptr + offs_m[:, None] * N + cols[None, :]
    acc = tl.zeros([BM, 64], dtype=tl.float32)
    for s in range(0, SPLIT):
        acc += tl.load(ptrs + s * s_split, mask=m_mask[:, None], other=0.0)
    if HAS_ROT:
        # y_block @ R_b^T, R_b = rot_out[b] stored as int8 [64, 64] row-major with one fp16
        # scale per column of R_b (= per row of R_b^T).
        rt = tl.load(rot_ptr + b * 4096 + offs_j[None, :] * 64 + offs_j[:, None])
        rs = tl.load(rscale_ptr + b * 64 + offs_j).to(tl.float32)
        rt = rt.to(tl.float32) * rs[:, None]
        acc = tl.dot(acc, rt, input_precision='ieee')
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + cols)[None, :]
    before_successor(PDL)
    tl.store(out_ptr + offs_m[:, None] * N + cols[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None])
