# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Every W4A4 kernel path compiles for the GPUs the package targets, checked without a GPU.

CI has no GPU and the interpreter runs no PTX, so the GPU-only parts of the kernels (inline
PTX, wgmma lowering, register fit) would otherwise first fail on a robot. Triton compiles for
a named architecture on the CPU (scripts/inspect_kernels.py): sm_90 (H100/H200) and sm_87
(Jetson Orin, no FP8 and no wgmma: the Ampere route must stay open).
"""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(importlib.util.find_spec('triton') is None,
                                reason='triton not installed')


def _inspect():
    spec = importlib.util.spec_from_file_location(
        'inspect_kernels', os.path.join(ROOT, 'scripts', 'inspect_kernels.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('arch', [90, 87])
def test_every_kernel_path_compiles_onto_tensor_cores(arch):
    inspect = _inspect()
    wide = inspect.wide_variants()
    for label, kernel, constants, warps, stages in inspect.path_variants() + wide:
        info = inspect.lowering(inspect.compile_for(kernel, constants, warps, stages, arch))
        if kernel.__name__ not in ('widen_kernel', 'gather_kernel'):
            assert info['mma_instructions'] > 0, f'{label} on sm_{arch}: no tensor-core MMA'
        if arch == 90 and label.startswith('gemm'):
            # Per 64-group one dot; with token scales WG_RATIO of them per weight group, with
            # paired rescales two per loop; with scale units one per 64-group again.
            dots = (1 if constants.get('SCALE_UNITS') else
                    constants['WG_RATIO'] if constants.get('TOKEN_SCALES') else
                    2 if constants.get('PAIRS') else 1)
            assert info['wgmma'] == dots, f'{label}: not one wgmma per K-group'
        # The prefix's wide candidates are tuned for sm_90; elsewhere the autotuner times them
        # all, so one that spills there (128x256 tiles on sm_87) only loses that timing.
        if arch == 90 or (label, kernel, constants, warps, stages) not in wide:
            assert info['spill_bytes'] == 0, f'{label} on sm_{arch}: spills registers'


def test_the_fp8_gemm_operands_compile_for_sm_90():
    """dynamic_group128's e4m3 quantize (rotation on tensor cores) and widen, no spills."""
    inspect = _inspect()
    for label, kernel, constants, warps, stages in inspect.fp8_variants():
        compiled = inspect.compile_for(kernel, constants, warps, stages, 90, inspect.FP8_TYPES)
        info = inspect.lowering(compiled)
        assert info['spill_bytes'] == 0, f'{label}: spills registers'
        if kernel.__name__ == 'quant_kernel':
            assert info['mma_instructions'] > 0, f'{label}: rotation off the tensor cores'
        # Stored as e4m3: the conversion instruction is there, no int8 store of the codes.
        assert 'cvt.rn.satfinite.e4m3x2' in compiled.asm['ptx'], f'{label}: no e4m3 codes'


def test_programmatic_dependent_launches_wait_for_the_kernel_before_on_sm_90():
    inspect = _inspect()
    variants = inspect.pdl_variants()
    assert len(variants) == 6
    for label, kernel, constants, warps, stages in variants:
        compiled = inspect.compile_for(kernel, constants, warps, stages, 90)
        ptx = compiled.asm['ptx']
        wait, launch = ptx.find('griddepcontrol.wait'), ptx.find('griddepcontrol.launch_dep')
        assert 0 <= wait < launch, f'{label}: no wait before letting the next kernel start'
        if label.startswith('gemm'):
            # The weight lines come into L2 before the wait; everything else after it.
            prefetch = ptx.find('prefetch.global.L2')
            assert 0 <= prefetch < wait, f'{label}: no weight prefetch before the wait'
        assert 'cp.async' not in ptx[:wait], label
        if label.startswith('quant'):
            # The input transform's operands (permutation, rotation block and scales) depend
            # on no kernel and load before the wait; without a transform nothing loads there,
            # so the input itself is read after it.
            assert 'ld.global' in ptx[:wait], f'{label}: transform not loaded before the wait'
            bare = inspect.compile_for(kernel, dict(constants, HAS_PERM=False, HAS_SMOOTH=False,
                                                    HAS_ROT=False), warps, stages, 90)
            bare_ptx = bare.asm['ptx']
            assert 'ld.global' not in bare_ptx[:bare_ptx.find('griddepcontrol.wait')], label
        else:
            assert 'ld.global' not in ptx[:wait], label
        info = inspect.lowering(compiled)
        assert info['mma_instructions'] > 0 and info['spill_bytes'] == 0, label
    _, kernel, constants, warps, stages = variants[0]
    plain = inspect.compile_for(kernel, dict(constants, PDL=False), warps, stages, 90)
    assert 'griddepcontrol' not in plain.asm['ptx'] and 'prefetch' not in plain.asm['ptx']


@pytest.mark.parametrize('scale_units', [False, True])
def test_every_autotuner_candidate_fits_the_registers_of_sm_90(scale_units):
    inspect = _inspect()
    for label, kernel, constants, warps, stages in inspect.tuned_variants():
        if scale_units:
            # Two-level weight scales with per-token act scales: no per-group rescale at all.
            constants = dict(constants, TOKEN_SCALES=True, SCALE_UNITS=True)
        info = inspect.lowering(inspect.compile_for(kernel, constants, warps, stages, 90))
        groups_per_loop = 2 if constants['PAIRS'] and not scale_units else 1
        assert info['wgmma'] == groups_per_loop and info['spill_bytes'] == 0, \
            (label, info['spill_bytes'])
        # The loop without the nibble interleave and its byte shuffles: no PRMT-heavy unpack.
        assert info['loop_instructions'] > 0, f'{label}: no main loop found'
        assert info['loop_opcode_counts']['PRMT'] < 40 * groups_per_loop, \
            (label, info['loop_opcodes'])
