"""propgrad.core.allocator: the thresholds set once per process (their effect: test_allocator_script.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_TRIM_THRESHOLD_", "PROPGRAD_TUNE_ALLOCATOR")}
    return {**env, **extra}


def _run(code: str, *args: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_env(**env))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_the_thresholds_are_set_once_unless_the_environment_says_no() -> None:
    code = "from propgrad.core.allocator import tune_allocator as t; print(t(), t())"
    assert _run(code).split() == ["True", "True"]
    assert _run(code, MALLOC_TRIM_THRESHOLD_="65536").split() == ["True", "True"]  # as Dask's nanny starts a worker
    assert _run(code, PROPGRAD_TUNE_ALLOCATOR="0").split() == ["False", "False"]
