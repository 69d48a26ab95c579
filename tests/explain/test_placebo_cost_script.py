"""benchmarks/placebo_cost.py runs in a small CPU mode and measures what it says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "placebo_cost.py"


def test_the_cost_script_times_the_three_configurations_of_both_models() -> None:
    spec = importlib.util.spec_from_file_location("placebo_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.measure(size=16, n_images=2, repeats=1, n_permutations=99)
    by = {(r["model"], r["config"]): r for r in rows}
    assert set(by) == {(m, c) for m in ("ignores", "reads") for c in ("paper", "default", "fixed")}
    assert all(r["seconds"] > 0 for r in rows) and by["reads", "paper"]["ratio"] == 1
    assert by["ignores", "paper"]["placebos_drawn"] == [0, 0]
    assert by["ignores", "fixed"]["placebos_drawn"] == [100, 100]
    # a model that never sees the patch: every placebo moves it more, so the sequential test stops early
    assert max(by["ignores", "default"]["placebos_drawn"]) <= 6
