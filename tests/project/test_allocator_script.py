"""benchmarks/allocator.py runs and prints both settings, their ratio and the two-process figures."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuned thresholds are glibc's")
def test_the_allocator_benchmark_prints_both_settings_and_their_ratio() -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "allocator.py"
    done = subprocess.run(
        [sys.executable, str(script), "--forwards", "2", "--batch", "8", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.strip().startswith("default") and "two give" in line for line in lines)
    assert any(line.strip().startswith("tuned") and "two give" in line for line in lines)
    assert "defaults / tuned, alone:" in done.stdout
