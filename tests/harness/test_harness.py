"""The flip benchmark harness with a tiny fake suite whose flips are known in advance.

The fake suite (:class:`tests.fakes.DarkeningSuite`)'s images are uniform grey levels; its models
classify "bright" (class 0) vs "dark" (class 1) by mean brightness against a model-specific cut;
the intervention darkens the image gradually to a per-image final factor. So whether and where
each prediction flips follows from arithmetic, and the output-only reference |p_T - p_0|
separates flips perfectly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.harness import BenchmarkSettings, CellStore, SettingsMismatchError, run_benchmark
from propgrad.harness import runner as runner_module
from propgrad.harness.cells import CellKey
from propgrad.harness.figures import write_plots
from propgrad.harness.kept_maps import MAPS_DIR, KeptMaps
from propgrad.harness.pipeline import STORE_NAME
from propgrad.harness.settings import PoolSize
from propgrad.harness.store import META_KINDS
from tests.fakes import BRIGHTNESS, CUTS, FINAL_FACTOR, N_STEPS, DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings
from tests.trained_suites import TrainedFur


class FailsOnDark(AttributionBaseline):
    """Raises ValueError for any batch containing a very dark image."""

    name = "fails_on_dark"

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if (images.mean(dim=(1, 2, 3)) < 0.15).any():
            raise ValueError("superpixels failed on a dark image")
        return images.mean(dim=1) * (target[:, None, None] + 1)


def run(out: Path, st: BenchmarkSettings, baselines: dict[str, AttributionBaseline], **kw: Any) -> dict[str, Any]:
    return run_benchmark(st, out, suites={"darkening": DarkeningSuite()}, baselines=baselines, **kw)


def expected_flip(index: int, cut: float) -> bool:
    return (BRIGHTNESS[index] > cut) != (BRIGHTNESS[index] * FINAL_FACTOR[index] > cut)


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """Results without what depends on the session (timings, resume counts)."""
    return {k: v for k, v in results.items() if "timing" not in k and k != "resume"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One uninterrupted run of the darkening suite with the image-map baseline, and its folder."""
    out = tmp_path_factory.mktemp("finished")
    return run(out, settings(), {"image_map": ImageMap()}), out


def records_of(results: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in results["records"] if r["kind"] == kind]


def test_one_property_record_per_image_and_model(finished: tuple[dict[str, Any], Path]) -> None:
    props = records_of(finished[0], "property")
    assert sorted((CellKey.from_json(r["key"]).model, r["image"]) for r in props) == sorted(
        (m, i) for m in CUTS for i in range(len(BRIGHTNESS))
    )


def test_explained_class_is_the_decision_on_the_original(finished: tuple[dict[str, Any], Path]) -> None:
    for r in records_of(finished[0], "property"):
        cut = CUTS[CellKey.from_json(r["key"]).model]
        assert r["explained"] == int(BRIGHTNESS[r["image"]] < cut), r["key"]
        assert r["original_prediction_correct"] == (r["explained"] == r["label"])


def test_flips_follow_the_brightness_arithmetic(finished: tuple[dict[str, Any], Path]) -> None:
    props = records_of(finished[0], "property")
    for r in props:
        expected = expected_flip(r["image"], CUTS[CellKey.from_json(r["key"]).model])
        assert r["flipped_anywhere"] == expected == r["final_differs"], r["key"]
        assert (r["n_flips"] > 0) == expected  # a monotone darkening crosses the cut at most once
    assert any(r["flipped_anywhere"] for r in props) and not all(r["flipped_anywhere"] for r in props)


def test_reference_is_the_change_of_the_explained_probability(finished: tuple[dict[str, Any], Path]) -> None:
    for r in records_of(finished[0], "property"):
        assert r["reference"] == pytest.approx(abs(r["curve"][-1] - r["curve"][0]))


def test_curve_score_and_p_value_are_well_formed(finished: tuple[dict[str, Any], Path]) -> None:
    for r in records_of(finished[0], "property"):
        assert len(r["curve"]) == N_STEPS and all(0.0 <= p <= 1.0 for p in r["curve"])
        assert r["score"] > 0 and 0 < r["p_value"] <= 1
        assert (r["property_name"], r["unit"], r["periodic"]) == ("darkness", "step", False)


