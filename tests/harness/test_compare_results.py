"""benchmarks/compare_results.py: records of two benchmark runs compared field by field."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_results.py"


def results(score: float = 0.25, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    prop = {"kind": "property", "key": ["property", "s", "i", "m", 0], "score": 0.5, "curve": [0.1, 0.2]}
    base = {"kind": "baseline", "key": ["baseline", "s", "i", "m", 0, "b"], "method": "b", "score": score}
    return {"records": [prop, {**base, **(extra or {})}, {"kind": "segment", "key": ["segment", 0]}]}


def run(tmp_path: Path, before: dict[str, Any], after: dict[str, Any]) -> int:
    main = runpy.run_path(str(SCRIPT))["main"]
    paths = tmp_path / "before.json", tmp_path / "after.json"
    for path, data in zip(paths, (before, after)):
        path.write_text(json.dumps(data))
    return main([str(p) for p in paths])


def test_identical_records_pass_and_new_fields_are_only_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, results(), results(extra={"checksum": "abc"})) == 0
    out = capsys.readouterr().out
    assert "2 identical, 0 differing" in out and "fields only after (not compared): checksum" in out


def test_a_changed_score_fails_with_its_relative_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, results(score=0.25), results(score=0.2500001)) == 1
    out = capsys.readouterr().out
    assert "1 identical, 1 differing" in out and "baseline/b/score: largest relative difference 4e-07" in out


def test_a_missing_record_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = results()
    after["records"] = after["records"][:1]
    assert run(tmp_path, results(), after) == 1
    assert "1 only before" in capsys.readouterr().out


def test_models_are_compared_by_weights_hash_when_both_runs_record_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def with_weights(**models: str) -> dict[str, Any]:
        return {**results(), "versions": {"model_weights": {"s": dict(models)}}}

    assert run(tmp_path, results(), with_weights(m="aaa")) == 0  # an older run without hashes
    assert "models: not compared (a run has no versions.model_weights)" in capsys.readouterr().out
    assert run(tmp_path, with_weights(m="aaa"), with_weights(m="aaa")) == 0
    assert "models: the same weights in both runs" in capsys.readouterr().out
    assert run(tmp_path, with_weights(m="aaa", n="ccc"), with_weights(m="bbb")) == 1
    out = capsys.readouterr().out
    assert "2 identical, 0 differing" in out and "different models (2)" in out
    assert "s/m: weights aaa -> bbb" in out and "s/n: weights ccc -> absent" in out
