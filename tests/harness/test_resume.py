"""Resuming a benchmark: what changed since the cells were computed decides what is reused.

A tiny fake suite (:class:`tests.fakes.GreySuite`: uniform grey images, brightness classifiers) and
a fake baseline keep each run to a fraction of a second, so every test runs the real pipeline twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.harness import BenchmarkSettings, SettingsMismatchError, run_benchmark
from propgrad.harness.output_folder import OutputInUseError, OutputNotWritableError, locked_output
from propgrad.harness.pipeline import STORE_NAME
from tests.fakes import GreySuite

GREYS = list(GreySuite.greys)
CUTS = GreySuite.cuts


class ScaledMap(AttributionBaseline):
    """The image times a factor; the factor is what a new version of the plugin changes."""

    name = "scaled_map"
    factor = 1.0
    broken = False

    def __init__(self) -> None:
        self.calls = 0

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.broken and (images.mean(dim=(1, 2, 3)) < 0.2).any():
            raise ValueError("superpixels failed on a dark image")
        return images * self.factor


def settings(**overrides: Any) -> BenchmarkSettings:
    base: dict[str, Any] = dict(suites=("grey",), n_permutations=50, baselines=("scaled_map",), n_resamples=2)
    base.update(overrides)
    return BenchmarkSettings(**base)


def run(out: Path, baseline: AttributionBaseline | None = None, suite: GreySuite | None = None, **kw: Any) -> Any:
    return run_benchmark(
        settings(),
        out,
        suites={"grey": suite or GreySuite()},
        baselines={"scaled_map": baseline or ScaledMap()},
        plots=False,
        **kw,
    )


def scores(results: dict[str, Any], kind: str = "baseline") -> dict[str, Any]:
    return {json.dumps(r["key"]): r["score"] for r in results["records"] if r["kind"] == kind}


def fake_registry(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The plugin registry as if ScaledMap were installed by the distribution ``fake-maps`` ``version``."""
    import propgrad.plugins

    listing = [
        {
            "name": "fake_maps",
            "distribution": "fake-maps",
            "version": version,
            "builtin": False,
            "hooks": {"register_baselines": [{"name": "scaled_map", "class": f"{__name__}.ScaledMap"}]},
            "failure": None,
        }
    ]
    monkeypatch.setattr(propgrad.plugins, "describe_plugins", lambda: listing)


def test_an_upgraded_baseline_plugin_recomputes_its_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_registry(monkeypatch, "1.0")
    original = ScaledMap()
    first = run(tmp_path, original)
    fake_registry(monkeypatch, "2.0")
    monkeypatch.setattr(ScaledMap, "factor", 2.0)  # the new version's maps differ
    said: list[str] = []
    baseline, suite = ScaledMap(), GreySuite()
    second = run(tmp_path, baseline, suite, echo=said.append)
    assert baseline.calls == original.calls > 0  # every baseline cell recomputed ...
    assert all(m.images_seen == 0 for m in suite.models().values())  # ... but no property cell
    assert all(second_score == pytest.approx(4 * scores(first)[k]) for k, second_score in scores(second).items())
    message = next(line for line in said if "changed" in line)
    assert "baseline 'scaled_map'" in message and "'1.0' -> '2.0'" in message
    assert second["resume"]["recomputed"] == [message]


def test_the_weights_hash_keeps_cells_of_two_models_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(tmp_path)
    monkeypatch.setattr(GreySuite, "scales", {"cut35": 12.0})  # retrained with other threads: other weights
    said: list[str] = []
    suite = GreySuite()
    second = run(tmp_path, suite=suite, echo=said.append)
    assert suite.models()["cut35"].images_seen > 0 and suite.models()["cut50"].images_seen == 0
    changed = {k for k in scores(first, "property") if scores(first, "property")[k] != scores(second, "property")[k]}
    assert changed and all('"cut35"' in k for k in changed)
    assert any("model 'cut35' of suite 'grey'" in line and "weights hash" in line for line in said)


