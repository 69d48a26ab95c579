"""The "predict the flip" benchmark harness (Penzel & Denzler, Tab. 2).

``run_benchmark(settings, out_dir)`` runs or resumes a benchmark; ``preset(quick=...)`` gives the
quick and full settings; :class:`CellKey` and the record types say what a finished cell holds;
:mod:`propgrad.harness.evaluation` holds the evaluation mathematics.
"""

from __future__ import annotations

from propgrad.harness.cells import BaselineRecord, CellKey, PropertyRecord
from propgrad.harness.pipeline import run_benchmark
from propgrad.harness.settings import BenchmarkSettings, PoolSize, preset
from propgrad.harness.store import CellStore, SettingsMismatchError

__all__ = [
    "BaselineRecord",
    "BenchmarkSettings",
    "CellKey",
    "CellStore",
    "PoolSize",
    "PropertyRecord",
    "SettingsMismatchError",
    "preset",
    "run_benchmark",
]
