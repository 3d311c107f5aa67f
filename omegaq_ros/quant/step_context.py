# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Which denoising step the model is in, set by the sampler and read by QuantLinear.

Per-step activation tables select their row from here. A context variable (not a module
attribute) so concurrent inference in threads cannot see each other's step. Also whether a
calibration pass is running: models then run layers whose outputs never reach an action (so
that calibration reaches every linear they hold), and skip them otherwise.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DenoisingStep:
    """Step `index` of `total` denoising steps."""

    index: int
    total: int


_current: ContextVar[Optional[DenoisingStep]] = ContextVar('omegaq_denoising_step', default=None)


class StepContextError(RuntimeError):
    """A per-step quantized layer ran without a valid denoising-step context."""


@contextmanager
def denoising_step(index: int, total: int):
    """Run the body as denoising step `index` (0-based) of `total`."""
    if not 0 <= index < total:
        raise StepContextError(f'denoising step {index} is outside 0..{total - 1}')
    token = _current.set(DenoisingStep(int(index), int(total)))
    try:
        yield
    finally:
        _current.reset(token)


def current_step() -> Optional[DenoisingStep]:
    """Return the step set by the innermost denoising_step(), or None outside any."""
    return _current.get()


_calibrating: ContextVar[bool] = ContextVar('omegaq_calibrating', default=False)


@contextmanager
def calibration():
    """Run the body as a calibration pass (every linear of the model is to be reached)."""
    token = _calibrating.set(True)
    try:
        yield
    finally:
        _calibrating.reset(token)


def calibrating() -> bool:
    """Return True inside calibration()."""
    return _calibrating.get()
