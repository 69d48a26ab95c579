"""Quantus metric columns of the benchmark, on the darkening fake suite whose maps are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from propgrad.explain.quantus import QuantusMetricError
from propgrad.harness import CellStore, run_benchmark
from propgrad.harness.pipeline import STORE_NAME
from propgrad.harness.settings import preset
from tests.fakes import DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("quantus")
    st = settings(quantus_metrics=("Sparseness", "Complexity", "FaithfulnessCorrelation"))
    results = run_benchmark(st, out, suites={"darkening": DarkeningSuite()}, baselines={"image_map": ImageMap()})
    return results, out


def test_columns_per_model_and_baseline_hold_the_arithmetic_scores(finished: tuple[dict, Path]) -> None:
    results, out = finished
    rows = {(r["model"], r["metric"]): r for r in results["quantus"]}
    assert sorted(rows) == sorted(
        (m, q) for m in ("cut50", "cut35") for q in ("Sparseness", "Complexity", "FaithfulnessCorrelation")
    )
    n_pool = len(results["suites"]["darkening"]["pool"])
    for model in ("cut50", "cut35"):
        # the image map of a uniform grey image is uniform: Gini index 0, entropy log(6 * 6)
        assert rows[(model, "Sparseness")]["mean"] == pytest.approx(0.0, abs=1e-9)
        assert rows[(model, "Complexity")]["mean"] == pytest.approx(math.log(36), rel=1e-6)
        assert rows[(model, "Sparseness")]["n"] == n_pool and rows[(model, "Sparseness")]["error"] is None
        # 224 features asked of a 36-pixel image: recorded as failed, the run went on
        failed = rows[(model, "FaithfulnessCorrelation")]
        assert failed["mean"] is None and failed["error"]
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["quantus"] == results["quantus"] and on_disk["settings"]["quantus_metrics"][0] == "Sparseness"
    report = (out / "report.md").read_text()
    assert "| model | Quantus metric | image_map |" in report and "| cut50 | Complexity | 3.58 ± " in report
    assert "cut50 / image_map / FaithfulnessCorrelation:" in report


def test_unused_option_keeps_the_settings_hash_of_earlier_runs(tmp_path: Path) -> None:
    plain, with_metric = settings(), settings(quantus_metrics=("Sparseness",))
    assert "quantus_metrics" not in plain.result_settings()
    assert (
        CellStore(tmp_path / "a" / STORE_NAME, plain.result_settings()).hash
        != CellStore(tmp_path / "b" / STORE_NAME, with_metric.result_settings()).hash
    )
    # the hashed settings without the option are exactly the ones a run before it had
    assert set(plain.result_settings()) == set(plain.to_dict()) - {
        "forward_batch_size",
        "chunk_size",
        "quantus_metrics",
    }


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("Sparsenes",), "unknown Quantus metric 'Sparsenes'.*Sparseness"),
        (("IROF",), "'IROF' is not supported"),
        (("PointingGame",), "needs segmentation masks"),
        (("Sparseness", "Sparseness"), "must not repeat"),
    ],
)
def test_bad_metric_names_are_refused_before_any_work(names: tuple[str, ...], message: str) -> None:
    with pytest.raises(QuantusMetricError, match=message):
        preset(quick=True, suites=("darkening",), baselines=(), quantus_metrics=names)


def test_the_command_refuses_an_unknown_metric_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from propgrad.cli import main

    args = ["benchmark", "--quantus-metrics", "Sparsenes", "--baselines", "none", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown Quantus metric 'Sparsenes'" in err and "Sparseness" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any work
