"""benchmarks/startup.py reads -X importtime right and prints figures that agree with each other."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "startup.py"

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       500 |       5000 |   numpy
import time:      2000 |       9000 | torch
import time:        50 |         50 |     scipy._lib
import time:       300 |        350 |   scipy
import time:      1000 |       1350 | propgrad.stats.corrections
import time:       700 |        700 | skimage.io
"""


def load_script():
    spec = importlib.util.spec_from_file_location("startup_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slowest_imports_are_those_no_other_import_made_slowest_first() -> None:
    rows = load_script().slowest_imports(IMPORTTIME, count=2)
    assert rows == [(9000, "torch"), (1350, "propgrad.stats.corrections")]
    assert load_script().slowest_imports(IMPORTTIME)[-1] == (700, "skimage.io")


def test_the_children_cache_bytecode_in_a_private_folder_whatever_the_environment_says(tmp_path: Path) -> None:
    script = load_script()
    environment = {"PATH": "/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    assert script.bytecode_cache_off(environment) and not script.bytecode_cache_off({"PYTHONDONTWRITEBYTECODE": ""})
    cached = script.cached_environment(environment, tmp_path / "pycache")
    assert cached == {"PATH": "/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"  # the caller's mapping is left alone
    code = "import sys, json; print(json.dumps([sys.dont_write_bytecode, sys.pycache_prefix]))"
    proc = subprocess.run([sys.executable, "-c", code], env=cached, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f'[false, "{tmp_path / "pycache"}"]'


@pytest.mark.slow
def test_the_script_prints_each_figure_and_a_ratio_that_is_theirs() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--repeats", "1"], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def seconds(label: str) -> float:
        match = re.search(rf"^{re.escape(label)}:\s+([0-9.]+)", proc.stdout, re.MULTILINE)
        assert match, proc.stdout
        return float(match[1])

    torch_s, forward_s = seconds("import torch"), seconds("the command's forward passes")
    cold_s, ratio = seconds("cold command (wall)"), seconds("cold / (import torch + forward)")
    assert 0 < forward_s < cold_s and 0 < torch_s < cold_s
    assert ratio == pytest.approx(cold_s / (torch_s + forward_s), abs=2e-3)
    calls, images = map(int, re.search(r"\((\d+) calls, (\d+) images\)", proc.stdout).groups())
    assert images >= 32 and calls >= 2  # the 31 steps and the original, then the placebos in rounds
