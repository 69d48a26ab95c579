"""benchmarks/device_check.py runs green in its CPU mode, and a mismatch beyond a tolerance makes it fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device_check.py"
SMALL = ["--device", "cpu", "--permutations", "199", "--repeats", "1", "--size", "32"]
SMALL += ["--placebos", "10", "--slice-images", "2"]
LINE = re.compile(r"^(?P<name>.{34}) .* (?P<status>PASS|FAIL|INFO)$")
SUMMARY = re.compile(r"^summary: (\d+) of (\d+) checks passed, (\d+) failed")
PERMUTATION_CELLS = 4


def run(*args: str) -> tuple[int, dict[str, str], re.Match[str], str]:
    """(exit code, status per check name, the summary line's match, stdout) of one run of the script."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *SMALL, *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    lines = proc.stdout.splitlines()
    statuses = {m["name"].strip(): m["status"] for m in map(LINE.match, lines) if m}
    summaries = [m for m in map(SUMMARY.match, lines) if m]
    assert len(summaries) == 1, proc.stdout + proc.stderr
    return proc.returncode, statuses, summaries[0], proc.stdout + proc.stderr


def test_the_permutation_checks_pass_cpu_against_cpu_and_fail_one_shuffle_off() -> None:
    code, statuses, summary, out = run("--checks", "permutation")
    assert code == 0, out
    checks = {name: s for name, s in statuses.items() if name.startswith("permutation p-values")}
    timings = {name: s for name, s in statuses.items() if name.startswith("permutation time")}
    assert len(checks) == len(timings) == PERMUTATION_CELLS, out
    assert set(checks.values()) == {"PASS"} and set(timings.values()) == {"INFO"}
    assert summary.groups() == ("4", "4", "0")

    code, statuses, summary, out = run("--checks", "permutation", "--inject-mismatch", "permutation")
    assert code == 1, out
    assert {s for name, s in statuses.items() if name.startswith("permutation p-values")} == {"FAIL"}
    assert summary.groups() == ("0", "4", "4")


@pytest.mark.slow
def test_every_check_passes_cpu_against_cpu_and_each_fails_beyond_its_tolerance() -> None:
    code, statuses, summary, out = run()
    assert code == 0, out
    gates = ["attribute on device = cpu", "benchmark slice records equal"]
    gates += [f"permutation p-values N={n} C={c}" for n in (21, 360) for c in (1, 1000)]
    assert {name: statuses.get(name) for name in gates} == dict.fromkeys(gates, "PASS"), out
    assert statuses["attribute time / forward passes"] == statuses["benchmark slice time"] == "INFO"
    assert summary.groups() == (str(len(gates)), str(len(gates)), "0")

    code, statuses, summary, out = run("--checks", "attribute", "benchmark", "--inject-mismatch", "attribute")
    assert code == 1, out
    assert statuses["attribute on device = cpu"] == "FAIL" and statuses["benchmark slice records equal"] == "PASS"
    code, statuses, summary, out = run("--checks", "benchmark", "--inject-mismatch", "benchmark")
    assert code == 1, out
    assert statuses["benchmark slice records equal"] == "FAIL"
    assert summary.groups() == ("0", "1", "1")


def test_an_absent_device_is_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "bogus"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 2
    assert "--device must be one of the available devices" in proc.stderr and "Traceback" not in proc.stderr
