"""Both report.html pages render in headless Chromium: tables, images, the slider, and the slider moves.

The pages are opened offline from disk by Debian's ``chromium`` (driven over the DevTools pipe,
:mod:`tests.browser`); the checks read the rendered DOM (every image decoded, tables with the
expected headers, nothing loaded from outside the file) and a screenshot (not blank, and the
slider's frame region changes when the slider moves).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from propgrad.cli import main
from propgrad.harness import run_benchmark
from tests.browser import Browser, chromium_path
from tests.fakes import DarkeningSuite, ImageMap
from tests.fakes import darkening_settings as settings

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)

DOM_SUMMARY = """(() => {
  const imgs = [...document.images];
  return {
    tables: document.querySelectorAll('table').length,
    headers: [...document.querySelectorAll('th')].map(th => th.textContent),
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    external: [...document.querySelectorAll('[src],[href]')]
        .map(e => e.getAttribute('src') || e.getAttribute('href'))
        .filter(u => /^(https?:)?\\/\\//.test(u)),
    stylesheets: document.querySelectorAll('link[rel=stylesheet],script[src]').length,
    sliders: document.querySelectorAll('input[type=range]').length,
    alts: imgs.map(i => i.alt),
  };
})()"""

SLIDER_STATE = """(() => {
  const s = document.querySelector('div.slider');
  const img = s.querySelector('img.frame-image');
  const box = img.getBoundingClientRect();
  return {value: s.querySelector('input').value, max: s.querySelector('input').max, step: img.dataset.step,
          src: img.src.length > 100 ? img.src.slice(-200) : img.src, label: s.querySelector('.frame-label').textContent,
          rows: [...s.querySelectorAll('tbody.frame-values tr')].map(r => r.textContent),
          box: [box.x + window.scrollX, box.y + window.scrollY, box.width, box.height],
          decoded: img.complete && img.naturalWidth > 0};
})()"""


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"), dtype=np.float64)


def _check_page(summary: dict[str, Any], screenshot: Path) -> None:
    assert summary["images"] > 0 and summary["decoded"] == summary["images"], summary["alts"]
    assert summary["external"] == [] and summary["stylesheets"] == 0  # self-contained: nothing to fetch
    pixels = _pixels(screenshot)
    assert pixels.shape[0] > 1000 and pixels.shape[1] >= 1000
    assert pixels.std() > 20  # not a blank page


@pytest.fixture(scope="module")
def explain_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("explain")
    code = main(
        [
            "explain",
            "--size",
            "32",
            "--permutations",
            "200",
            "--no-progress",
            "--report-baselines",
            "integrated_gradients",
            "occlusion",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


@needs_chromium
def test_explain_report_renders_and_its_slider_changes_the_frame(explain_out: Path, tmp_path: Path) -> None:
    with Browser() as browser:
        browser.open(explain_out / "report.html")
        summary = browser.evaluate(DOM_SUMMARY)
        before = browser.evaluate(SLIDER_STATE)
        first_shot = browser.screenshot(tmp_path / "explain_first.png")
        browser.evaluate("document.querySelector('div.slider input').focus()")
        for _ in range(5):  # a real key press on the focused slider, as a user would
            browser.press("ArrowRight", "ArrowRight", 39)
        after = browser.evaluate(SLIDER_STATE)
        browser.evaluate(
            "(() => {const i = document.querySelector('div.slider input'); i.value = i.max; "
            "i.dispatchEvent(new Event('input')); return true;})()"
        )
        last = browser.evaluate(SLIDER_STATE)
        moved_shot = browser.screenshot(tmp_path / "explain_moved.png")
    _check_page(summary, first_shot)
    assert summary["sliders"] == 1
    for alt in (
        "filmstrip of the intervention",
        "behaviour curve",
        "null distribution",
        "attribution maps before and after",
    ):
        assert alt in summary["alts"]
    assert {"output", "value", "decision", "plugin"} <= set(summary["headers"])
    assert before["decoded"] and after["decoded"] and last["decoded"]
    assert (before["value"], before["step"]) == ("0", "0")
    assert (after["value"], after["step"]) == ("5", "5")
    assert last["step"] == last["max"] == "20"  # the example run has 21 steps
    assert before["src"] != after["src"] != last["src"]
    assert before["label"].startswith("step 1 of 21") and last["label"].startswith("step 21 of 21")
    assert before["rows"] != last["rows"]  # the outputs shown follow the frame
    x, y, w, h = (int(round(v)) for v in before["box"])
    region = (slice(y, y + h), slice(x, x + w))
    first, moved = _pixels(first_shot)[region], _pixels(moved_shot)[region]
    assert first.std() > 5 and np.abs(first - moved).mean() > 1.0  # the shown frame changed on screen


def test_explain_json_is_strict_with_provenance(explain_out: Path) -> None:
    from propgrad.core.strict_json import loads_strict

    record = loads_strict((explain_out / "explanation.json").read_text())
    provenance = record["provenance"]
    for key in ("propgrad", "torch", "captum", "scikit-image", "torch_threads", "device", "plugins", "git"):
        assert key in provenance
    assert provenance["device"] == "cpu"
    assert record["settings"]["report_baselines"] == ["integrated_gradients", "occlusion"]


@pytest.fixture(scope="module")
def benchmark_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("benchmark")
    run_benchmark(settings(), out, suites={"darkening": DarkeningSuite()}, baselines={"image_map": ImageMap()})
    return out


@needs_chromium
def test_benchmark_report_renders_tables_and_figures(benchmark_out: Path, tmp_path: Path) -> None:
    with Browser() as browser:
        browser.open(benchmark_out / "report.html")
        summary = browser.evaluate(DOM_SUMMARY)
        cells = browser.evaluate(
            "[...document.querySelectorAll('table')].map(t => [t.rows.length, t.rows[0].cells.length])"
        )
        shot = browser.screenshot(tmp_path / "benchmark.png")
    _check_page(summary, shot)
    assert summary["sliders"] == 0
    kinds = ("Behaviour", "ROC", "Score distributions", "Filmstrip", "Attribution maps")
    for kind in kinds:
        assert any(alt.startswith(kind) for alt in summary["alts"]), (kind, summary["alts"])
    assert summary["images"] == len(kinds)
    # Tab. 2: models x (property_score, output_reference, image_map); the score table's 7 columns
    assert {"model", "property_score", "output_reference", "image_map", "mean E|∇X| ± std"} <= set(summary["headers"])
    assert [3, 4] in cells  # header + 2 models, model column + 3 methods
    assert [3, 7] in cells  # the property-score table renders all 7 columns
    assert all(rows > 1 for rows, _ in cells)