def test_baseline_scores_are_the_mean_squared_image_change(finished: tuple[dict[str, Any], Path]) -> None:
    cells = records_of(finished[0], "baseline")
    assert len(cells) == len(BRIGHTNESS) * len(CUTS)
    for r in cells:
        b, f = BRIGHTNESS[r["image"]], FINAL_FACTOR[r["image"]]
        assert r["method"] == "image_map" and r["error"] is None
        assert r["score"] == pytest.approx((b - b * f) ** 2, rel=1e-5)


@pytest.mark.parametrize("definition", ["anywhere", "final"])
def test_output_reference_predicts_flips_perfectly(finished: tuple[dict[str, Any], Path], definition: str) -> None:
    table = finished[0]["summary"]["darkening"]["darken"]["flip_prediction"][definition]
    for model in CUTS:
        assert set(table[model]) == {"property_score", "output_reference", "image_map"}
        ref = table[model]["output_reference"]
        assert ref["accuracy_mean"] == 1.0 and ref["auc_mean"] == 1.0


def test_score_table_counts_images_and_flips(finished: tuple[dict[str, Any], Path]) -> None:
    scores = finished[0]["summary"]["darkening"]["darken"]["scores"]
    for model, cut in CUTS.items():
        assert scores[model]["n_images"] == len(BRIGHTNESS)
        assert scores[model]["n_flipped_anywhere"] == sum(expected_flip(i, cut) for i in range(len(BRIGHTNESS)))


def test_results_json_holds_the_returned_results(finished: tuple[dict[str, Any], Path]) -> None:
    results, out = finished
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["records"] == results["records"] and on_disk["settings"]["n_permutations"] == 200
    assert on_disk["suites"]["darkening"]["accuracy_table"] == {"cut50": {"test": 1.0}, "cut35": {"test": 1.0}}
    assert {"torch", "captum", "propgrad", "plugins"} <= set(on_disk["versions"])


def test_timing_separates_model_calls_from_overhead(finished: tuple[dict[str, Any], Path]) -> None:
    timing = json.loads((finished[1] / "results.json").read_text())["timing"]
    assert timing["forward_s"] > 0 and timing["attribution_s"] > 0 and timing["overhead_ratio"] > 1


def test_report_holds_the_score_and_accuracy_tables(finished: tuple[dict[str, Any], Path]) -> None:
    report = (finished[1] / "report.md").read_text()
    assert "| cut50 |" in report and "E|∇X|" in report
    assert "darkening: test accuracy (%) of every model on every split" in report
    assert "| cut35 | 100.0 |" in report


def test_level_accuracy_is_saved_and_reported(finished: tuple[dict[str, Any], Path]) -> None:
    results, out = finished
    levels = results["suites"]["darkening"]["level_accuracy"]["darkening factor"]
    assert levels["levels"] == ["1.0", "0.5"] and levels["accuracy"]["cut50"][0] == 1.0
    assert levels["accuracy"]["cut50"][1] < 1.0  # halving brightness crosses the cut for some images
    report = (out / "report.md").read_text()
    assert "darkening: accuracy (%) by darkening factor" in report
    assert f"| cut50 | 100.0 | {100 * levels['accuracy']['cut50'][1]:.1f} |" in report
    assert "| cut50: bright | 100.0 |" in report and "| cut50: dark | 100.0 | 100.0 |" in report  # darker stays dark


