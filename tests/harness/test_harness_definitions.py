"""The benchmark's extrapolation and held-out flip definitions, its placebo test and its corrections.

The fake suite's images are uniform grey levels and its models classify them by mean brightness
against a cut (:class:`tests.fakes.DarkeningSuite`). Here the intervention darkens and brightens again
(a V: the darkest step is the half-way step h), so an image can flip in the first half and be
back by the second: the extrapolation label differs from the paper's "anywhere" by arithmetic.
The held-out realisation darkens monotonically to another factor, so its label is arithmetic too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import false_discovery_control

from propgrad.core.forward import RunSettings
from propgrad.explain.scoring import PREDICTED, score_sequences, sequence_statistic
from propgrad.harness import run_benchmark
from propgrad.harness.cells import CellKey, cell_seed, property_key, property_record
from propgrad.harness.definitions import FLIP_DEFINITIONS, half_index
from propgrad.harness.evaluation import best_threshold_accuracy
from propgrad.harness.report import correction_notes, render_table
from propgrad.sources.base import InterventionSequence
from propgrad.sources.placebo_sequences import placebo_sequences
from propgrad.stats.corrections import correction_feasibility, resamples_needed
from propgrad.stats.placebo_test import placebo_test
from propgrad.stats.settings import TestSettings
from tests.fakes import BRIGHTNESS, CUTS, DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings

N = 9
H = 4  # half_index(9)
DEEPEST = [0.3, 0.5, 0.6, 0.5, 0.7, 0.8, 0.5, 0.6, 0.9, 0.7, 0.9, 0.4]
"""The factor at the half-way step of the V-shaped intervention, per image."""
HELD_OUT_FINAL = [0.9, 0.5, 0.6, 0.4, 0.9, 0.5, 0.5, 0.6, 0.7, 0.7, 0.9, 0.4]
"""The final factor of the held-out realisation (a monotone darkening), per image."""


def v_factors(index: int) -> torch.Tensor:
    """1 at both ends, ``DEEPEST[index]`` at step H, linear in between."""
    k = torch.arange(N, dtype=torch.float32)
    return 1 - (1 - DEEPEST[index]) * (1 - (k - H).abs() / H)


class VSuite(DarkeningSuite):
    """Darken to the half-way step, brighten back; a held-out realisation darkens monotonically."""

    interventions = ("v", "v_score_only")
    score_only_interventions = ("v_score_only",)

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        self.intervene_calls += 1
        images = self.test_set()[0][index][None] * v_factors(index)[:, None, None, None]
        return InterventionSequence(images, torch.arange(N, dtype=torch.float32), "darkness", "step")

    def held_out_realisation(self, intervention: str, index: int) -> InterventionSequence | None:
        if intervention != "v":
            return None
        factors = torch.linspace(1.0, HELD_OUT_FINAL[index], N)
        images = self.test_set()[0][index][None] * factors[:, None, None, None]
        return InterventionSequence(images, torch.arange(N, dtype=torch.float32), "darkness", "step")


def dark_along(index: int, factors: torch.Tensor, cut: float) -> list[bool]:
    """The models' decisions (dark?) on image ``index`` scaled by each factor, computed as they
    compute them (in float32, ties to "bright"), so products on the cut are decided alike."""
    images = DarkeningSuite().test_set()[0][index][None] * factors[:, None, None, None]
    z = 10.0 * (images.mean(dim=(1, 2, 3)) - cut)
    return [bool(v) for v in z < 0]


class RealisedVSuite(VSuite):
    """VSuite whose realisation r >= 1 reaches ``DEEPEST[i] ** (1 + r)`` at the half-way step."""

    def realisation(self, intervention: str, index: int, number: int) -> InterventionSequence | None:
        if number == 0:
            return self.intervene(intervention, index)
        k = torch.arange(N, dtype=torch.float32)
        factors = 1 - (1 - DEEPEST[index] ** (1 + number)) * (1 - (k - H).abs() / H)
        images = self.test_set()[0][index][None] * factors[:, None, None, None]
        return InterventionSequence(images, torch.arange(N, dtype=torch.float32), "darkness", "step")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("v")
    st = settings(n_placebos=20, alpha=0.1, correction="bh")
    return run_benchmark(st, out, suites={"darkening": VSuite()}, baselines={"image_map": ImageMap()})


def properties(results: dict[str, Any], intervention: str = "v") -> list[dict[str, Any]]:
    return [
        r
        for r in results["records"]
        if r["kind"] == "property" and CellKey.from_json(r["key"]).intervention == intervention
    ]


def cut_of(record: dict[str, Any]) -> float:
    return CUTS[CellKey.from_json(record["key"]).model]


def test_half_index_splits_the_path_in_two() -> None:
    assert half_index(21) == 10 and half_index(9) == H and half_index(4) == 1 and half_index(3) == 1
    assert half_index(2) is None


def test_extrapolation_label_is_a_flip_in_the_second_half_only(finished: dict[str, Any]) -> None:
    props = properties(finished)
    differ = 0
    for r in props:
        dark = dark_along(r["image"], v_factors(r["image"]), cut_of(r))
        assert r["flipped_anywhere"] == any(d != dark[0] for d in dark)
        assert r["flipped_second_half"] == any(d != dark[0] for d in dark[H + 1 :]), r["key"]
        differ += r["flipped_anywhere"] != r["flipped_second_half"]
    assert differ > 0  # the suite separates the two definitions


def test_extrapolation_scores_read_the_first_half_only(finished: dict[str, Any]) -> None:
    for r in properties(finished):
        first = np.array(r["curve"][: H + 1])
        assert r["half_score"] == pytest.approx(float(np.abs(np.gradient(first)).mean()), rel=1e-9)
        assert r["half_reference"] == pytest.approx(abs(first[-1] - first[0]), rel=1e-9)
    for r in (r for r in finished["records"] if r["kind"] == "baseline"):
        b, f = BRIGHTNESS[r["image"]], DEEPEST[r["image"]]
        assert r["half_score"] == pytest.approx((b - b * f) ** 2, rel=1e-5)  # the map is the image
        assert r["score"] == pytest.approx(0.0, abs=1e-12)  # the V ends where it started


def test_held_out_label_comes_from_the_other_realisation(finished: dict[str, Any]) -> None:
    props = properties(finished)
    for r in props:
        dark = dark_along(r["image"], torch.linspace(1.0, HELD_OUT_FINAL[r["image"]], N), cut_of(r))
        assert r["heldout_flipped"] == any(d != dark[0] for d in dark), r["key"]
    assert any(r["heldout_flipped"] != r["flipped_anywhere"] for r in props)


EXPECTED_FIELDS = {
    "anywhere": ("flipped_anywhere", "score", "reference", "score"),
    "final": ("final_differs", "score", "reference", "score"),
    "extrapolation": ("flipped_second_half", "half_score", "half_reference", "half_score"),
    "held_out": ("heldout_flipped", "score", "reference", "score"),
}
"""Label, property score, output reference and baseline score of every definition, as the issue states them."""


@pytest.mark.parametrize("definition", list(EXPECTED_FIELDS))
def test_every_definition_judges_its_own_scores_against_its_own_labels(
    finished: dict[str, Any], definition: str
) -> None:
    assert list(FLIP_DEFINITIONS) == list(EXPECTED_FIELDS)
    label, property_score, reference, baseline_score = EXPECTED_FIELDS[definition]
    table = finished["summary"]["darkening"]["v"]["flip_prediction"][definition]
    baselines = {
        (CellKey.from_json(r["key"]).model, r["image"]): r for r in finished["records"] if r["kind"] == "baseline"
    }
    for model in CUTS:
        recs = sorted(
            (r for r in properties(finished) if CellKey.from_json(r["key"]).model == model), key=lambda r: r["image"]
        )
        labels = [r[label] for r in recs]
        columns = {
            "property_score": [r[property_score] for r in recs],
            "output_reference": [r[reference] for r in recs],
            "image_map": [baselines[(model, r["image"])][baseline_score] for r in recs],
        }
        for method, scores in columns.items():
            entry = table[model][method]
            assert entry["n_flipped"] == sum(labels)
            assert entry["accuracy_all"] == best_threshold_accuracy(scores, labels)[0], (definition, model, method)


def test_score_only_intervention_has_property_cells_but_no_baselines_or_flip_tables(finished: dict[str, Any]) -> None:
    assert len(properties(finished, "v_score_only")) == len(BRIGHTNESS) * len(CUTS)
    keys = [CellKey.from_json(r["key"]) for r in finished["records"] if r["kind"] == "baseline"]
    assert keys and all(k.intervention == "v" for k in keys)
    block = finished["summary"]["darkening"]["v_score_only"]
    assert block["flip_prediction"] == {} and set(block["scores"]) == set(CUTS)
    # a suite without a held-out realisation for an intervention has no held-out labels there
    assert all(r["heldout_flipped"] is None for r in properties(finished, "v_score_only"))


def test_placebo_p_values_are_besag_clifford_over_the_placebos_in_draw_order(finished: dict[str, Any]) -> None:
    # reference: every placebo run on its own, then the sequential rule by hand: stop at the h-th
    # placebo scoring at least the observed (p = h / L), else (b + 1) / (M + 1) over all M
    suite, m, alpha = VSuite(), 20, 0.1
    h = max(1, int(np.ceil(alpha * m)))
    models = suite.models()
    stopped_early = 0
    for r in properties(finished):
        key = CellKey.from_json(r["key"])
        sequence = suite.intervene("v", r["image"])
        seed = cell_seed(0, "darkening", "v", "placebos", r["image"])
        model = models[key.model]
        stats = []
        for placebo in placebo_sequences(sequence, m, seed=seed):
            with torch.no_grad():
                curve = torch.softmax(model(placebo.images), dim=1)[:, r["explained"]].double()
            stats.append(float(sequence_statistic(curve)))
        reached, expected, used = 0, None, m
        for count, statistic in enumerate(stats, start=1):
            reached += statistic >= r["score"] * (1 - 1e-9)
            if reached == h:
                expected, used = h / count, count
                break
        if expected is None:
            expected = (reached + 1) / (m + 1)
        stopped_early += used < m
        assert r["n_placebos"] == m and r["placebo_n_used"] == used
        assert r["placebo_p_value"] == pytest.approx(expected)
        assert r["placebo_significant"] == (r["placebo_p_value"] < alpha)
    assert stopped_early > 0  # the suite has cells the sequential test settles early


def test_a_placebo_p_value_equal_to_alpha_is_not_significant() -> None:
    suite = DarkeningSuite()
    model = suite.models()["cut50"]
    image = suite.test_set()[0][0]
    sequence = suite.intervene("darken", 0)
    (scored,) = score_sequences(model, image[None], [sequence], [PREDICTED], RunSettings(), TestSettings())
    key = property_key("darkening", "darken", "cut50", 0)
    observed = scored.test.statistic
    at = property_record(key, scored, 0, placebo=placebo_test(observed, observed.new_zeros(19) - 1, alpha=0.05))
    below = property_record(key, scored, 0, placebo=placebo_test(observed, observed.new_zeros(39) - 1, alpha=0.05))
    assert at["placebo_p_value"] == pytest.approx(1 / 20) and below["placebo_p_value"] == pytest.approx(1 / 40)
    assert at["placebo_significant"] is False and below["placebo_significant"] is True


def test_significance_counts_are_corrected_over_the_images(finished: dict[str, Any]) -> None:
    scores = finished["summary"]["darkening"]["v"]["scores"]
    for model in CUTS:
        recs = sorted(
            (r for r in properties(finished) if CellKey.from_json(r["key"]).model == model), key=lambda r: r["image"]
        )
        s = scores[model]
        assert s["p_adjusted"]["images"] == [r["image"] for r in recs]
        for test, field, count in (
            ("permutation", "p_value", "n_significant"),
            ("placebo", "placebo_p_value", "n_placebo_significant"),
        ):
            raw = np.array([r[field] for r in recs])
            expected = false_discovery_control(raw, method="bh")
            np.testing.assert_allclose(s["p_adjusted"][test], expected, rtol=1e-12)
            assert s[f"{count}_adjusted"] == int((expected < 0.1).sum())
            assert s[count] == int((raw < 0.1).sum())
        assert s["correction"] == "bh" and s["n_placebos"] == 20


def test_a_run_without_placebos_reports_them_as_not_run(tmp_path: Path) -> None:
    results = run_benchmark(
        settings(baselines=(), correction=None), tmp_path, suites={"darkening": VSuite()}, baselines={}, plots=False
    )
    for r in properties(results):
        assert r["n_placebos"] == 0 and r["placebo_p_value"] is None and r["placebo_significant"] is None
    s = results["summary"]["darkening"]["v"]["scores"]["cut50"]
    assert s["n_placebo_significant"] is None and s["p_adjusted"]["placebo"] is None
    assert s["n_significant_adjusted"] == s["n_significant"]  # no correction
    assert "not run" in (tmp_path / "report.md").read_text()


def test_infeasible_corrections_are_named_in_the_report(tmp_path: Path) -> None:
    # Holm over 12 images at alpha 0.01 needs 12 / (K + 1) < 0.01: K = 200 cannot reach it
    run_benchmark(
        settings(baselines=(), correction="holm"), tmp_path, suites={"darkening": VSuite()}, baselines={}, plots=False
    )
    report = (tmp_path / "report.md").read_text()
    assert "cannot make a permutation test significant at K = 200" in report and "K >= 1200 is needed" in report


def test_markdown_cells_keep_their_pipes_escaped() -> None:
    table = render_table(["mean E|∇X| ± std", "b"], [["0.5", "x|y"]], markdown=True)
    for line in table.splitlines():
        unescaped = line.replace("\\|", "")
        assert unescaped.count("|") == 3, line


def test_r_realisations_are_scored_on_the_explained_class_and_averaged(tmp_path: Path) -> None:
    suite = RealisedVSuite()
    results = run_benchmark(
        settings(realisations=3),
        tmp_path,
        suites={"darkening": suite},
        baselines={"image_map": ImageMap()},
        plots=False,
    )
    models = suite.models()
    by_key = {}
    for r in properties(results):
        key = CellKey.from_json(r["key"])
        assert len(r["realisation_scores"]) == len(r["realisation_p_values"]) == 3
        assert r["realisation_scores"][0] == r["score"] and r["realisation_p_values"][0] == r["p_value"]
        for number in (1, 2):
            images = suite.realisation("v", r["image"], number).images
            p = torch.softmax(models[key.model](images), dim=1)[:, r["explained"]].double().detach().numpy()
            assert r["realisation_scores"][number] == pytest.approx(float(np.abs(np.gradient(p)).mean()), rel=1e-6)
        by_key[(key.model, r["image"])] = r
    block = results["summary"]["darkening"]["v"]
    for definition in ("anywhere", "final", "held_out"):
        for model in CUTS:
            entry = block["flip_prediction"][definition][model]["property_score_mean_R"]
            recs = [by_key[(model, i)] for i in range(len(BRIGHTNESS))]
            labels = [r[EXPECTED_FIELDS[definition][0]] for r in recs]
            means = [float(np.mean(r["realisation_scores"])) for r in recs]
            assert entry["accuracy_all"] == best_threshold_accuracy(means, labels)[0]
    assert "property_score_mean_R" not in block["flip_prediction"]["extrapolation"]["cut50"]
    s = block["scores"]["cut50"]
    assert s["n_realisations"] == 3
    ps = [
        p
        for r in properties(results)
        if CellKey.from_json(r["key"]).model == "cut50"
        for p in r["realisation_p_values"]
    ]
    assert s["fraction_significant_realisations"] == pytest.approx(np.mean(np.array(ps) < 0.01))
    assert "property_score_mean_R" in (tmp_path / "report.md").read_text()


def test_r_realisations_need_a_suite_that_draws_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no realisation 1 of 'v'.*realisation\\(\\)"):
        run_benchmark(settings(realisations=2, baselines=()), tmp_path, suites={"darkening": VSuite()}, baselines={})


def test_the_report_says_when_a_correction_leaves_none_of_the_raw_significant_images() -> None:
    # 300 images, 142 at the placebo test's smallest p-value 1/101 (M = 100), BH at alpha 0.01:
    # they adjust to 300 / (142 * 101) = 0.021, so none stays; M + 1 > 300 / (142 * 0.01) needs M >= 211
    p = np.array([1 / 101] * 142 + [0.5] * 158)
    adjusted = false_discovery_control(p, method="bh")
    assert (adjusted < 0.01).sum() == 0
    scores = {
        "n_significant_adjusted": 300,
        "n_placebo_significant_adjusted": int((adjusted < 0.01).sum()),
        "feasibility": {
            "placebo": {
                **correction_feasibility(300, 100, 0.01, "bh").to_dict(),
                "n_raw_significant": 142,
                "k_needed_for_raw": resamples_needed(300, 142, 0.01, "bh"),
            }
        },
    }
    (note,) = correction_notes({"fur": {"fur": {"scores": {"m": scores}}}})  # type: ignore[dict-item]
    assert "leaves none of the 142 images" in note and "M >= 211" in note
    p_211 = np.array([1 / 212] * 142 + [0.5] * 158)
    assert (false_discovery_control(p_211, method="bh")[:142] < 0.01).all()
