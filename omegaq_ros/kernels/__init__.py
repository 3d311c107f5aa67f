# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Fast QuantLinear backends.

    from omegaq_ros import kernels
    kernels.register()           # adds BACKENDS['triton'] to omegaq_ros.quant.linear
    layer.backend = 'triton'
    kernels.fuse_siblings(model, (('q_proj', 'k_proj', 'v_proj'),))  # one launch per set

Importing needs neither triton nor CUDA; triton is imported when a kernel first runs.
"""

from omegaq_ros.kernels.triton_w4a4 import (fp8_gemm_applies, fuse_siblings, FusedLinears,
                                            gated_mlp, gated_projection, INTEGER_MODES,
                                            LAUNCHES, triton_available, triton_forward,
                                            unfuse)


def register() -> None:
    """Register the Triton W4A4 backend as BACKENDS['triton'] in omegaq_ros.quant.linear."""
    from omegaq_ros.quant import linear
    linear.BACKENDS['triton'] = triton_forward


__all__ = ['fp8_gemm_applies', 'fuse_siblings', 'FusedLinears', 'gated_mlp',
           'gated_projection', 'INTEGER_MODES', 'LAUNCHES', 'register', 'triton_available',
           'triton_forward', 'unfuse']
