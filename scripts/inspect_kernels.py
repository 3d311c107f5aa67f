# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Compile the W4A4 Triton kernels for a GPU architecture on any machine (no GPU) and report how.

    python scripts/inspect_kernels.py [--arch 90] [--out DIR]

Triton compiles for a named target without a driver (ptxas and cuobjdump ship in its wheel),
so what a kernel becomes on an H100/H200 (sm_90) or a Jetson Orin (sm_87) can be read before
any device time is spent, and a CPU-only CI can check that every kernel path still compiles
there (test_kernels_compile.py). Per GEMM configuration (the autotuner's candidates and the
fixed expert plans), per GEMM path and for the quantize kernel it prints whether the dots
became wgmma (sm_90; mma.sync IMMA/HMMA before), how many warp_group_dot_wait follow them
and with which pendings (0 = the MMA is waited for before anything else runs), how many
async copies the loads were pipelined into, the registers, spilled stack bytes and shared
memory of the cubin, and the instructions of the main loop's SASS (per thread and K-group,
the most frequent opcodes): where MMA and rescale do not overlap, that count times the warps
over the four schedulers is a floor on the clocks per K-group.
With --out the TTGIR, PTX and SASS of each variant are written there.
Integer arguments that are multiples of 16 at run time (pointers, N, G, strides) are declared
so, as Triton's launcher specializes them; without that, loads do not vectorize.
"""

import argparse
import collections
import os
import re
import subprocess

from omegaq_ros.kernels import _triton_kernels as kernels
from omegaq_ros.kernels import act_modes
from omegaq_ros.kernels.triton_w4a4 import GATED_CONFIGS, TUNED_CONFIGS, WIDE_CONFIGS
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

# The type of every runtime kernel parameter, by name (the same name has one type in every
# kernel); a kernel's signature lists its own parameters in order.
PARAMETER_TYPES = {
    'codes_ptr': '*i8', 'xs_ptr': '*fp32', 's_xs_m': 'i32', 's_xs_g': 'i32',
    's_member_xs': 'i32', 'wp_ptr': '*u8', 'ws_ptr': '*fp16', 's_ws_n': 'i32', 'wu_ptr': '*fp16',
    'bias_ptr': '*fp32', 'out_ptr': '*bf16', 's_out_split': 'i32', 'y_ptr': '*bf16',
    'arrivals_ptr': '*i32', 'M': 'i32', 'N': 'i32', 'G': 'i32', 'GPS': 'i32',
    'member_end1': 'i32', 'member_end2': 'i32', 'x_ptr': '*bf16', 'stride_xm': 'i32',
    'perm_ptr': '*i32', 'smooth_ptr': '*fp32', 'rot_ptr': '*i8', 'rscale_ptr': '*fp16',
    's_member_k': 'i32', 'srow_ptr': '*fp16', 's_member_srow': 'i32', 'amax_ptr': '*fp32',
    'values_ptr': '*i16', 'gmax_ptr': '*fp32', 's_member_x': 'i32', 's_member_amax': 'i32',
    'up_ptr': '*bf16', 'w_ptr': '*i8', 'K': 'i32', 's_member_codes': 'i32', 'like_ptr': '*bf16',
    'HALF': 'i32', 'wst_ptr': '*fp32'}
MULTIPLES_OF_16 = {'codes_ptr', 'xs_ptr', 'wp_ptr', 'ws_ptr', 'bias_ptr', 'out_ptr', 'N', 'G',
                   's_out_split', 'x_ptr', 'perm_ptr', 'smooth_ptr', 'rot_ptr', 'rscale_ptr',
                   's_member_k', 'up_ptr', 'w_ptr', 'K', 'HALF', 'values_ptr', 'amax_ptr',
                   # The attention's q, K/V and output, views into fused q/k/v outputs of
                   # head-dim-wide heads (the mask's strides, its key count, are not): without
                   # these the K/V loads neither vectorize nor pipeline into async copies.
                   'q_ptr', 'k1_ptr', 'v1_ptr', 'k2_ptr', 'v2_ptr', 'part_ptr', 'stat_ptr',
                   's_qb', 's_ql', 's_qh', 's_k1b', 's_k1s', 's_k1h', 's_v1b', 's_v1s', 's_v1h',
                   's_k2b', 's_k2s', 's_k2h', 's_v2b', 's_v2s', 's_v2h', 's_ob', 's_ol', 's_oh',
                   'cos_ptr', 'sin_ptr', 's_cl'}


# Where a kernel's parameter differs from PARAMETER_TYPES (the attention kernel's own).
KERNEL_TYPES = {'int_gemm_kernel': {'out_ptr': '*i32'}, 'widen_kernel': {'out_ptr': '*i8'},
                'attention_kernel': dict(
                    dict.fromkeys(('q_ptr', 'k1_ptr', 'v1_ptr', 'k2_ptr', 'v2_ptr', 'mask_ptr',
                                   'cos_ptr', 'sin_ptr'), '*bf16'),
                    **dict.fromkeys(('part_ptr', 'stat_ptr'), '*fp32'),
                    **dict.fromkeys(('s_qb', 's_ql', 's_qh', 's_k1b', 's_k1s', 's_k1h', 'S1',
                                     's_k2b', 's_k2s', 's_k2h', 'S2', 's_mb', 's_ml', 's_mh',
                                     's_v1b', 's_v1s', 's_v1h', 's_v2b', 's_v2s', 's_v2h',
                                     's_ob', 's_ol', 's_oh', 's_cb', 's_cl', 'L', 'KV', 'GROUP',
                                     'BLOCKS_PER_SPLIT'), 'i32'),
                    scale='fp32')}


def signature_of(kernel, constants: dict) -> dict:
    """Return {parameter: type} of kernel's runtime parameters, in order."""
    table = dict(PARAMETER_TYPES, **KERNEL_TYPES.get(kernel.__name__, {}))
    return {name: table[name] for name in kernel.arg_names
            if name not in constants and name != 'N_ALIGN'}


