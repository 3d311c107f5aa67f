# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Property-based fuzzing of the observation checks and of omegaq-predict's .npz reader.

Whatever arrives (wrong dtypes, shapes, NaN, strings, ragged lists, pickled objects, random
bytes), the answer is an ObservationError with a one-line message, or, when the input happens
to be valid, model inputs that satisfy every promise the checks make. Never another exception.
Pi05Policy.predict runs check_observation before any model work, so the model is not run here.
"""

import os
import tempfile

from hypothesis import given, HealthCheck, settings, strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.policy.predict_cli import KEYS, load_observation, one_line
from omegaq_ros.policy.runtime import ObservationError
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'pi05_small', 'checkpoint')
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope='module')
def policy():
    return Pi05Policy.load(CHECKPOINT)


ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(max_len=4),
                    hnp.byte_string_dtypes(max_len=4)),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.binary(max_size=8))
ANYTHING = st.one_of(SCALARS, ARRAYS, st.lists(st.one_of(SCALARS, ARRAYS), max_size=4),
                     st.lists(st.lists(st.floats(), max_size=3), max_size=3))


def valid_parts(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {'images': [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)],
            'state': rng.uniform(-0.5, 0.5, 14).astype(np.float32),
            'instruction': 'lift the cube', 'tokens': None, 'token_mask': None,
            'noise': rng.standard_normal((20, 32)).astype(np.float32), 'present': None}


def assert_model_ready(policy, result):
    """Check that an accepted observation is exactly what the model can take."""
    images, present, tokens, mask, noise = result
    assert len(images) == 3 and all(i.dtype == np.uint8 and i.ndim == 3 for i in images)
    assert len(present) == 3 and all(isinstance(p, bool) for p in present)
    assert tokens.dtype == np.int64 and tokens.ndim == 1 and tokens.size >= 1
    assert mask.dtype == bool and mask.shape == tokens.shape and mask.any()
    assert tokens.min() >= 0 and tokens.max() < policy.config.vocab_size
    assert noise.dtype == np.float32 and noise.shape == (20, 32) and np.isfinite(noise).all()


def check(policy, parts):
    try:
        result = policy.check_observation(**parts)
    except ObservationError as error:
        assert one_line(error), 'an empty message'
        return False
    assert_model_ready(policy, result)
    return True


@FUZZ
@given(data=st.data(), fields=st.sets(st.sampled_from(sorted(valid_parts())), min_size=1))
def test_observation_checks_refuse_or_accept_nothing_else(policy, data, fields):
    parts = valid_parts()
    for field in fields:
        parts[field] = data.draw(ANYTHING, label=field)
    check(policy, parts)


@FUZZ
@given(noise=hnp.arrays(np.float32, (20, 32),
                        elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_non_finite_noise_is_always_refused(policy, noise):
    parts = valid_parts()
    parts['noise'] = noise
    assert check(policy, parts) == bool(np.isfinite(noise).all())


@FUZZ
@given(state=hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64]), 14,
                        elements=st.floats(width=16)),
       tokens=st.booleans())
def test_non_finite_state_is_refused_with_or_without_tokens(policy, state, tokens):
    parts = valid_parts()
    parts['state'] = state
    if tokens:
        parts['tokens'] = np.array([3, 4, 5])
    assert check(policy, parts) == bool(np.isfinite(state).all())


def write_npz(path, arrays):
    try:
        np.savez(path, **arrays)            # object arrays are pickled: the reader must refuse
        return True
    except (ValueError, TypeError):         # what numpy itself cannot write
        return False


@FUZZ
@given(data=st.data(), keys=st.sets(st.sampled_from(KEYS + ('extra', 'state ')), max_size=7))
def test_npz_reader_refuses_or_gives_a_checked_observation(policy, data, keys):
    valid = valid_parts()
    valid['images'] = np.stack(valid['images'])
    arrays = {}
    for key in keys:
        if key in valid and valid[key] is not None and data.draw(st.booleans(), label=key):
            arrays[key] = valid[key]
        else:
            arrays[key] = data.draw(st.one_of(ARRAYS, st.lists(SCALARS, max_size=3)), label=key)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'obs.npz')
        if not write_npz(path, arrays):
            return
        try:
            observation = load_observation(path)
        except ObservationError as error:
            assert one_line(error)
            return
    check(policy, observation)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200),
                         st.binary(max_size=200).map(lambda b: b'PK\x03\x04' + b),
                         st.binary(max_size=200).map(lambda b: b'\x93NUMPY\x01\x00' + b)))
def test_npz_reader_refuses_arbitrary_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'obs.npz')
        with open(path, 'wb') as stream:
            stream.write(content)
        with pytest.raises(ObservationError):
            load_observation(path)