def test_suite_settings_are_an_identity_not_a_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(tmp_path)
    stored = [json.loads(line) for line in (tmp_path / STORE_NAME).read_text().splitlines()]
    assert not any(r["key"][0] == "suite" for r in stored[1:])
    suite_identity = next(r for r in stored[1:] if r["key"] == ["identity", "suite", "grey"])
    assert suite_identity["identity"]["settings"] == {"greys": GREYS}
    monkeypatch.setattr(GreySuite, "settings", lambda self: {"greys": GREYS[:-1]})
    with pytest.raises(SettingsMismatchError, match="suite 'grey' built with other settings.*greys.*--fresh"):
        run(tmp_path)


def test_a_fixed_baseline_retries_its_recorded_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScaledMap, "broken", True)
    first = run(tmp_path)
    errors = [r for r in first["records"] if r["kind"] == "baseline" and r["error"]]
    assert errors
    monkeypatch.setattr(ScaledMap, "broken", False)
    baseline = ScaledMap()
    second = run(tmp_path, baseline)
    assert all(r["error"] is None for r in second["records"] if r["kind"] == "baseline")
    assert baseline.calls > 0 and second["resume"]["cells_computed"] == len(errors)  # calls attribute whole blocks


def test_resuming_keeps_the_timing_of_the_session_that_computed_the_cells(tmp_path: Path) -> None:
    first = run(tmp_path)
    second = run(tmp_path)
    assert second["resume"]["cells_computed"] == 0
    assert second["timing"]["model_and_attribution_s"] == first["timing"]["model_and_attribution_s"] > 0
    assert second["timing"]["overhead_ratio"] == first["timing"]["overhead_ratio"] is not None
    assert second["timing"]["sessions"] == 1
    assert second["session_timing"]["model_and_attribution_s"] == 0.0
    assert "summed over the 1 session(s)" in (tmp_path / "report.md").read_text()


def test_a_second_run_into_the_same_folder_fails_fast(tmp_path: Path) -> None:
    with locked_output(tmp_path):
        with pytest.raises(OutputInUseError, match=f"another propgrad run is using the output folder {tmp_path}"):
            run(tmp_path)
    holder = subprocess.Popen(  # another process holding the lock
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('locked', flush=True); time.sleep(60)",
            str(tmp_path / ".propgrad-benchmark.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputInUseError, match="another --out"):
            run(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert run(tmp_path)["resume"]["cells_computed"] > 0  # released: the next run works


def _make_read_only(path: Path) -> bool:
    path.chmod(0o555)
    if os.geteuid() != 0:
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0  # root ignores modes


def test_a_read_only_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if not _make_read_only(out):
        pytest.skip("cannot make a folder read-only here")
    try:
        with pytest.raises(OutputNotWritableError, match=f"cannot write to the output folder {out}"):
            run(out)
        with pytest.raises(OutputNotWritableError, match="cannot write"):
            run(out / "sub")
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
        out.chmod(0o755)


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from propgrad.baselines.base import AttributionBaseline
from propgrad.harness import BenchmarkSettings, run_benchmark
from tests.fakes import GreySuite

class KilledMap(AttributionBaseline):
    name = "scaled_map"
    calls = 0

    def attribute(self, model, images, target):
        KilledMap.calls += 1
        if KilledMap.calls == 3:  # after the first cells were stored
            os.kill(os.getpid(), signal.SIGKILL)
        return images

settings = BenchmarkSettings(suites=("grey",), n_permutations=50, baselines=("scaled_map",), n_resamples=2)
run_benchmark(settings, Path(sys.argv[1]), suites={"grey": GreySuite()}, baselines={"scaled_map": KilledMap()},
              plots=False)
"""


def test_a_sigkilled_session_is_counted_in_the_summed_timing(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to write the session's timing at the end: its checkpoints count instead."""
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr
    stored = [json.loads(line) for line in (tmp_path / STORE_NAME).read_text().splitlines()]
    segments = [r for r in stored if r["kind"] == "segment"]
    assert segments and segments[-1]["interrupted"] is True and segments[-1]["cells_computed"] > 0
    resumed = run(tmp_path)
    assert resumed["resume"]["cells_loaded"] > 0 and resumed["resume"]["cells_computed"] > 0
    assert resumed["timing"]["sessions"] == 2  # the killed session and this one
    assert resumed["timing"]["run_s"] > resumed["session_timing"]["run_s"]
