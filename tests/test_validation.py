"""Shared input checks."""

from __future__ import annotations

import numpy as np
import pytest

from propgrad.validation import check_int


def test_check_int_accepts_integers_and_names_bad_values():
    assert check_int(np.int64(3), "steps", minimum=2) == 3
    with pytest.raises(ValueError, match="steps must be an integer >= 2, got 1"):
        check_int(1, "steps", minimum=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
        check_int(True, "batch_size")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 2.0"):
        check_int(2.0, "batch_size")