def compile_for(kernel, constants: dict, warps: int, stages: int, arch: int = 90,
                types: dict = None):
    """
    Compile a @triton.jit kernel for sm_<arch> with these constexprs (else their defaults).

    types: parameter types that differ from the kernel's usual ones (FP8_TYPES).
    """
    constants = dict({p.name: p.default for p in kernel.params
                      if p.is_constexpr and p.has_default}, **constants)
    signature = dict(signature_of(kernel, constants), **{
        name: kind for name, kind in (types or {}).items() if name in kernel.arg_names})
    names = list(signature)
    attrs = {(names.index(n),): [['tt.divisibility', 16]] for n in names
             if n in MULTIPLES_OF_16}
    signature.update(dict.fromkeys(constants, 'constexpr'))
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=attrs)
    return triton.compile(source, target=GPUTarget('cuda', arch, 32),
                          options={'num_warps': warps, 'num_stages': stages})


def main_loop(sass: str) -> list:
    """
    Return [(address, opcode)] of the longest backward-branch loop that holds an MMA.

    SASS lines read '/*0ec0*/  @P0 OPCODE.MODIFIERS operands ;'.
    """
    code = []
    for line in sass.splitlines():
        found = re.match(r'\s+/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)(.*)', line)
        if found:
            code.append((int(found.group(1), 16), found.group(2), found.group(3)))
    best = []
    for address, opcode, rest in code:
        target = re.search(r'(0x[0-9a-f]+)', rest) if opcode == 'BRA' else None
        if target and int(target.group(1), 16) < address:
            body = [(a, op) for a, op, _ in code if int(target.group(1), 16) <= a <= address]
            if any('MMA' in op for _, op in body) and len(body) > len(best):
                best = body
    return best


def lowering(compiled) -> dict:
    """Return what the TTGIR and the cubin say about one compiled kernel."""
    ttgir = compiled.asm['ttgir']
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin',
                             'cuobjdump')
    path = '/tmp/omegaq_inspect.cubin'
    with open(path, 'wb') as stream:
        stream.write(compiled.asm['cubin'])
    usage = subprocess.run([cuobjdump, '--dump-resource-usage', path], capture_output=True,
                           text=True).stdout
    found = re.search(r'REG:(\d+) STACK:(\d+)', usage)
    sass = subprocess.run([cuobjdump, '-sass', path], capture_output=True, text=True).stdout
    loop = main_loop(sass)
    return {'wgmma': len(re.findall(r'warp_group_dot ', ttgir)),
            'mma_instructions': len(re.findall(r'\b[A-Z]*MMA\b', sass)),
            'loop_instructions': len(loop),
            'loop_opcode_counts': collections.Counter(op for _, op in loop),
            'loop_opcodes': collections.Counter(op for _, op in loop).most_common(6),
            'sass': sass,
            'waits': re.findall(r'warp_group_dot_wait.*?pendings = (\d+)', ttgir),
            'async_copies': len(re.findall('async_copy_global_to_local', ttgir)),
            'registers': int(found.group(1)) if found else None,
            'spill_bytes': int(found.group(2)) if found else None,
            'shared_bytes': compiled.metadata.shared}


