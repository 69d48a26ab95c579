"""The "predict the flip" benchmark harness (Penzel & Denzler, Tab. 2).

``run_benchmark(settings, out_dir)`` runs or resumes a benchmark; ``preset(quick=...)`` gives the
quick and full settings; :mod:`propgrad.harness.evaluation` holds the evaluation mathematics.
"""

from __future__ import annotations

from propgrad.harness.pipeline import run_benchmark
from propgrad.harness.settings import BenchmarkSettings, preset
from propgrad.harness.store import CellStore, SettingsMismatchError

__all__ = ["BenchmarkSettings", "CellStore", "SettingsMismatchError", "preset", "run_benchmark"]
