"""The suites' validity checks: the fur suite's (propgrad.suites.fur_validity), the method, `propgrad validate`."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import wilcoxon

from propgrad.suites.fur_validity import EQUAL_SIZE_INTERVENTION, equal_size_lines, fur_checks
from propgrad.suites.validity import Check, best_baseline

MODELS = ("unbiased", "dark_is_cat", "dark_is_dog")


N = 100
"""Test images per (intervention, model) in the default fake run."""


def entry(acc: float, available: bool = True) -> dict[str, Any]:
    return {"accuracy_mean": acc, "available": available}


def records(
    intervention: str, model: str, scores: list[float], flips: tuple[int, int] = (0, 0)
) -> list[dict[str, Any]]:
    """Property records of images 0, 1, ...; the first ``flips[0]`` flip anywhere, the first ``flips[1]`` at the end."""
    return [
        {
            "kind": "property",
            "key": ["property", "fur", intervention, model, i],
            "image": i,
            "score": score,
            "flipped_anywhere": i < flips[0],
            "final_differs": i < flips[1],
        }
        for i, score in enumerate(scores)
    ]


def biased_scores() -> tuple[list[float], list[float]]:
    """Fur scores 0.02 + 0.0001 i over a background of 0.001: every difference positive and distinct."""
    return [0.02 + 0.0001 * i for i in range(N)], [0.001] * N


def results(
    *,
    fur: dict[str, list[float]] | None = None,
    background: dict[str, list[float]] | None = None,
    unbiased_flips: tuple[int, int] = (2, 1),
    background_flips: tuple[int, int] = (0, 2),
    prop: float = 0.95,
    best: float = 0.80,
    extra: str | None = None,
) -> dict[str, Any]:
    """A fake run: per-image records, and summary tables computed from them.

    ``fur`` / ``background`` override the per-image scores of some models; the unbiased model flips
    on ``unbiased_flips`` (anywhere, final) images under fur and ``background_flips`` under
    background, the biased models on 20/18. ``extra`` adds an intervention (a copy of background).
    """
    cat, cat_bg = biased_scores()
    scores = {
        "fur": {"unbiased": [0.001] * N, "dark_is_cat": cat, "dark_is_dog": [v - 0.01 for v in cat]},
        "background": {"unbiased": [0.0005] * N, "dark_is_cat": cat_bg, "dark_is_dog": cat_bg},
    }
    scores["fur"].update(fur or {})
    scores["background"].update(background or {})
    if extra is not None:
        scores[extra] = dict(scores["background"])
    flips = {"fur": unbiased_flips, "background": background_flips, extra: background_flips}
    recs = [
        r
        for i, by_model in scores.items()
        for m, values in by_model.items()
        for r in records(i, m, values, flips[i] if m == "unbiased" else (20, 18))
    ]

    def table(intervention: str) -> dict[str, Any]:
        out = {}
        for m in MODELS:
            mine = [r for r in recs if r["key"][2:4] == [intervention, m]]
            out[m] = {
                "score_mean": sum(r["score"] for r in mine) / len(mine),
                "n_images": len(mine),
                "n_significant": len(mine),
                "n_flipped_anywhere": sum(r["flipped_anywhere"] for r in mine),
                "n_flipped_final": sum(r["final_differs"] for r in mine),
            }
        return out

    row = {
        "property_score": entry(prop),
        "output_reference": entry(1.0),
        "occlusion": entry(best),
        "lime": entry(best - 0.1),
        "deeplift": entry(0.99, available=False),
    }
    flip_tables = {d: {m: row for m in MODELS} for d in ("anywhere", "final")}
    return {
        "records": recs,
        "summary": {"fur": {i: {"scores": table(i), "flip_prediction": flip_tables} for i in scores}},
        "settings": {"quick": True, "seed": 0},
    }


def passed(checks: list[Check]) -> list[bool]:
    return [c.passed for c in checks]


#: Indices of the checks: fur above unbiased, Wilcoxon (cat, dog), <= 10 % fur flips, <= 2 % flips
#: (fur, background), lead (anywhere, final).
ALL_PASS = [True] * 8


def test_every_check_passes_on_a_valid_run() -> None:
    checks = fur_checks(results())
    assert passed(checks) == ALL_PASS
    cat, cat_bg = biased_scores()
    expected = wilcoxon(cat, cat_bg, alternative="greater")
    assert checks[1].name.startswith("dark_is_cat: per-image fur score above background score")
    assert f"W = {N * (N + 1) // 2}, p = {expected.pvalue:.3g}, n = {N} pairs" in checks[1].detail
    median = float(checks[1].detail.rsplit("= ", 1)[1])
    assert median == pytest.approx(0.02 + 0.0001 * 49.5 - 0.001, abs=5.1e-5)  # printed to 3 digits
    assert checks[4].detail == "2/100 = 2.0% anywhere, 1/100 = 1.0% final"
    assert checks[5].detail == "0/100 = 0.0% anywhere, 2/100 = 2.0% final"
    assert "dark_is_cat 95.0 vs 80.0 (occlusion), +15.0" in checks[6].detail
    assert checks[0].line().startswith("PASS ")


def _one_negative(rank: int, n: int = 10) -> tuple[list[float], list[float]]:
    """Differences of magnitude 1/128 ... n/128 over a background of 0.5, the one of ``rank`` negative."""
    return [0.5 + (-k if k == rank else k) / 128 for k in range(1, n + 1)], [0.5] * n


def test_wilcoxon_check_matches_scipy_and_the_exact_null_distribution() -> None:
    # With n = 10 distinct |differences| and one negative, of rank r, W+ = 55 - r and the exact
    # p = #{subsets of 1..10 with rank sum <= r} / 2^10: 10/1024 for r = 5 (sum <= 5: {}, 1, 2, 3,
    # 4, 5, 12, 13, 14, 23), 14/1024 for r = 6 (adding 6, 15, 24, 123).
    for rank, count, ok in ((5, 10, True), (6, 14, False)):
        fur, bg = _one_negative(rank)
        check = fur_checks(results(fur={"dark_is_dog": fur}, background={"dark_is_dog": bg}))[2]
        p = wilcoxon(fur, bg, alternative="greater").pvalue
        assert p == pytest.approx(count / 1024, rel=1e-12)
        assert check.passed is ok
        assert f"W = {55 - rank}, p = {p:.3g}, n = 10 pairs" in check.detail
    assert "median fur - background = 0.0352" in check.detail  # (4 + 5) / 2 / 128 = 0.03515625
    assert fur_checks(results(fur={"dark_is_dog": fur}, background={"dark_is_dog": bg}), wilcoxon_alpha=0.02)[2].passed


def test_wilcoxon_check_fails_when_background_scores_higher() -> None:
    # Every image's background score is 0.001 above its fur score (the fur mean stays high).
    cat = biased_scores()[0]
    above = [v + 0.001 for v in cat]
    checks = fur_checks(results(fur={"dark_is_cat": cat}, background={"dark_is_cat": above}))
    assert passed(checks) == [True, False, *ALL_PASS[2:]]
    assert checks[1].line().startswith("FAIL dark_is_cat: ")
    assert "W = 0, p = 1, n = 100 pairs, median fur - background = -0.001" in checks[1].detail
    assert wilcoxon(cat, above, alternative="greater").pvalue == pytest.approx(1.0)


def test_wilcoxon_check_pairs_by_image_index() -> None:
    # Image i scores 0.01 + i / 1000 under fur and 1 / 2000 less under background: every pair differs
    # by +1/2000; paired in any other order, half the differences would be negative.
    fur = [0.01 + i / 1000 for i in range(N)]
    bg = [v - 1 / 2000 for v in fur]
    run = results(fur={"dark_is_cat": fur}, background={"dark_is_cat": bg})
    expected = fur_checks(run)[1]
    assert expected.passed and expected.detail.endswith("median fur - background = 0.0005")
    cat_bg = [r for r in run["records"] if r["key"][2:4] == ["background", "dark_is_cat"]]
    others = [r for r in run["records"] if r["key"][2:4] != ["background", "dark_is_cat"]]
    run["records"] = others + cat_bg[::-1]  # the background records stored in reverse
    assert fur_checks(run)[1] == expected
    run["records"] = [r for r in run["records"] if r["key"][2:] != ["background", "dark_is_cat", 7]]
    with pytest.raises(ValueError, match="different images"):
        fur_checks(run)


def test_unbiased_flip_fractions_at_and_just_above_two_percent() -> None:
    at = fur_checks(results(unbiased_flips=(2, 2), background_flips=(2, 2)))
    assert passed(at) == ALL_PASS
    above_fur = fur_checks(results(unbiased_flips=(3, 0)))
    assert passed(above_fur) == [True, True, True, True, False, True, True, True]
    assert above_fur[4].detail.startswith("3/100 = 3.0% anywhere")
    assert passed(fur_checks(results(unbiased_flips=(0, 3))))[4] is False
    above_bg = fur_checks(results(background_flips=(0, 3)))
    assert passed(above_bg) == [True, True, True, True, True, False, True, True]
    assert above_bg[5].line().startswith("FAIL unbiased model flips on at most 2% of test images under background")
    # 300 images, as in the default run: 6 (exactly 2 %) passes, 7 does not.
    flat = {"unbiased": [0.001] * 300}
    for flips, ok in (((6, 6), True), ((7, 0), False), ((0, 7), False)):
        run = results(fur=flat, background=flat, unbiased_flips=flips, background_flips=flips)
        assert passed(fur_checks(run))[4:6] == [ok, ok]


def test_other_checks_fail_on_their_own_shortfall() -> None:
    high = {"unbiased": [0.04] * N}
    assert passed(fur_checks(results(fur=high)))[0] is False
    # More than 10 % under fur breaks the benchmark issue's check and the stricter 2 % one.
    assert passed(fur_checks(results(unbiased_flips=(11, 0)))) == [True, True, True, False, False, True, True, True]
    assert passed(fur_checks(results(best=0.86)))[6:] == [False, False]
    assert all(passed(fur_checks(results(best=0.86), margin=5.0)))


def test_equal_size_background_is_informational() -> None:
    assert equal_size_lines(results()) == [
        "INFO equal-size background intervention 'background_equal_size' is not in this run"
    ]
    lines = equal_size_lines(results(extra=EQUAL_SIZE_INTERVENTION))
    assert lines[0].startswith("INFO equal-size background intervention 'background_equal_size' (no pass/fail)")
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows[::3]] == [
        ["fur", "unbiased"],
        ["background", "unbiased"],
        [EQUAL_SIZE_INTERVENTION, "unbiased"],
    ]
    assert rows[-3] == [EQUAL_SIZE_INTERVENTION, "unbiased", "0.0005", "100/100", "0/100", "2/100"]
    # No pass/fail: the checks are the same with or without it.
    assert passed(fur_checks(results(extra=EQUAL_SIZE_INTERVENTION))) == ALL_PASS


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
    run = results()
    run["records"] = [r for r in run["records"] if r["key"][2:4] != ["fur", "dark_is_dog"]]
    with pytest.raises(ValueError, match="no property records for 'fur' / 'fur' / 'dark_is_dog'"):
        fur_checks(run)


def test_script_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fur_validity.py"
    main = runpy.run_path(str(script))["main"]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(results()))
    bad.write_text(json.dumps(results(best=0.9)))
    assert main([str(good)]) == 0
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL property score" in out and "is not in this run" in out
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot check" in capsys.readouterr().err
    assert main([str(good), str(bad), str(good)]) == 1
    summary = capsys.readouterr().out.split("over 3 runs:")[1]
    assert "2/3 passed: property score >= 10 points above the best baseline (final)" in summary
    assert "3/3 passed: biased models' fur score above the unbiased model's" in summary
    assert "3/3 passed: dark_is_cat: per-image fur score above background score" in summary
    assert "ratio" not in summary and "10x" not in summary
    flips = tmp_path / "flips.json"
    flips.write_text(json.dumps(results(background_flips=(3, 0), extra=EQUAL_SIZE_INTERVENTION)))
    assert main([str(good), str(flips)]) == 1
    out = capsys.readouterr().out
    assert "FAIL unbiased model flips on at most 2% of test images under background" in out
    assert "(no pass/fail), score tables:" in out
    assert "1/2 passed: unbiased model flips on at most 2% of test images under background (both definitions)" in out
    assert main([str(flips), "--max-flips", "0.03"]) == 0


def test_the_lead_is_checked_under_every_flip_definition_the_run_holds() -> None:
    run = results()
    blocks = run["summary"]["fur"]["fur"]["flip_prediction"]
    short = {m: dict(row, property_score=entry(0.85)) for m, row in blocks["anywhere"].items()}  # 85 vs 80: +5
    run["summary"]["fur"]["fur"]["flip_prediction"] = {**blocks, "extrapolation": short, "held_out": blocks["final"]}
    checks = fur_checks(run)
    leads = [c for c in checks if c.name.startswith("property score >= 10 points")]
    assert [c.name.rsplit("(", 1)[1] for c in leads] == ["anywhere)", "final)", "extrapolation)", "held_out)"]
    assert [c.passed for c in leads] == [True, True, False, True]
    assert "dark_is_cat 85.0 vs 80.0 (occlusion), +5.0" in leads[2].detail


# ---- the checks as a method of the suite, and `propgrad validate` --------------------------------


def test_the_fur_suites_checks_are_its_method_with_declared_thresholds() -> None:
    from propgrad.errors import InvalidParameterError
    from propgrad.suites.fur import FurSuite

    run = results(best=0.86)  # the property score leads by 9 points: short of 10, enough for 5
    assert FurSuite.validity_checks(run) == fur_checks(run)
    assert passed(FurSuite.validity_checks(run))[6:] == [False, False]
    assert all(passed(FurSuite.validity_checks(run, {"margin": 5})))
    assert FurSuite.validity_notes(run) == equal_size_lines(run)
    assert set(FurSuite.validity_thresholds) == {"wilcoxon_alpha", "rare_flips", "unbiased_flips", "margin"}
    with pytest.raises(InvalidParameterError, match=r"no validity threshold 'alpha'; its thresholds: wilcoxon_alpha"):
        FurSuite.validity_checks(run, {"alpha": 0.05})
    with pytest.raises(InvalidParameterError, match="threshold margin"):
        FurSuite.validity_checks(run, {"margin": "ten"})


def test_a_suite_that_states_no_checks_has_none_and_takes_no_thresholds() -> None:
    from propgrad.errors import InvalidParameterError
    from propgrad.suites.patch import PatchSuite

    assert PatchSuite.validity_checks(results()) == [] and PatchSuite.validity_notes(results()) == []
    with pytest.raises(InvalidParameterError, match="it states no validity checks"):
        PatchSuite.validity_checks(results(), {"margin": 5})


def validate(*args: str) -> int:
    from propgrad.cli import main

    return main(["validate", *args])


def test_validate_prints_every_check_of_a_run_folder_and_exits_1_on_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder, run in ((good, results()), (bad, results(best=0.86))):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(run))
    assert validate(str(good)) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert lines == [c.line() for c in fur_checks(results())] and len(lines) == 8
    assert "is not in this run" in out  # the fur suite's informational line
    assert validate(str(bad)) == 1
    assert "FAIL property score >= 10 points above the best baseline (anywhere)" in capsys.readouterr().out
    assert validate(str(bad), "--suite", "fur", "--threshold", "margin=5") == 0
    assert validate(str(good), str(bad / "results.json"), str(good)) == 1
    assert "2/3 passed: property score >= 10 points above the best baseline (final)" in capsys.readouterr().out


def test_validate_names_a_suite_without_checks_and_prefixes_the_checks_of_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = results()
    run["settings"]["suites"] = ["fur", "patch"]
    run["summary"]["patch"] = {}
    (tmp_path / "results.json").write_text(json.dumps(run))
    assert validate(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "INFO suite 'patch' states no validity checks" in out
    assert "PASS biased models' fur score above the unbiased model's" in out  # one suite with checks: no prefix


def test_validate_refuses_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results()))
    assert validate(str(tmp_path), "--threshold", "margin=5") == 2
    assert "--threshold needs --suite NAME" in capsys.readouterr().err
    assert validate(str(tmp_path), "--suite", "fur", "--threshold", "alpha=0.1") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no validity threshold 'alpha'; its thresholds: wilcoxon_alpha" in errors[0]
    assert validate(str(tmp_path), "--suite", "fur", "--threshold", "margin") == 2
    assert "--threshold must be NAME=VALUE, got 'margin'" in capsys.readouterr().err
    assert validate(str(tmp_path / "missing")) == 2
    assert "cannot check" in capsys.readouterr().err
    assert validate(str(tmp_path), "--suite", "orientation") == 2  # the run holds no orientation block
    assert "no 'orientation' / 'tilt' block" in capsys.readouterr().err
