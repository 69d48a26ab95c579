"""Where a benchmark run spends its time: model forward passes, attribution calls, the rest.

A :class:`Stopwatch` measures one session. A resumed benchmark adds up the sessions that
computed its cells with :func:`combine_summaries`, so the time of finished work is not lost.
:class:`TimingCheckpoints` says when a running session's timing is written down with its cells,
so a session killed without warning (SIGKILL) still counts what it ran up to its last checkpoint.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from torch import nn


class Stopwatch:
    """Accumulates wall-clock seconds per named activity (``forward``, ``attribution`` ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def elapsed(self) -> float:
        """Seconds since the stopwatch was created."""
        return time.perf_counter() - self._start

    def summary(self) -> dict[str, float]:
        """Every activity, ``total_s`` (since creation), ``run_s`` (total minus suite setup) and the
        overhead ratio ``run_s / (forward_s + attribution_s)`` (nan if no calls were timed)."""
        total = self.elapsed()
        out = {f"{k}_s": round(v, 4) for k, v in sorted(self.seconds.items())}
        run = total - self.seconds.get("suite_setup", 0.0)
        out["total_s"] = round(total, 4)
        out["run_s"] = round(run, 4)
        return _with_derived(out)


_DERIVED = ("model_and_attribution_s", "overhead_ratio", "sessions")


def format_ratio(ratio: float | None) -> str:
    """A ratio for reading, to three significant digits: ``1.1964`` -> ``"1.20"``, ``1689.6`` -> ``"1690"``.

    None or NaN (nothing to divide by) is ``"n/a"``. The stored value keeps its precision; only the
    text is rounded.
    """
    if ratio is None or ratio != ratio:
        return "n/a"
    rounded = float(f"{ratio:.3g}")
    return f"{rounded:.0f}" if abs(rounded) >= 100 else f"{rounded:#.3g}"  # "1690", not "1.69e+03"


def _with_derived(out: dict[str, float]) -> dict[str, float]:
    calls = out.get("forward_s", 0.0) + out.get("attribution_s", 0.0)
    out["model_and_attribution_s"] = round(calls, 4)
    out["overhead_ratio"] = round(out["run_s"] / calls, 4) if calls > 0 else float("nan")
    return out


def combine_summaries(summaries: list[dict[str, float]]) -> dict[str, float]:
    """The sum of several :meth:`Stopwatch.summary` results (one per session).

    Every ``*_s`` activity is added up; ``model_and_attribution_s`` and ``overhead_ratio`` are
    recomputed from the sums, and ``sessions`` counts the summaries.

    Raises:
        ValueError: No summaries.
    """
    if not summaries:  # internal: the pipeline always passes at least this session
        raise ValueError("combine_summaries needs at least one timing summary")
    out: dict[str, float] = {}
    for summary in summaries:
        for name, value in summary.items():
            if name not in _DERIVED and name.endswith("_s"):
                out[name] = out.get(name, 0.0) + float(value)
    out = {k: round(v, 4) for k, v in sorted(out.items())}
    out.setdefault("run_s", 0.0)
    out = _with_derived(out)
    out["sessions"] = len(summaries)
    return out


CHECKPOINT_SECONDS = 10.0
"""Seconds between two timing checkpoints of a running session: a killed session loses at most this much."""


class TimingCheckpoints:
    """When to write down a running session's timing: at the first chance, then at most every ``every_s`` seconds.

    The cell store asks :meth:`due` each time it appends cells and writes the summary it gets with
    them, in the same write; the session's final record replaces the checkpoints.

    Args:
        stopwatch: The session's stopwatch.
        every_s: Least seconds between two checkpoints (0: at every append).
    """

    def __init__(self, stopwatch: Stopwatch, every_s: float = CHECKPOINT_SECONDS) -> None:
        self.stopwatch = stopwatch
        self.every_s = float(every_s)
        self._last: float | None = None

    def due(self) -> dict[str, float] | None:
        """The stopwatch's summary if a checkpoint is due now (and counts it as taken), else None."""
        now = time.perf_counter()
        if self._last is not None and now - self._last < self.every_s:
            return None
        self._last = now
        return self.stopwatch.summary()


class TimedModule(nn.Module):
    """Wraps a model so that the time spent in its forward passes is added to a stopwatch.

    The wrapped model is a submodule, so its device, dtype and train/eval mode show through, and the
    wrapper starts in the model's mode (:func:`propgrad.core.forward.evaluation_mode` finds an eval-mode
    model with an eval-mode wrapper already in eval mode and leaves both alone).

    Args:
        module: The model.
        stopwatch: Where the seconds go.
        name: The stopwatch activity (default ``"forward"``).
    """

    def __init__(self, module: nn.Module, stopwatch: Stopwatch, name: str = "forward") -> None:
        super().__init__()
        self.module = module
        self.stopwatch = stopwatch
        self.activity = name
        self.training = module.training  # a wrapper in the model's mode: an eval-mode model is not switched per pass

    def forward(self, *args: Any) -> Any:
        with self.stopwatch.measure(self.activity):
            return self.module(*args)
