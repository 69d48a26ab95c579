"""How much CPU time the hypervisor gave to other machines while a benchmark ran (Linux's ``steal``).

On a shared virtual machine the host can run other guests on this machine's cores; the time it
takes from them is counted as *steal* in ``/proc/stat``. Steal slows the model's forward passes and
the toolkit's own work by different amounts (whichever happened to run while it was taken), so a
ratio measured under steal is not the machine's; the benchmarks print it beside their figures.
"""

from __future__ import annotations

import os

_STAT = "/proc/stat"


def _steal_jiffies() -> int | None:
    """Steal jiffies of all CPUs since boot (the eighth value of the ``cpu`` line), or None where unknown."""
    try:
        with open(_STAT, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return int(fields[8])


class StealClock:
    """CPU seconds taken by the hypervisor (summed over the cores) since the clock was made."""

    def __init__(self) -> None:
        self._start = _steal_jiffies()
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def seconds(self) -> float | None:
        """Stolen CPU seconds so far (None where the system does not report steal)."""
        now = _steal_jiffies()
        if now is None or self._start is None:
            return None
        return (now - self._start) / self._hz

    def describe(self, wall_seconds: float) -> str:
        """A line for the benchmark's output: stolen CPU seconds, and per core as a share of ``wall_seconds``."""
        stolen = self.seconds()
        if stolen is None:
            return "CPU steal: not reported by this system"
        share = stolen / max(wall_seconds, 1e-9) / max(os.cpu_count() or 1, 1)
        verdict = "quiet" if share < 0.01 else "NOT quiet: figures measured under another guest's load"
        return f"CPU steal during the measurement: {stolen:.1f} CPU s ({share:.1%} of each core; {verdict})"
