"""propgrad.core.allocator: glibc's thresholds set once per process, so a model's activations stop faulting pages in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

FORWARDS = """
import resource, sys, torch
from propgrad.core.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
torch.set_num_threads(1)
from propgrad.suites.convmixer import ConvMixer
model = ConvMixer(dim=48, depth=4, kernel_size=5, patch_size=4, num_classes=2).eval()
x = torch.rand(128, 3, 64, 64)
with torch.no_grad():
    model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


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


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_a_models_forward_passes_stop_faulting_pages_in() -> None:
    # five forward passes of a benchmark-sized ConvMixer: glibc's defaults fault in ~160,000 pages here
    default = int(_run(FORWARDS, "default"))
    tuned = int(_run(FORWARDS, "tuned"))
    assert default > 20_000
    assert tuned < default / 10
