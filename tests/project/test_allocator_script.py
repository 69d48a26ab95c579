"""benchmarks/allocator.py runs and prints both settings, their ratio and the two-process figures; its own
measurement shows a model's forward passes stop faulting pages in once the thresholds are set."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "allocator.py"
GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the tuned thresholds are glibc's")
def test_the_allocator_benchmark_prints_both_settings_and_their_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--forwards", "2", "--batch", "8", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.strip().startswith("default") and "two give" in line for line in lines)
    assert any(line.strip().startswith("tuned") and "two give" in line for line in lines)
    assert "defaults / tuned, alone:" in done.stdout


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_a_models_forward_passes_stop_faulting_pages_in() -> None:
    spec = importlib.util.spec_from_file_location("allocator_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    # twenty forward passes of a benchmark-sized ConvMixer: glibc's defaults fault in ~600,000 pages here. The
    # tuned process faults in a block of about 18,000 pages now and then in some heap layouts (0, 1,536 or
    # 18,400 pages over five passes, 0 to 38,000 over twenty, 2026-12-07), so the passes are many enough that
    # the steady state, not one such block, decides
    (default,) = benchmark.run("default", 20, 128)
    (tuned,) = benchmark.run("tuned", 20, 128)
    assert default["faults"] > 20_000
    assert tuned["faults"] < default["faults"] / 10