GEMM_PATH = {'WG_RATIO': 2, 'FINAL': True, 'REDUCE': False, 'HAS_BIAS': False,
             'MEMBERS': False, 'ASM_UNPACK': True}
QUANT_PATH = {'MODE': act_modes.DYNAMIC_GROUP, 'HAS_PERM': True, 'HAS_SMOOTH': False,
              'HAS_ROT': True, 'TC_ROT': True, 'BM': 64}


def tuned_variants() -> list:
    """(label, kernel, constexprs, warps, stages) of every autotuner candidate."""
    return [(f'gemm tuned {"swapAB" if swap else "tiled"} {bm}x{bn} w{warps} s{stages}'
             f'{" paired" if pairs else ""}',
             kernels.gemm_kernel, dict(GEMM_PATH, SWAP=swap, BM=bm, BN=bn, PAIRS=pairs), warps,
             stages)
            for swap, bm, bn, warps, stages, pairs in TUNED_CONFIGS]


def wide_variants() -> list:
    """Return the same for the prefix's two-level kernels: wide GEMMs, widen, wide gated."""
    wide = {'HAS_BIAS': False, 'MEMBERS': True}
    return ([(f'wide gemm {bm}x{bn}x{bk} w{warps} s{stages}', kernels.wide_gemm_kernel,
              dict(wide, BM=bm, BN=bn, BK=bk), warps, stages)
             for bm, bn, bk, warps, stages in WIDE_CONFIGS]
            + [('widen 128 rows', kernels.widen_kernel,
                {'WG_RATIO': 2, 'BN': 128, 'ASM_UNPACK': True}, 4, 1)]
            + [(f'wide gated (GeGLU into the down first pass) {bm}x64x{bk} w{warps} s{stages}',
                kernels.wide_gated_kernel,
                {'GATE': act_modes.GELU_TANH_GATE, 'HAS_ROT': True, 'TC_ROT': True, 'BM': bm,
                 'BK': bk}, warps, stages)
               for bm, bk, warps, stages in GATED_CONFIGS])


def path_variants() -> list:
    """
    Return the same for each other kernel path.

    Expert split-K plans, fused members with bias, int32 out, and the quantize kernel in each
    activation mode.
    """
    expert = dict(GEMM_PATH, SWAP=True, BN=64, FINAL=False, REDUCE=True)
    found = [(f'gemm expert swapAB {bm}x64 w4 s4 split-K{" paired" if pairs else ""}',
              kernels.gemm_kernel, dict(expert, BM=bm, PAIRS=pairs), 4, 4)
             for bm in (16, 64) for pairs in (False, True)]
    found += [('gemm fused members, bias', kernels.gemm_kernel,
               dict(expert, BM=64, MEMBERS=True, HAS_BIAS=True), 4, 4),
              ('gemm int32 out', kernels.int_gemm_kernel,
               {'SWAP': True, 'BM': 16, 'BN': 64, 'ASM_UNPACK': True}, 4, 4)]
    # One scale per token: WG_RATIO dots per weight group, one rescale.
    found += [('gemm token scales expert swapAB 16x64 w4 s4 split-K', kernels.gemm_kernel,
               dict(expert, BM=16, TOKEN_SCALES=True), 4, 4),
              ('gemm token scales prefix swapAB 128x64 w4 s3', kernels.gemm_kernel,
               dict(GEMM_PATH, SWAP=True, BM=128, BN=64, TOKEN_SCALES=True), 4, 3)]
    # Two-level weight scales with one scale per token: one int32 sum over K, one rescale.
    found += [(f'gemm scale units {label}', kernels.gemm_kernel,
               dict(path, TOKEN_SCALES=True, SCALE_UNITS=True), warps, stages)
              for label, path, warps, stages in (
                  ('expert swapAB 16x64 w4 s4 split-K', dict(expert, BM=16), 4, 4),
                  ('prefix swapAB 128x64 w4 s3', dict(GEMM_PATH, SWAP=True, BM=128, BN=64), 4,
                   3),
                  ('prefix swapAB 128x128 w8 s3', dict(GEMM_PATH, SWAP=True, BM=128, BN=128),
                   8, 3),
                  ('prefix tiled 128x128 w8 s3', dict(GEMM_PATH, SWAP=False, BM=128, BN=128),
                   8, 3))]
    found += [('quant amax (dynamic_token first pass) rot on tensor cores BM64',
               kernels.amax_kernel, {k: QUANT_PATH[k] for k in QUANT_PATH if k != 'MODE'}, 4, 3)]
    found += [(f'quant mode {name} rot on tensor cores BM{bm}', kernels.quant_kernel,
               dict(QUANT_PATH, MODE=act_modes.IDS[name], BM=bm), 4, 3)
              for name, bm in (('static_group', 64), ('dynamic_group', 16),
                               ('dynamic_group', 32), ('dynamic_group', 64),
                               ('dynamic_token', 32), ('dynamic_two_level', 32),
                               ('dynamic_group128', 16), ('dynamic_group128', 32))]
    # Attention over the prefix cache: the expert's (key splits), the prefix's.
    from omegaq_ros.kernels import _attention_kernel
    found += [(f'attention head dim 256, 16x32 tiles, {label}', _attention_kernel.attention_kernel,
               {'HAS_MASK': True, 'SPLITS': splits, 'D': 256, 'BM': 16, 'BN': 32, 'ROPE': rope},
               8, 2)
              for label, splits, rope in (('5 key splits', 5, False), ('one pass', 1, False),
                                          ('5 key splits, RoPE inside', 5, True))]
    # The prefix's permuted inputs, gathered by a launch of their own.
    found += [('gather permuted input BM4 BK512', kernels.gather_kernel, {'BM': 4, 'BK': 512},
               4, 3)]
    # A gated MLP's down projection: the quantize computes gelu_tanh(gate) * up first.
    found += [('quant dynamic_group GeGLU input BM16', kernels.quant_kernel,
               dict(QUANT_PATH, BM=16, HAS_PERM=False, GATE=act_modes.GELU_TANH_GATE), 4, 3)]
    return found


