"""Every model's weights hash is in results.json's provenance, report.md and report.html, and
``benchmarks/compare_results.py`` names the models two runs do not share."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
import torch

from propgrad.harness import run_benchmark
from propgrad.harness.identity import weights_hash
from propgrad.harness.report import WEIGHTS_TITLE, SuiteTables, format_report
from tests.fakes import DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_results.py"


def _run(out: Path, scale: float = 10.0) -> tuple[dict[str, Any], DarkeningSuite]:
    """The darkening benchmark, with model cut35's weight ``scale`` (cut50 keeps 10)."""
    suite = DarkeningSuite()
    with torch.no_grad():
        suite.models()["cut35"].scale.fill_(scale)
    results = run_benchmark(
        settings(), out, suites={"darkening": suite}, baselines={"image_map": ImageMap()}, plots=False
    )
    return results, suite


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], DarkeningSuite, Path]]:
    outs = {name: tmp_path_factory.mktemp(name) for name in ("first", "same", "other")}
    return {name: (*_run(out, 12.0 if name == "other" else 7.0), out) for name, out in outs.items()}


def test_results_json_provenance_holds_each_models_weights_hash(runs: dict[str, Any]) -> None:
    results, suite, out = runs["first"]
    expected = {"darkening": {name: weights_hash(model) for name, model in suite.models().items()}}
    assert expected["darkening"]["cut50"] != expected["darkening"]["cut35"]  # scale 10 against 7
    assert results["versions"]["model_weights"] == expected
    assert json.loads((out / "results.json").read_text())["versions"]["model_weights"] == expected


def test_both_reports_show_each_models_weights_hash(runs: dict[str, Any]) -> None:
    results, _suite, out = runs["first"]
    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert f"## {WEIGHTS_TITLE}" in markdown and WEIGHTS_TITLE in html
    for model, digest in results["versions"]["model_weights"]["darkening"].items():
        assert f"| darkening | {model} | {digest} |" in markdown
        assert f"<td>darkening</td><td>{model}</td><td>{digest}</td>" in html


def test_the_terminal_report_leaves_the_weights_out_unless_asked() -> None:
    weights = {"s": {"m": "abc123"}}
    assert WEIGHTS_TITLE not in format_report({}, ())
    text = format_report({}, (), tables=SuiteTables(weights=weights))
    assert f"-- {WEIGHTS_TITLE} --" in text and "abc123" in text.splitlines()[-1]


def test_compare_results_names_the_model_two_runs_do_not_share(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    main = runpy.run_path(str(COMPARE))["main"]
    first, same, other = (runs[name][2] / "results.json" for name in ("first", "same", "other"))
    assert main([str(first), str(same)]) == 0
    assert "models: the same weights in both runs" in capsys.readouterr().out
    assert main([str(first), str(other)]) == 1
    out = capsys.readouterr().out
    old, new = (runs[name][0]["versions"]["model_weights"]["darkening"]["cut35"] for name in ("first", "other"))
    assert "different models (1)" in out and f"darkening/cut35: weights {old} -> {new}" in out
    assert "darkening/cut50" not in out
