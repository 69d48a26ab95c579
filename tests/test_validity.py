"""The fur suite's validity checks (propgrad.suites.fur_validity) and their command-line script."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from propgrad.suites.fur_validity import fur_checks
from propgrad.suites.validity import best_baseline

MODELS = ("unbiased", "dark_is_cat", "dark_is_dog")


def entry(acc: float, available: bool = True) -> dict[str, Any]:
    return {"accuracy_mean": acc, "available": available}


def results(
    *, fur=(0.001, 0.03, 0.02), background=(0.00005, 0.001, 0.001), unbiased_flips=(2, 1), prop=0.95, best=0.80
) -> dict[str, Any]:
    def scores(values, flips=(0, 0)):
        return {
            m: {
                "score_mean": v,
                "n_images": 50,
                "n_flipped_anywhere": flips[0] if m == "unbiased" else 20,
                "n_flipped_final": flips[1] if m == "unbiased" else 18,
            }
            for m, v in zip(MODELS, values)
        }

    row = {
        "property_score": entry(prop),
        "output_reference": entry(1.0),
        "occlusion": entry(best),
        "lime": entry(best - 0.1),
        "deeplift": entry(0.99, available=False),
    }
    flips = {d: {m: row for m in MODELS} for d in ("anywhere", "final")}
    return {
        "summary": {
            "fur": {
                "fur": {"scores": scores(fur, unbiased_flips), "flip_prediction": flips},
                "background": {"scores": scores(background), "flip_prediction": flips},
            }
        },
        "settings": {"quick": True, "seed": 0},
    }


def test_every_check_passes_on_a_valid_run() -> None:
    checks = fur_checks(results())
    assert [c.passed for c in checks] == [True] * 5
    assert "dark_is_cat 95.0 vs 80.0 (occlusion), +15.0" in checks[3].detail
    assert checks[0].line().startswith("PASS ")


def test_each_check_fails_on_its_own_shortfall() -> None:
    assert [c.passed for c in fur_checks(results(fur=(0.04, 0.03, 0.02)))][0] is False
    ratio = fur_checks(results(background=(0.00005, 0.001, 0.0021)))
    assert [c.passed for c in ratio] == [True, False, True, True, True]
    assert "dark_is_dog 0.02/0.0021 = 9.5x" in ratio[1].detail and ratio[1].line().startswith("FAIL ")
    assert [c.passed for c in fur_checks(results(unbiased_flips=(6, 0)))] == [True, True, False, True, True]
    assert [c.passed for c in fur_checks(results(best=0.86))][3:] == [False, False]
    assert all(c.passed for c in fur_checks(results(best=0.86), margin=5.0))


def test_best_baseline_ignores_references_and_unavailable_methods() -> None:
    row = {
        "property_score": entry(1.0),
        "output_reference": entry(1.0),
        "lime": entry(0.7),
        "occlusion": entry(0.8),
        "deeplift": entry(0.95, available=False),
    }
    assert best_baseline(row) == ("occlusion", 0.8)
    assert best_baseline({"property_score": entry(1.0)}) is None


def test_missing_suite_or_model_is_named() -> None:
    with pytest.raises(ValueError, match="no 'fur' / 'fur' block"):
        fur_checks({"summary": {"patch": {}}})
    with pytest.raises(ValueError, match="model 'dark_is_cow'"):
        fur_checks(results(), biased=("dark_is_cow",))


def test_script_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fur_validity.py"
    main = runpy.run_path(str(script))["main"]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(results()))
    bad.write_text(json.dumps(results(best=0.9)))
    assert main([str(good)]) == 0
    assert main([str(bad)]) == 1
    assert "FAIL property score" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot check" in capsys.readouterr().err
    assert main([str(good), str(bad), str(good)]) == 1
    summary = capsys.readouterr().out.split("over 3 runs:")[1]
    assert "2/3 passed: property score >= 10 points above the best baseline (final)" in summary
    assert "3/3 passed: biased models' fur score above the unbiased model's" in summary