# The FP8 GEMM's operands (dynamic_group128 on sm_90): e4m3 codes of the input and weights.
FP8_TYPES = {'codes_ptr': '*fp8e4nv', 'out_ptr': '*fp8e4nv'}


def fp8_variants() -> list:
    """Return the same for the kernels that write the FP8 GEMM's operands (sm_90, FP8_TYPES)."""
    return ([(f'quant mode dynamic_group128 e4m3 codes, scale per pair BM{bm}',
              kernels.quant_kernel,
              dict(QUANT_PATH, MODE=act_modes.DYNAMIC_GROUP128, BM=bm, SCALE_PER_PAIR=True), 4, 3)
             for bm in (16, 32)]
            + [('widen to e4m3 32 rows x 8 groups', kernels.widen_fp8_kernel,
                {'BN': 32, 'GROUPS': 8, 'ASM_UNPACK': True}, 4, 1)])


def pdl_variants() -> list:
    """
    Return the same for the paths a step runs, launched as programmatic dependents (sm_90+).

    The expert's GEMM (split-K, fused members, paired rescales), an autotuned prefix tile, the
    quantize, the GeGLU input's quantize and the attention over the prefix cache, each PDL.
    """
    chosen = ('gemm expert swapAB 16x64 w4 s4 split-K paired', 'gemm fused members, bias',
              'quant mode dynamic_group rot on tensor cores BM16',
              'quant dynamic_group GeGLU input BM16',
              'attention head dim 256, 16x32 tiles, 5 key splits, RoPE inside')
    variants = [v for v in path_variants() if v[0] in chosen] + tuned_variants()[-1:]
    return [(f'{label}, PDL', kernel, dict(constants, PDL=True), warps, stages)
            for label, kernel, constants, warps, stages in variants]


def main():
    """Compile every variant and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--arch', type=int, default=90,
                        help='compute capability x10: 90 (H100/H200), 87 (Orin), 80 (A100)')
    parser.add_argument('--out', default=None, help='write TTGIR, PTX and SASS here')
    args = parser.parse_args()
    variants = [(v, None) for v in tuned_variants() + wide_variants() + path_variants()
                + (pdl_variants() if args.arch >= 90 else [])]
    variants += [(v, FP8_TYPES) for v in (fp8_variants() if args.arch >= 90 else [])]
    for (label, kernel, constants, warps, stages), types in variants:
        compiled = compile_for(kernel, constants, warps, stages, args.arch, types)
        info = lowering(compiled)
        print(f"{label}: MMA instructions {info['mma_instructions']}, wgmma {info['wgmma']}, "
              f"waits (pendings) {info['waits']}, async copies "
              f"{info['async_copies']}, registers {info['registers']}, spilled "
              f"{info['spill_bytes']} B, shared {info['shared_bytes']} B, main loop "
              f"{info['loop_instructions']} instructions {info['loop_opcodes']}")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            name = re.sub(r'[^A-Za-z0-9]+', '_', label)
            for kind, text in (('ttgir', compiled.asm['ttgir']), ('ptx', compiled.asm['ptx']),
                               ('sass', info['sass'])):
                with open(os.path.join(args.out, f'{name}.{kind}'), 'w') as stream:
                    stream.write(text)


if __name__ == '__main__':
    main()