def test_plots_are_written(finished: tuple[dict[str, Any], Path]) -> None:
    results, out = finished
    assert sorted(results["figures"]) == [
        f"{kind}_darkening_darken.png" for kind in ("behaviour", "filmstrip", "maps", "roc", "scores")
    ]
    assert all((out / name).stat().st_size > 1000 for name in results["figures"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_figures_drawn_in_a_forked_child_are_those_drawn_here(
    finished: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    results, out = finished
    args = (results["records"], results["summary"], results["settings"]["baselines"], KeptMaps(out / MAPS_DIR))
    (tmp_path / "here").mkdir()
    (tmp_path / "split").mkdir()
    here = write_plots(tmp_path / "here", *args, workers=1)
    split = write_plots(tmp_path / "split", *args, workers=2)
    assert [p.name for p in split] == [p.name for p in here] == results["figures"]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, split))


def test_sequences_are_generated_once_per_image_and_shared_by_models(tmp_path: Path) -> None:
    suite = DarkeningSuite()
    run_benchmark(settings(), tmp_path, suites={"darkening": suite}, baselines={"image_map": ImageMap()}, plots=False)
    assert suite.intervene_calls == len(BRIGHTNESS)  # not once per model


def test_failing_baseline_is_recorded_and_shown_as_na(tmp_path: Path) -> None:
    st = settings(baselines=("image_map", "fails_on_dark"))
    results = run(tmp_path, st, {"image_map": ImageMap(), "fails_on_dark": FailsOnDark()}, plots=False)
    cells = [r for r in results["records"] if r["kind"] == "baseline" and r["method"] == "fails_on_dark"]
    dark = {i for i in range(len(BRIGHTNESS)) if BRIGHTNESS[i] * FINAL_FACTOR[i] < 0.15}
    assert dark and {r["image"] for r in cells if r["error"]} == dark
    assert all("ValueError: superpixels failed" in r["error"] for r in cells if r["error"])
    assert all(r["score"] is not None for r in cells if r["image"] not in dark)  # batch-mates isolated
    entry = results["summary"]["darkening"]["darken"]["flip_prediction"]["anywhere"]["cut50"]["fails_on_dark"]
    assert entry["available"] is False and entry["n_errors"] == len(dark)
    assert "n/a" in (tmp_path / "report.md").read_text()


def test_interrupted_run_resumes_without_recomputing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "ATTRIBUTION_BLOCK", 8)  # the call counts below are for blocks of 8
    st = settings()
    n_cells = len(BRIGHTNESS) * len(CUTS)
    first = ImageMap(interrupt_after=10)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "a", st, {"image_map": first})
    second = ImageMap()
    resumed = run(tmp_path / "a", st, {"image_map": second})
    # per model, two blocks (8 + 4 images) of three calls (originals, finals, half-way images): the
    # 11th call, the second model's second block's finals, died; the resumed run redoes that block
    assert n_cells == 2 * (8 + 4) and first.calls == 10 and second.calls == 3
    lines = [json.loads(line) for line in (tmp_path / "a" / STORE_NAME).read_text().splitlines()]
    keys = [json.dumps(r["key"]) for r in lines if r["kind"] not in META_KINDS]  # a session's timing may repeat
    assert len(keys) == len(set(keys)) == 2 * n_cells  # no cell stored twice: one property and one baseline cell each
    assert resumed["resume"]["cells_loaded"] > 0
    straight = run(tmp_path / "b", st, {"image_map": ImageMap()})
    assert comparable(resumed) == comparable(straight)
    # a finished run resumed again computes nothing: no baseline call, no model forward
    suite, third = DarkeningSuite(), ImageMap()
    run_benchmark(st, tmp_path / "a", suites={"darkening": suite}, baselines={"image_map": third}, plots=False)
    assert third.calls == 0 and all(m.images_seen == 0 for m in suite.models().values())


