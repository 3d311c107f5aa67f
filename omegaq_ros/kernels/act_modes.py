# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The activation modes the W4A4 kernels implement, by the ids the kernels take (no triton)."""

STATIC_GROUP, DYNAMIC_GROUP, DYNAMIC_TOKEN, DYNAMIC_TWO_LEVEL, DYNAMIC_GROUP128 = 0, 1, 2, 3, 4
# QuantLinear.act_mode -> kernel mode id; other modes have no integer GEMM.
IDS = {'static_group': STATIC_GROUP, 'dynamic_group': DYNAMIC_GROUP,
       'dynamic_token': DYNAMIC_TOKEN, 'dynamic_two_level': DYNAMIC_TWO_LEVEL,
       'dynamic_group128': DYNAMIC_GROUP128}
# The modes whose GEMM takes one scale per token (an absmax pass over the token first).
TOKEN_MODES = (DYNAMIC_TOKEN, DYNAMIC_TWO_LEVEL)
# The gating a quantize kernel may compute from two inputs first (GATE): act(gate) * up.
NO_GATE, GELU_TANH_GATE, SILU_GATE = 0, 1, 2
# The model's gating function (pointwise.py's name) -> kernel gate id.
GATES = {'gelu_gate': GELU_TANH_GATE, 'silu_gate': SILU_GATE}
