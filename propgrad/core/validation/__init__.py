"""Input checks shared by the scorer, the sources, the baselines, the harness and the API.

Each check raises :class:`~propgrad.errors.InvalidParameterError` naming the argument, what was
expected and what was received, so that bad input never fails deep inside torch; a value of the
wrong type raises its subclass :class:`~propgrad.errors.ParameterTypeError` (re-exported here).
Both are a ``ValueError`` and a ``TypeError`` (as scikit-learn's ``InvalidParameterError``), so
callers catching either see them, and the command line prints them as one line.
:mod:`~propgrad.core.validation.parameters` checks scalar parameters (integers, numbers, bools,
choices, seeds); :mod:`~propgrad.core.validation.tensors` checks tensors and devices (images, property
values, sequence sizes).
"""

from propgrad.core.validation.parameters import (
    MAX_STEPS,
    SEED_MAX,
    Bounds,
    ParameterTypeError,
    check_alpha,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_probability,
    check_seed,
    check_steps,
)
from propgrad.core.validation.tensors import (
    available_devices,
    check_device,
    check_images,
    check_sequence_size,
    check_values,
)

MAX_SEQUENCE_BYTES = 4 * 2**30
"""Largest intervened sequence (its images alone) a source builds, in bytes (4 GiB); generating
it briefly needs a few times as much. Raise it (``propgrad.core.validation.MAX_SEQUENCE_BYTES = ...``)
on a machine with more memory."""

__all__ = [
    "MAX_SEQUENCE_BYTES",
    "MAX_STEPS",
    "SEED_MAX",
    "Bounds",
    "ParameterTypeError",
    "available_devices",
    "check_alpha",
    "check_bool",
    "check_choice",
    "check_device",
    "check_images",
    "check_int",
    "check_number",
    "check_probability",
    "check_seed",
    "check_sequence_size",
    "check_steps",
    "check_values",
]
