"""The test's named defaults and choices, without importing torch (the command line's ``--help`` reads them).

:mod:`propgrad.stats.settings` checks settings against them and re-exports them.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PLACEBOS", "PLACEBO_VARIANTS"]

PLACEBO_VARIANTS = ("smooth_direction", "region")
"""The placebo sequences a test may draw (:mod:`propgrad.sources.placebo_sequences` draws them)."""

DEFAULT_PLACEBOS = 100
"""M of the default size-aware test: the fewest placebos whose p-value ``1 / (M + 1)`` can fall below
the default alpha = 0.01 (the rule is strict)."""