def test_timing_stays_apart_from_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session whose model and attribution calls take no measurable time has no overhead ratio
    (NaN, written as null): why stays in its timing block, not in the results' own null reasons."""
    from contextlib import contextmanager

    from propgrad.harness.timing import Stopwatch

    @contextmanager
    def unmeasured(self: Stopwatch, name: str) -> Any:
        yield  # as on a machine where every call rounds to 0 s

    monkeypatch.setattr(Stopwatch, "measure", unmeasured)
    results = run(tmp_path, settings(), {"image_map": ImageMap()}, plots=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for data in (results, on_disk):
        for block in ("timing", "session_timing"):
            assert data[block]["overhead_ratio"] is None
            assert set(data[block]["null_reasons"]) == {"/overhead_ratio"}
        assert not any("timing" in pointer for pointer in data.get("null_reasons", {}))


def test_truncated_last_line_is_tolerated(tmp_path: Path) -> None:
    st = settings()
    full = run(tmp_path, st, {"image_map": ImageMap()}, plots=False)
    path = tmp_path / STORE_NAME
    lines = path.read_text().splitlines(keepends=True)
    last = max(n for n, line in enumerate(lines) if json.loads(line)["kind"] == "baseline")
    # the process died halfway through writing its last cell (and so wrote nothing after it)
    path.write_text("".join(lines[:last]) + lines[last][: len(lines[last]) // 2])
    again = ImageMap()
    resumed = run(tmp_path, st, {"image_map": again}, plots=False)
    assert resumed["resume"]["dropped_partial_line"] is True
    assert again.calls == 3  # only the half-written cell's block is redone: its originals, finals and half-way images
    assert comparable(resumed)["records"] == comparable(full)["records"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_corrupt_line_before_the_end_is_an_error(tmp_path: Path) -> None:
    store = CellStore(tmp_path / "s.jsonl", {"a": 1})
    store.append([{"kind": "x", "key": ["x", 1]}, {"kind": "x", "key": ["x", 2]}])
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    (tmp_path / "s.jsonl").write_text("\n".join([lines[0], "{garbage", lines[2]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is corrupt"):
        CellStore(tmp_path / "s.jsonl", {"a": 1})


def test_store_refuses_other_settings_and_duplicates(tmp_path: Path) -> None:
    store = CellStore(tmp_path / "s.jsonl", {"a": 1})
    store.append([{"kind": "x", "key": ["x", 1]}])
    with pytest.raises(ValueError, match="already stored"):
        store.append([{"kind": "x", "key": ["x", 1]}])
    with pytest.raises(SettingsMismatchError, match="--fresh"):
        CellStore(tmp_path / "s.jsonl", {"a": 2})
    assert CellStore(tmp_path / "s.jsonl", {"a": 1}).get(["x", 1]) == {"kind": "x", "key": ["x", 1]}
    (tmp_path / "h.jsonl").write_text('{"kind": "head')  # the very first write was cut short
    fresh = CellStore(tmp_path / "h.jsonl", {"a": 1})
    assert len(fresh) == 0 and json.loads((tmp_path / "h.jsonl").read_text())["kind"] == "header"


def test_other_settings_are_refused_unless_fresh(tmp_path: Path) -> None:
    run(tmp_path, settings(), {"image_map": ImageMap()}, plots=False)
    with pytest.raises(SettingsMismatchError, match="n_permutations.*another --out"):
        run(tmp_path, settings(n_permutations=300), {"image_map": ImageMap()}, plots=False)
    baseline = ImageMap()
    results = run(tmp_path, settings(n_permutations=300), {"image_map": baseline}, plots=False, fresh=True)
    assert baseline.calls > 0 and results["settings"]["n_permutations"] == 300
    # batch sizes do not change results, so changing them resumes instead of refusing
    run(
        tmp_path,
        settings(n_permutations=300, forward_batch_size=4, chunk_size=2),
        {"image_map": ImageMap()},
        plots=False,
    )


def test_changed_suite_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(tmp_path, settings(), {"image_map": ImageMap()}, plots=False)
    monkeypatch.setattr(DarkeningSuite, "settings", lambda self: {"steps": N_STEPS + 1})
    with pytest.raises(SettingsMismatchError, match="suite 'darkening'"):
        run(tmp_path, settings(), {"image_map": ImageMap()}, plots=False)


def test_pool_limits_images_per_class(tmp_path: Path) -> None:
    results = run(tmp_path, settings(pool_per_class=PoolSize.SUITE_IMAGES_PER_CLASS, baselines=()), {}, plots=False)
    pool = results["suites"]["darkening"]["pool"]
    labels = [int(BRIGHTNESS[i] < 0.5) for i in pool]
    assert labels.count(0) == 4 and labels.count(1) == 4
    assert {r["image"] for r in results["records"]} == set(pool)


def test_cli_rejects_unknown_suite_cleanly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from propgrad.cli import main

    code = main(["benchmark", "--suite", "no_such_suite", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "no_such_suite" in capsys.readouterr().err
    code = main(["benchmark", "--baselines", "none", "lime", "--out", str(tmp_path)])
    assert code == 2
    assert "'none' cannot be combined" in capsys.readouterr().err


@pytest.mark.slow
def test_real_fur_suite_end_to_end(quick_fur: TrainedFur, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in quick fur suite with two real baselines on a small pool, on the session's trained models."""
    from dataclasses import replace

    from propgrad.harness import preset
    from propgrad.plugins import get_baseline
    from propgrad.suites import cached

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the session's trained quick fur suite is in the cache: nothing to train")

    monkeypatch.setenv("PROPGRAD_CACHE_DIR", str(quick_fur.cache))
    monkeypatch.setattr(cached, "train_classifier", no_training)

    names = ("occlusion", "integrated_gradients")
    classes = {n: get_baseline(n) for n in names}
    st = replace(
        preset(quick=True, suites=("fur",), baselines=names, baseline_classes=classes, n_permutations=200),
        pool_per_class=3,
    )
    results = run_benchmark(st, tmp_path / "out")
    table = results["summary"]["fur"]
    assert list(table) == ["fur", "background", "background_equal_size"]
    for intervention in ("fur", "background"):
        block = table[intervention]
        assert list(block["flip_prediction"]) == ["anywhere", "final", "extrapolation", "held_out"]
        for rows in block["flip_prediction"].values():
            for _model, row in rows.items():
                assert set(row) == {"property_score", "output_reference", *names}
                assert 0.0 <= row["property_score"]["accuracy_mean"] <= 1.0
    equal_size = table["background_equal_size"]  # score-only: scores, no baselines, no flip tables
    assert equal_size["flip_prediction"] == {} and len(equal_size["scores"]) == 3
    assert not any(
        r["kind"] == "baseline" and CellKey.from_json(r["key"]).intervention == "background_equal_size"
        for r in results["records"]
    )
    assert all(r["error"] is None for r in results["records"] if r["kind"] == "baseline")
    assert (tmp_path / "out" / "report.md").exists() and results["figures"]


def test_model_accuracy_table_follows_the_suite_order_not_json_key_order() -> None:
    from propgrad.harness.report import model_accuracy_table

    cached = {
        "b_model": {"a_split": 0.5, "b_model": 0.9, "z_model": 0.1},
        "z_model": {"a_split": 0.25, "b_model": 0.2, "z_model": 1.0},
    }
    table = model_accuracy_table(cached, order=["z_model", "b_model"])
    lines = table.splitlines()
    assert lines[0].split() == ["model", "\\", "test", "split", "z_model", "b_model", "a_split"]
    assert lines[2].split() == ["z_model", "100.0", "20.0", "25.0"]
    assert lines[3].split() == ["b_model", "10.0", "90.0", "50.0"]


class TwoInterventionSuite(DarkeningSuite):
    """The same darkening under two names, as a suite with several interventions would have."""

    interventions = ("darken", "darken_again")


class CountingImageMap(ImageMap):
    def __init__(self) -> None:
        super().__init__()
        self.images_attributed = 0

    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.images_attributed += images.shape[0]
        return images.clone()


def test_original_maps_are_attributed_once_per_model_not_per_intervention(tmp_path: Path) -> None:
    baseline = CountingImageMap()
    st = settings(suites=("darkening",))
    results = run_benchmark(
        st, tmp_path, suites={"darkening": TwoInterventionSuite()}, baselines={"image_map": baseline}
    )
    cells = [r for r in results["records"] if r["kind"] == "baseline"]
    by_intervention = {
        iv: {
            (key.model, key.image): r["score"] for r in cells if (key := CellKey.from_json(r["key"])).intervention == iv
        }
        for iv in TwoInterventionSuite.interventions
    }
    n = len(by_intervention["darken"])
    assert n > 0 and by_intervention["darken"] == by_intervention["darken_again"]
    # originals once per (model, image), finals and half-way images once per intervention
    assert baseline.images_attributed == n + 2 * (n + n)


def test_a_map_cache_too_small_to_keep_anything_changes_no_result(
    finished: tuple[dict[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from propgrad.harness import map_cache

    monkeypatch.setattr(map_cache, "MAP_CACHE_BYTES", 0)
    monkeypatch.setattr(map_cache.MapCache.__init__, "__defaults__", (0,))
    again = run(tmp_path, settings(), {"image_map": ImageMap()})
    assert comparable(again)["records"] == comparable(finished[0])["records"]


def test_map_cache_is_bounded_in_bytes_and_forgets_the_least_recently_used() -> None:
    from propgrad.harness.map_cache import MapCache

    cache, calls = MapCache(max_bytes=3 * 400), []

    def maps(key: int) -> list[torch.Tensor]:
        calls.append(key)
        return [torch.full((100,), float(key))]  # 400 bytes

    for key in (1, 2, 3):
        cache.get(key, lambda key=key: maps(key))
    cache.get(1, lambda: maps(1))  # a hit: 1 is now the most recent
    cache.get(4, lambda: maps(4))  # over the bound: 2, the least recent, goes
    assert calls == [1, 2, 3, 4] and len(cache) == 3 and cache.nbytes == 1200
    assert float(cache.get(2, lambda: maps(2))[0][0]) == 2.0 and calls[-1] == 2  # recomputed
    big = MapCache(max_bytes=100)
    big.get("x", lambda: maps(9))
    assert len(big) == 0 and big.nbytes == 0  # larger than the bound: returned, not kept
