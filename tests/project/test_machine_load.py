"""benchmarks/machine_load.py reads the hypervisor's steal from /proc/stat and says whether a run was quiet."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "machine_load.py"


def load() -> object:
    spec = importlib.util.spec_from_file_location("machine_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("machine_load", module)
    spec.loader.exec_module(module)
    return module


def _stat(path: Path, steal: int) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice, then a per-CPU line
    path.write_text(f"cpu  100 0 50 900 3 0 1 {steal} 0 0\ncpu0 50 0 25 450 1 0 0 {steal // 2} 0 0\n")


def test_steal_is_the_eighth_value_of_the_cpu_line_in_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load()
    stat = tmp_path / "stat"
    _stat(stat, 1000)
    monkeypatch.setattr(module, "_STAT", str(stat))
    clock = module.StealClock()
    hz = os.sysconf("SC_CLK_TCK")
    _stat(stat, 1000 + 3 * hz)
    assert clock.seconds() == pytest.approx(3.0)
    cores = os.cpu_count() or 1
    line = clock.describe(wall_seconds=3.0 / cores / 0.25)  # a quarter of each core taken
    assert "3.0 CPU s" in line and "25.0% of each core" in line and "NOT quiet" in line
    assert module.StealClock().describe(10.0).endswith("0.0 CPU s (0.0% of each core; quiet)")  # nothing taken since


def test_no_steal_where_the_system_does_not_report_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load()
    monkeypatch.setattr(module, "_STAT", str(tmp_path / "missing"))
    clock = module.StealClock()
    assert clock.seconds() is None
    assert clock.describe(1.0) == "CPU steal: not reported by this system"
