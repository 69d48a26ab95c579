"""Where a benchmark run spends its time: model forward passes, attribution calls, the rest."""

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
        calls = self.seconds.get("forward", 0.0) + self.seconds.get("attribution", 0.0)
        out["total_s"] = round(total, 4)
        out["run_s"] = round(run, 4)
        out["model_and_attribution_s"] = round(calls, 4)
        out["overhead_ratio"] = round(run / calls, 4) if calls > 0 else float("nan")
        return out


class TimedModule(nn.Module):
    """Wraps a model so that the time spent in its forward passes is added to a stopwatch.

    The wrapped model is a submodule, so its device, dtype and train/eval mode show through.

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

    def forward(self, *args: Any) -> Any:
        with self.stopwatch.measure(self.activity):
            return self.module(*args)
