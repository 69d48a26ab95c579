"""Machine-readable output: strict JSON with null reasons, records.csv, provenance, kept maps, figure helpers.

The benchmark runs on the fake darkening suite of :mod:`tests.fakes` (uniform grey images
darkened to a known factor; the ``image_map`` baseline's map is the image itself), so every kept
map and frame is known by arithmetic.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from propgrad.core.atomic_files import write_json
from propgrad.core.plotting import readable_ylim
from propgrad.core.strict_json import NULL_REASONS, dumps_strict, loads_strict, strict_data
from propgrad.harness import run_benchmark
from propgrad.harness.evaluation import roc_auc
from propgrad.harness.figures import roc_points
from propgrad.harness.kept_maps import KeptMaps, kept_images
from tests.fakes import BRIGHTNESS, CUTS, FINAL_FACTOR, N_STEPS, DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings


def test_non_finite_values_become_null_with_their_json_pointer_and_reason() -> None:
    data = {"a": [1.0, math.nan, {"b/c": math.inf}], "d": -math.inf, "e": "inf", "f": 2, "g": None, "h": True}
    clean, reasons = strict_data(data)
    assert clean == {"a": [1.0, None, {"b/c": None}], "d": None, "e": None, "f": 2, "g": None, "h": True}
    assert set(reasons) == {"/a/1", "/a/2/b~1c", "/d", "/e"}
    assert reasons["/a/1"].startswith("NaN") and reasons["/d"].startswith("-inf") and reasons["/e"].startswith("+inf")
    assert data["a"][1] != data["a"][1]  # the input is not modified
    parsed = loads_strict(dumps_strict(data))
    assert parsed[NULL_REASONS] == reasons


def test_strict_parser_refuses_nan_and_infinity_literals() -> None:
    for text in ('{"x": NaN}', '{"x": Infinity}', "[-Infinity]"):
        with pytest.raises(ValueError, match="not strict JSON"):
            loads_strict(text)
    assert loads_strict('{"x": null}') == {"x": None}


def test_write_json_writes_strict_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"score": float("nan"), "values": [0.5, float("inf")]})
    record = loads_strict(path.read_text())
    assert record["score"] is None and record["values"] == [0.5, None]
    assert set(record[NULL_REASONS]) == {"/score", "/values/1"}
    json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"literal {name}"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    results = run_benchmark(
        settings(), out, suites={"darkening": DarkeningSuite()}, baselines={"image_map": ImageMap()}
    )
    return results, out


def test_results_json_is_strict_and_carries_provenance(run: tuple[dict[str, Any], Path]) -> None:
    results, out = run
    text = (out / "results.json").read_text()
    stored = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict literal {name}"))
    assert "inf" not in [v for v in _leaves(stored) if isinstance(v, str)]
    versions = stored["versions"]
    for key in ("propgrad", "torch", "numpy", "captum", "scikit-image", "torch_threads", "plugins", "device"):
        assert key in versions, key
    assert versions["device"] == "cpu"
    assert versions["slic_fallbacks"] == {}  # image_map segments nothing
    assert versions["git"] is None or len(versions["git"]["commit"]) == 40


def _leaves(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [v for value in x.values() for v in _leaves(value)]
    if isinstance(x, list):
        return [v for value in x for v in _leaves(value)]
    return [x]


def test_records_csv_holds_one_row_per_model_and_image(run: tuple[dict[str, Any], Path]) -> None:
    results, out = run
    with open(out / "records.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(CUTS) * len(BRIGHTNESS)
    stored = {(r["key"][3], r["image"]): r for r in results["records"] if r["kind"] == "property"}
    baseline = {(r["key"][3], r["image"]): r for r in results["records"] if r["kind"] == "baseline"}
    for row in rows:
        key = (row["model"], int(row["image"]))
        assert float(row["score"]) == stored[key]["score"]
        assert row["flipped_anywhere"] == str(stored[key]["flipped_anywhere"])
        assert float(row["image_map_score"]) == baseline[key]["score"]
        assert row["image_map_error"] == "" and row["placebo_p_value"] == ""  # missing: an empty cell
        assert int(row["n_steps"]) == N_STEPS


def test_records_csv_reads_into_pandas(run: tuple[dict[str, Any], Path]) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(run[1] / "records.csv")
    assert frame.shape[0] == len(CUTS) * len(BRIGHTNESS)
    assert frame["score"].dtype == np.float64 and frame["flipped_anywhere"].dtype == bool
    assert frame["placebo_p_value"].isna().all()
    flips = frame.groupby("model")["flipped_anywhere"].sum().to_dict()
    scores = run[0]["summary"]["darkening"]["darken"]["scores"]
    assert flips == {m: s["n_flipped_anywhere"] for m, s in scores.items()}


def test_report_md_links_every_figure(run: tuple[dict[str, Any], Path]) -> None:
    results, out = run
    text = (out / "report.md").read_text()
    for name in results["figures"]:
        assert f"]({name})" in text and (out / name).exists()
    assert "](report.html)" in text and "](records.csv)" in text


def test_kept_images_are_the_first_per_class_in_pool_order() -> None:
    labels = torch.tensor([1, 0, 1, 1, 0, 0, 1])
    assert kept_images([6, 5, 4, 3, 2, 1, 0], labels, per_class=2) == [3, 4, 5, 6]
    assert kept_images([0, 1, 2], labels, per_class=5) == [0, 1, 2]


def _expected(index: int, step: int) -> np.ndarray:
    factor = np.linspace(1.0, FINAL_FACTOR[index], N_STEPS, dtype=np.float32)[step]
    return np.full((3, 6, 6), BRIGHTNESS[index], dtype=np.float32) * factor


def _check_kept(out: Path) -> None:
    kept = KeptMaps(out / "maps")
    images = [0, 1, 6, 7]  # two bright and two dark images: the first of each class in the pool
    sequences = kept.sequences("darkening", "darken")
    assert [s.image for s in sequences] == images
    for seq in sequences:
        assert seq.steps.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]  # 8 of 9 steps, evenly spaced
        np.testing.assert_allclose(seq.frames, np.stack([_expected(seq.image, k) for k in seq.steps]), rtol=1e-6)
        assert seq.property_name == "darkness"
    maps = kept.maps("darkening", "darken", list(CUTS), ["image_map"])
    assert sorted((m.model, m.image) for m in maps) == sorted((m, i) for m in CUTS for i in images)
    for m in maps:  # image_map's map is the image: the original and the final one
        np.testing.assert_allclose(m.before, _expected(m.image, 0), rtol=1e-6)
        np.testing.assert_allclose(m.after, _expected(m.image, N_STEPS - 1), rtol=1e-6)


def test_benchmark_keeps_maps_and_frames_of_two_images_per_class(run: tuple[dict[str, Any], Path]) -> None:
    _check_kept(run[1])


def test_kept_maps_survive_an_interrupt_and_the_resumed_run_adds_the_rest(tmp_path: Path) -> None:
    first = ImageMap(interrupt_after=3)  # original, half-way and final calls of the first model, then stop
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(settings(), tmp_path, suites={"darkening": DarkeningSuite()}, baselines={"image_map": first})
    done = KeptMaps(tmp_path / "maps").maps("darkening", "darken", list(CUTS), ["image_map"])
    assert {m.model for m in done} == {next(iter(CUTS))} and len(done) == 4  # the first model's, before its cells
    run_benchmark(settings(), tmp_path, suites={"darkening": DarkeningSuite()}, baselines={"image_map": ImageMap()})
    _check_kept(tmp_path)
    run_benchmark(
        settings(), tmp_path, suites={"darkening": DarkeningSuite()}, baselines={"image_map": ImageMap()}, fresh=True
    )
    _check_kept(tmp_path)


def test_fresh_removes_the_kept_maps(tmp_path: Path) -> None:
    from propgrad.harness.pipeline import remove_outputs

    KeptMaps(tmp_path / "maps").save_maps("s", "i", "m", "b", 3, torch.zeros(2), torch.ones(2))
    (tmp_path / "maps" / "notes.txt").write_text("the user's")
    remove_outputs(tmp_path)
    assert not list((tmp_path / "maps").rglob("*.npz")) and (tmp_path / "maps" / "notes.txt").exists()


def test_roc_points_match_sklearn_and_their_area_is_the_auc() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # with ties
    labels = rng.random(60) < 0.4
    fpr, tpr = roc_points(scores, labels)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, labels))
    assert [a.tolist() for a in roc_points([1.0, 2.0], [True, True])] == [[0.0, 1.0], [0.0, 1.0]]


def test_y_range_shows_a_change_from_099_to_098() -> None:
    bottom, top, shown = readable_ylim(0.98, 0.99, threshold=0.5)
    assert not shown and 0.97 < bottom < 0.98 and 0.99 < top < 1.0
    assert (0.99 - 0.98) / (top - bottom) > 0.5  # the change fills most of the axis
    bottom, top, shown = readable_ylim(0.3, 0.9, threshold=0.5)
    assert shown and bottom < 0.3 and top > 0.9
    bottom, top, shown = readable_ylim(0.4, 0.45, threshold=0.5)  # close: the threshold is drawn too
    assert shown and bottom < 0.4 and top > 0.5
