"""The test's named defaults and choices, without importing torch (the command line's ``--help`` reads them).

:mod:`propgrad.stats.settings` checks settings against them and re-exports them.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PLACEBOS", "DEFAULT_STREAM", "PLACEBO_VARIANTS", "STATISTIC_NAMES", "STREAMS"]

STATISTIC_NAMES = ("gradient", "pearson", "vector_l1", "vector_l2")
"""The built-in statistics (:data:`propgrad.stats.statistic.STATISTICS`, which must equal it): the paper's
expected property gradient of each output, |Pearson r|, and the whole output vector's gradient norms."""

PLACEBO_VARIANTS = ("smooth_direction", "region")
"""The placebo sequences a test may draw (:mod:`propgrad.sources.placebo_sequences` draws them)."""

DEFAULT_PLACEBOS = 100
"""M of the default size-aware test: the fewest placebos whose p-value ``1 / (M + 1)`` can fall below
the default alpha = 0.01 (the rule is strict)."""

STREAMS = (1, 2)
"""The permutation streams (:mod:`propgrad.stats.permutations`): 1, sorted random keys from a
``torch.Generator`` (every result before stream 2); 2, counter-based Fisher-Yates shuffles."""

DEFAULT_STREAM = 2
"""The stream of a test that names none; results record it beside the seed."""
