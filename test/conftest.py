# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Shared fixtures: the real MiniLM weights are loaded once per session."""

import pytest
import torch


@pytest.fixture(scope='session')
def minilm_bundle():
    """(fp model, tokenizer, calibration batches, held-out batch) on real MiniLM weights."""
    from omegaq_ros.minilm import model as minilm
    torch.manual_seed(0)
    model = minilm.load_minilm()
    tokenizer = minilm.load_tokenizer()
    _, held_out = minilm.sentences()
    return (model, tokenizer, minilm.calibration_batches(tokenizer),
            minilm.encode(tokenizer, held_out))
