"""Mixed precision: one accelerate state per precision, and the model's own forward for float32 evaluation."""

from __future__ import annotations

import contextlib

from accelerate import Accelerator
from accelerate.state import AcceleratorState


def make_accelerator(cpu: bool, precision: str) -> Accelerator:
    """An `Accelerator` with `precision`. accelerate keeps one state per process and refuses another precision
    later; a run after one with another precision in the same process (a recipe's stages) resets that part of it,
    keeping the process group."""
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != precision:
        AcceleratorState._reset_state()
    return Accelerator(cpu=cpu, mixed_precision=precision)


@contextlib.contextmanager
def without_autocast(model):
    """The model's own forward for a while: `prepare` wraps it in the run's autocast, but dev CER decodes in the
    model's dtype, as `dwz evaluate` will (accelerate keeps the original as `_original_forward`)."""
    wrapped, original = model.__dict__.get("forward"), model.__dict__.get("_original_forward")
    if original is None:
        yield
        return
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped
