"""The benchmark report opens with its conclusions: the verdicts, the suites' validity checks and a
table of contents, before the accuracy tables; its figures draw nothing they cannot show.

The run is the darkening suite of :mod:`tests.fakes` with a third model that never flips
(:class:`VerdictSuite`: its brightness cut lies below every image), a score-only second
intervention and validity checks of its own (one passes per flipping model, one fails on the model
that never flips). The page is checked in headless Chromium (:mod:`tests.browser`): where the parts
sit, what they say, and the figures' sizes in pixels, which follow from their panels.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import pytest

from propgrad.harness import run_benchmark
from propgrad.harness.cells import CellKey
from propgrad.harness.figures import DPI, PAGE_WIDTH, roc_left_out
from propgrad.harness.pipeline import format_timing, validity_of
from propgrad.harness.report import SuiteTables, format_report, verdict_lead, verdict_legend, verdict_rows
from propgrad.harness.summary import SignificanceCounting, model_scores
from propgrad.harness.timing import format_ratio
from propgrad.stats.practical_size import format_size
from propgrad.suites.validity import Check
from tests.browser import Browser, chromium_path
from tests.fakes import BrightnessModel, DarkeningSuite, ImageMap, darkening_settings

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)

NEVER = "never"
"""The model of :class:`VerdictSuite` that no image flips: its cut lies below every image's brightness."""


class VerdictSuite(DarkeningSuite):
    """The darkening suite with a model that never flips, a score-only intervention and validity checks.

    The check "<model> flips on at least ``least_flips`` images under darken" passes for the two
    cut models and fails for :data:`NEVER`.
    """

    name = "verdicts"
    interventions = ("darken", "darken_again")
    score_only_interventions = ("darken_again",)
    validity_thresholds = {"least_flips": 1.0}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._models[NEVER] = BrightnessModel(0.01).eval()

    def level_accuracy(self) -> dict[str, dict[str, Any]]:
        return {}

    @classmethod
    def _validity_checks(cls, results: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[Check]:
        scores = results["summary"][cls.name]["darken"]["scores"]
        least = thresholds["least_flips"]
        return [
            Check(
                f"{model} flips on at least {least:g} image(s) under darken",
                s["n_flipped_anywhere"] >= least,
                f"{s['n_flipped_anywhere']}/{s['n_images']} anywhere",
            )
            for model, s in scores.items()
        ]

    @classmethod
    def validity_notes(cls, results: Mapping[str, Any]) -> list[str]:
        return ["a note beside the checks"]


def _run(out: Path, baselines: bool = True, **overrides: Any) -> tuple[dict[str, Any], list[str]]:
    lines: list[str] = []
    results = run_benchmark(
        darkening_settings(suites=("verdicts",), baselines=("image_map",) if baselines else (), **overrides),
        out,
        suites={"verdicts": VerdictSuite()},
        baselines={"image_map": ImageMap()} if baselines else {},
        echo=lines.append,
    )
    return results, lines


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str], Path]:
    """A run without placebos: what it printed and its folder."""
    out = tmp_path_factory.mktemp("verdicts")
    return (*_run(out), out)


PAGE = """(() => {
  const top = el => el ? el.getBoundingClientRect().top + window.scrollY : null;
  const tableAfter = id => {  // the heading, its lead paragraph, then the table (in a div that aligns it)
    let el = document.getElementById(id).nextElementSibling;
    while (el && el.tagName !== 'TABLE' && !el.querySelector('table')) el = el.nextElementSibling;
    return el.tagName === 'TABLE' ? el : el.querySelector('table');
  };
  const rows = t => [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent));
  const figure = alt => {
    const img = [...document.images].find(i => i.alt.startsWith(alt));
    return img ? {width: img.naturalWidth, height: img.naturalHeight,
                  caption: img.parentElement.querySelector('figcaption').textContent} : null;
  };
  const links = [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'));
  return {
    toc: top(document.querySelector('nav.toc')),
    summary: top(document.getElementById('summary')),
    validity: top(document.getElementById('validity')),
    testAccuracy: top(document.getElementById('verdicts-accuracy')),
    flipAccuracy: top(document.getElementById('verdicts-darken-anywhere-accuracy')),
    summaryLead: document.getElementById('summary').nextElementSibling.textContent,
    summaryHeaders: [...tableAfter('summary').querySelectorAll('th')].map(th => th.textContent),
    summaryRows: rows(tableAfter('summary')),
    validityRows: rows(tableAfter('validity')),
    links: links,
    missingTargets: links.filter(h => !document.getElementById(h.slice(1))),
    roc: figure('ROC curves per method (flip anywhere) (verdicts / darken)'),
    rocScoreOnly: figure('ROC curves per method (flip anywhere) (verdicts / darken_again)'),
    scoresScoreOnly: figure('Score distributions of flipped vs. not flipped images (verdicts / darken_again)'),
  };
})()"""


def _panels_width(n_panels: int, panel_inches: float) -> int:
    """Pixels of a figure one row of ``n_panels`` panels wide (:func:`propgrad.harness.figures._figure`)."""
    return round(min(n_panels * panel_inches, PAGE_WIDTH) * DPI)


@needs_chromium
def test_the_page_opens_with_verdicts_validity_and_contents_and_draws_no_empty_panel(
    finished: tuple[dict[str, Any], list[str], Path],
) -> None:
    results, _lines, out = finished
    with Browser() as browser:
        browser.open(out / "report.html")
        page = browser.evaluate(PAGE)
    # the contents, the verdicts and the checks come first, on the first screen (1600 px)
    assert page["toc"] < page["summary"] < page["validity"] < page["testAccuracy"] < page["flipAccuracy"]
    assert page["validity"] < 1600
    assert page["missingTargets"] == [] and {"#summary", "#validity", "#suite-verdicts"} <= set(page["links"])
    # the verdict: the size-aware count beside the paper's, labelled for what it tests; plainly "not run"
    assert "The placebo test was not run" in page["summaryLead"]
    assert any(h.startswith("verdict: #significant, placebo") for h in page["summaryHeaders"])
    assert any("permutation" in h and "however small" in h for h in page["summaryHeaders"])
    cut50 = next(row for row in page["summaryRows"] if row[:2] == ["darken", "cut50"])
    scores = results["summary"]["verdicts"]["darken"]["scores"]["cut50"]
    assert cut50[2:] == [
        "not run",
        f"{scores['n_significant']}, {scores['n_significant_adjusted']} / 12",
        f"{scores['n_flipped_anywhere']} / {scores['n_flipped_final']}",
        format_size(scores["largest_change_mean"], True),  # the practical size, in percentage points
    ]
    assert page["summaryHeaders"][-1] == "mean largest change of p(explained class)"
    assert len(page["summaryRows"]) == 6  # 3 models x 2 interventions, the score-only one too
    # the validity checks: PASS for the models that flip, FAIL for the one that never does
    outcome = {row[1].split()[0]: row[2] for row in page["validityRows"]}
    assert outcome == {"cut50": "PASS", "cut35": "PASS", NEVER: "FAIL"}
    # no ROC panel for the model that never flips: two panels, and the caption says why
    assert (
        scores["n_flipped_anywhere"] > 0
        and results["summary"]["verdicts"]["darken"]["scores"][NEVER]["n_flipped_anywhere"] == 0
    )
    assert page["roc"]["width"] == _panels_width(2, 2.4)
    assert f"No panel for {NEVER} (no image flips)" in page["roc"]["caption"]
    # a score-only intervention: no ROC, and score histograms of its two methods only (no image_map boxes)
    assert page["rocScoreOnly"] is None
    assert page["scoresScoreOnly"]["width"] == _panels_width(2, 1.8)


def test_report_md_opens_with_contents_verdicts_and_validity(finished: tuple[dict[str, Any], list[str], Path]) -> None:
    out = finished[2]
    report = (out / "report.md").read_text()
    positions = [
        report.index(heading)
        for heading in (
            "## Contents",
            "## summary: verdicts",
            "## validity checks",
            "### verdicts: test accuracy",
            "### verdicts / darken: flip = the decision changes anywhere",
            "## settings",
        )
    ]
    assert positions == sorted(positions)
    for target in ("summary", "validity", "suite-verdicts", "verdicts-scores", "settings"):
        assert f"](#{target})" in report and f'<a id="{target}"></a>' in report
    assert "The placebo test was not run" in report
    assert f"| verdicts | {NEVER} flips on at least 1 image(s) under darken | FAIL | 0/12 anywhere |" in report
    assert "| verdicts | cut50 flips on at least 1 image(s) under darken | PASS |" in report
    assert "2 of 3 checks passed (FAIL: never flips on at least 1 image(s) under darken)." in report
    assert "```\nverdicts: a note beside the checks\n```" in report  # the suite's lines as they are


def test_results_json_keeps_the_validity_checks(finished: tuple[dict[str, Any], list[str], Path]) -> None:
    results, _lines, out = finished
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["validity"] == results["validity"]
    entry = on_disk["validity"]["verdicts"]
    assert entry["error"] is None and entry["notes"] == ["a note beside the checks"]
    assert [(c["name"].split()[0], c["passed"]) for c in entry["checks"]] == [
        ("cut50", True),
        ("cut35", True),
        (NEVER, False),
    ]
    # the same checks `propgrad validate` runs on the folder
    rerun = [asdict(c) for c in VerdictSuite.validity_checks(on_disk)]  # its summary's keys are sorted
    assert sorted(rerun, key=lambda c: c["name"]) == sorted(entry["checks"], key=lambda c: c["name"])


def test_the_terminal_ends_with_the_verdicts_and_the_checks(finished: tuple[dict[str, Any], list[str], Path]) -> None:
    printed = finished[1][-2]  # the tables, then the line naming the files written
    assert (
        printed.index("-- verdicts / darken: flip")
        < printed.index("-- summary: verdicts")
        < printed.index("-- validity checks")
    )
    assert "FAIL" in printed and "2 of 3 checks passed" in printed
    assert "overhead ratio " in printed and "(wall time of the run / time in those calls" in printed


def test_figures_leave_out_what_they_cannot_show(finished: tuple[dict[str, Any], list[str], Path]) -> None:
    results, _lines, out = finished
    assert "roc_verdicts_darken.png" in results["figures"]
    assert "roc_verdicts_darken_again.png" not in results["figures"]
    assert not (out / "roc_verdicts_darken_again.png").exists()
    assert roc_left_out(results["summary"]["verdicts"]["darken"]["scores"]) == {NEVER: "no image flips"}


def test_a_roc_figure_with_no_model_to_show_is_not_written(tmp_path: Path) -> None:
    from propgrad.harness.figures import plot_roc

    records = {NEVER: [{"image": 0, "score": 0.1, "reference": 0.0, "flipped_anywhere": False}]}
    path = plot_roc(tmp_path / "roc.png", "t", records, {}, (), {NEVER: "no image flips"})  # type: ignore[arg-type]
    assert path is None and not (tmp_path / "roc.png").exists()


def test_a_run_with_placebos_counts_the_size_aware_verdict(tmp_path: Path) -> None:
    results, _lines = _run(tmp_path, baselines=False, n_placebos=100)
    report = (tmp_path / "report.md").read_text()
    assert "The placebo test was not run" not in report
    assert "M = 100 placebos per image" in report
    for model, s in results["summary"]["verdicts"]["darken"]["scores"].items():
        placebo = f"{s['n_placebo_significant']}, {s['n_placebo_significant_adjusted']} / 12"
        permutation = f"{s['n_significant']}, {s['n_significant_adjusted']} / 12"
        assert f"| darken | {model} | {placebo} | {permutation} |" in report


def _scores(**fields: Any) -> dict[str, Any]:
    base = {
        "n_images": 10,
        "n_significant": 9,
        "n_significant_adjusted": 8,
        "n_placebo_significant": None,
        "n_placebo_significant_adjusted": None,
        "n_placebos": 0,
        "n_flipped_anywhere": 1,
        "n_flipped_final": 0,
        "correction": "bh",
        "largest_change_mean": None,
    }
    return {**base, **fields}


def _summary(*rows: dict[str, Any]) -> Any:
    return {"s": {"i": {"flip_prediction": {}, "scores": {f"m{k}": r for k, r in enumerate(rows)}}}}


def test_the_verdict_table_shows_the_largest_change_only_when_the_records_have_it() -> None:
    without = verdict_rows(_summary(_scores()))
    assert without.headers[-1] == "#flipped (anywhere / final)"
    assert without.rows == [["i", "m0", "not run", "9, 8 / 10", "1 / 0"]]
    ran = _scores(n_placebo_significant=3, n_placebo_significant_adjusted=2, n_placebos=100, largest_change_mean=0.008)
    table = verdict_rows(_summary(ran))
    assert table.headers[-1] == "mean largest change of p(explained class)"
    assert table.rows == [["i", "m0", "3, 2 / 10", "9, 8 / 10", "1 / 0", "0.8 points"]]
    lead = verdict_lead(_summary(ran))
    assert "M = 100 placebos per image" in lead and "not run" not in lead
    assert any(line.startswith("largest change:") for line in verdict_legend(_summary(ran)))
    assert not any(line.startswith("largest change:") for line in verdict_legend(_summary(_scores())))
    mixed = verdict_lead(_summary(ran, _scores()))
    assert "Not run: some image of that row has no placebo p-value" in mixed
    assert "keeps none of the placebo test's significant images" not in lead
    lost = _scores(n_placebo_significant=3, n_placebo_significant_adjusted=0, n_placebos=100)
    assert "On 1 row(s) the correction over the images keeps none" in verdict_lead(_summary(lost, ran))


def test_model_scores_average_the_largest_change_when_every_record_has_it() -> None:
    def record(image: int, change: float | None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "score": 0.1,
            "p_value": 0.5,
            "significant": False,
            "flipped_anywhere": False,
            "final_differs": False,
            "original_prediction_correct": True,
            "reference": 0.01,
            "label": 0,
        }
        return rec if change is None else {**rec, "largest_change": change}

    counting = SignificanceCounting(alpha=0.01, n_permutations=100, correction="bh")
    both = model_scores([record(0, 0.01), record(1, 0.03)], [0, 1], counting)  # type: ignore[list-item]
    assert both["largest_change_mean"] == pytest.approx(0.02)
    one = model_scores([record(0, 0.01), record(1, None)], [0, 1], counting)  # type: ignore[list-item]
    assert one["largest_change_mean"] is None


def test_validity_of_records_why_checks_cannot_run_and_leaves_out_suites_without_checks() -> None:
    class Broken(VerdictSuite):
        @classmethod
        def _validity_checks(cls, results: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[Check]:
            raise ValueError("results hold no 'verdicts' / 'darken' block")

    found = validity_of({"broken": Broken(), "plain": DarkeningSuite()}, {"summary": {}})
    assert found == {"broken": {"checks": [], "notes": [], "error": "results hold no 'verdicts' / 'darken' block"}}
    text = format_report({}, (), tables=SuiteTables(validity=found))
    assert "broken: the checks could not be run: results hold no 'verdicts' / 'darken' block" in text


def test_ratios_read_to_three_significant_digits_with_their_meaning() -> None:
    assert [format_ratio(x) for x in (1.1964, 16.94, 99.96, 1689.6364, float("nan"), None)] == [
        "1.20",
        "16.9",
        "100",
        "1690",
        "n/a",
        "n/a",
    ]
    timing = {"run_s": 10.0, "model_and_attribution_s": 8.3584, "overhead_ratio": 1.1964, "sessions": 1}
    line = format_timing(timing, dict(timing))
    assert "overhead ratio 1.20 (wall time of the run / time in those calls; 1 = no overhead)" in line
    assert "1.1964" not in line and not math.isnan(timing["overhead_ratio"])


def test_score_only_cells_have_no_baselines(finished: tuple[dict[str, Any], list[str], Path]) -> None:
    """What the empty-panel check relies on: the score-only intervention has property cells only."""
    records = finished[0]["records"]
    keys = [CellKey.from_json(r["key"]) for r in records]
    assert any(k.intervention == "darken_again" for k in keys)
    assert not any(k.intervention == "darken_again" and k.kind == "baseline" for k in keys)
