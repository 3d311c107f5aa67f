# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The prompt keeps the whole robot state: a long instruction is cut instead, and says so."""

import os

import numpy as np
from omegaq_ros.policy.pi05_processing import fit_prompt, PromptTokenizer, state_prompt
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.policy.runtime import ObservationError
from omegaq_ros.sim.tasks import TASKS
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACT = os.path.join(ROOT, 'models', 'pi05_small_w4a4')
STATE = np.linspace(-0.9, 0.9, 14)


@pytest.fixture(scope='module')
def tokenizer():
    return PromptTokenizer(os.path.join(ARTIFACT, 'tokenizer.model'), 96)


def decoded(tokenizer, prompt):
    return tokenizer.processor.decode([int(t) for t in prompt.tokens[prompt.mask]])


def state_text(tokenizer):
    prompt = state_prompt('x', STATE)
    return prompt[prompt.index('State: '):prompt.index(';')]


@pytest.mark.parametrize('instruction', [
    TASKS['handover'].instruction,                      # the bundled task that lost 3 values
    'pick up the cube and put it down gently ' * 2500,  # 100,000 characters
])
def test_the_whole_state_stays_and_the_instruction_is_cut(tokenizer, instruction):
    prompt = fit_prompt(tokenizer, instruction, STATE)
    assert state_text(tokenizer) in decoded(tokenizer, prompt)
    assert decoded(tokenizer, prompt).endswith('Action:')
    assert prompt.mask.sum() <= 96 and prompt.note.startswith('instruction cut to fit the '
                                                              '96-token prompt')
    kept = int(prompt.note.split('kept ')[1].split(' of')[0])
    assert 0 < kept < len(instruction.strip())
    assert decoded(tokenizer, prompt).startswith('Task: ' + instruction[:kept].strip() + ',')


def test_a_prompt_that_fits_is_unchanged(tokenizer):
    instruction = TASKS['lift'].instruction
    prompt = fit_prompt(tokenizer, instruction, STATE)
    tokens, mask = tokenizer(state_prompt(instruction, STATE))
    assert prompt.note == '' and np.array_equal(prompt.tokens, tokens)
    assert np.array_equal(prompt.mask, mask)


def test_a_state_that_leaves_no_room_is_refused():
    small = PromptTokenizer(os.path.join(ARTIFACT, 'tokenizer.model'), 40)
    with pytest.raises(ValueError, match='the budget is 40'):
        fit_prompt(small, 'lift the red cube', STATE)


def test_the_policy_reports_the_cut_and_predicts_from_the_whole_state():
    policy = Pi05Policy.load(ARTIFACT)
    state = policy.normalizers['observation.state'].unnormalize(STATE.astype(np.float32))
    prompt = policy.prompt(TASKS['handover'].instruction, state)
    assert 'kept 20 of 55 characters' in prompt.note
    with pytest.raises(ObservationError, match='the instruction is empty'):
        policy.prompt('  ', state)
