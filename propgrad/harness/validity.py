"""Validity checks of benchmark results: the generic pieces, for code that imported them from here.

Each suite's own checks live with the suite (the fur suite's in :mod:`propgrad.suites.fur_validity`);
what they share, the :class:`Check` record and the readers of a run's results, lives in
:mod:`propgrad.suites.validity` so that suites, which sit below the harness, can use it.
"""

from __future__ import annotations

from propgrad.suites.validity import REFERENCE_METHODS, Check, best_baseline, summary_block

__all__ = ["REFERENCE_METHODS", "Check", "best_baseline", "summary_block"]
