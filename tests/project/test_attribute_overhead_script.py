"""benchmarks/attribute_overhead.py runs in a small CPU mode and times what it says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "attribute_overhead.py"
STEPS = 31


def load() -> object:
    sys.path.insert(0, str(SCRIPT.parent))  # as when run as a script: it imports device_check beside it
    spec = importlib.util.spec_from_file_location("attribute_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_call_is_timed_with_its_own_forward_passes() -> None:
    module = load()
    calls = module.measure([16], n_images=2, repeats=2, k=99)
    assert set(calls) == {(16, "paper"), (16, "default")}
    for runs in calls.values():
        assert len(runs) == 2
        assert all(0 < forward < wall for wall, forward, _ in runs)
    # the paper's test runs the model once on each original and its steps; the default adds placebo sequences
    assert {images for _, _, images in calls[16, "paper"]} == {2 * (1 + STEPS)}
    assert all(images > 2 * (1 + STEPS) for _, _, images in calls[16, "default"])


def test_the_script_prints_each_ratio_beside_its_target() -> None:
    args = ["--sizes", "16", "--images", "2", "--repeats", "1", "--permutations", "99", "--profile"]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("  16 ")]
    assert [row[1] for row in rows] == ["paper", "default"]
    assert all(float(row[5]) > 1 and row[6:8] == ["<=", "1.25"] for row in rows)
    assert "16 px, default: own time outside the model" in proc.stdout
    assert "CPU steal" in proc.stdout  # whether the figures were measured on a quiet machine

    bad = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--repeats must be at least 1, got 0" in bad.stderr
