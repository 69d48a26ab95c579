"""Jupyter shows an explanation, a batch's explanations, realisations, baseline maps and a benchmark run as HTML.

Each ``_repr_html_`` is read back with the standard library's ``html.parser``: its tags balance,
it holds no script and nothing from the network, its style applies inside its own ``<div>`` only,
its images are PNG data URIs (the thumbnails pixel for pixel the input image), it says what the
explanation says (the reading, both tests' verdicts, the null caption, a constant map's label)
and a label, name or source containing markup comes out as text. Rendering leaves matplotlib as it
found it (no pyplot figure, same backend and rcParams), and ``import propgrad`` and the result
classes do not import matplotlib. The short text ``repr`` is one line.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import propgrad
from propgrad.example_model import colour_balance_net
from propgrad.explain.explanation_html import (
    FRAGMENT_CLASS,
    constant_label,
    explanation_fragment,
    null_figure_caption,
    scoped_css,
)
from propgrad.explain.explanations import Explanations
from propgrad.explain.maps import BaselineMaps
from propgrad.explain.zero_shot import ClassGrouping
from propgrad.harness import run_benchmark
from propgrad.harness.report import VERDICT_TITLE, verdict_rows
from propgrad.harness.result_view import BenchmarkResult
from propgrad.stats.settings import test_settings
from tests.fakes import DarkeningSuite, ImageMap, darkening_settings

VOID = {"img", "br", "hr", "meta", "input", "link", "col", "source", "wbr", "area", "base", "embed", "track"}
HOSTILE = "<script>alert('x')</script>"
LABELS = (HOSTILE, "<b>cool</b>")
PERMUTATIONS = 300


class Page(HTMLParser):
    """What a fragment holds: its tags checked for balance, images, text, style and every attribute."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False
        self.feed(markup)
        self.close()
        self.errors += [f"unclosed <{tag}>" for tag in self.stack]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID:
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)

    @property
    def all_text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))

    def images(self) -> dict[str, bytes]:
        """alt -> PNG bytes of every image (each must be a PNG data URI)."""
        found = {}
        for tag, attrs in self.tags:
            if tag == "img":
                prefix = "data:image/png;base64,"
                assert attrs["src"].startswith(prefix), attrs["src"][:40]
                png = base64.b64decode(attrs["src"][len(prefix) :])
                assert png.startswith(b"\x89PNG\r\n\x1a\n")
                found.setdefault(attrs["alt"], png)
        return found

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def _read(markup: str) -> Page:
    """Parse a fragment and check what every fragment must be."""
    page = Page(markup)
    assert page.errors == []
    assert markup.startswith(f'<div class="{FRAGMENT_CLASS}">') and markup.endswith("</div>")
    assert page.count("script") == 0 and page.count("link") == 0 and page.count("iframe") == 0
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", markup)
    selectors = [s.strip() for rule in re.findall(r"([^{}]+)\{", page.style) for s in rule.split(",")]
    assert selectors and all(s.startswith(f".{FRAGMENT_CLASS}") for s in selectors)
    return page


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _image(seed: int) -> torch.Tensor:
    return torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def explainer() -> propgrad.PropertyGradient:
    return propgrad.PropertyGradient(colour_balance_net())


@pytest.fixture(scope="module")
def explanation(explainer: propgrad.PropertyGradient) -> Any:
    settings = test_settings(n_permutations=PERMUTATIONS, n_placebos=20, alpha=0.05)
    return explainer.attribute(_image(0), "alpha_patch", source_params={"position": (4, 4)}, settings=settings)


@pytest.fixture(scope="module")
def batch() -> Any:
    """Three images explained with output labels (a class grouping's descriptors) that hold markup."""
    grouping = ClassGrouping(("warm", "cool"), ((0,), (1,)), column_labels=LABELS)
    images = torch.stack([_image(1), _image(2), _image(3)])
    explainer = propgrad.PropertyGradient(colour_balance_net(), classes=grouping)
    return explainer.attribute(images, "alpha_patch", settings=test_settings(n_permutations=PERMUTATIONS, n_placebos=0))


def test_an_explanation_shows_its_verdict_card_curve_null_and_filmstrip(explanation: Any) -> None:
    page = _read(explanation._repr_html_())
    assert page.count("div", **{"class": "card verdict"}) == 1
    text = page.all_text
    assert f"reading: {explanation.reading}" in text
    k = explanation.top_index
    assert f"Verdict for output {k}" in text
    placebo_p = float(explanation.placebo.p_value.reshape(-1)[k])
    verdict = "significant" if bool(explanation.verdict.reshape(-1)[k]) else "not significant"
    assert f"{verdict}, p = {placebo_p:.3g} at alpha = 0.05; " in text
    assert f"p = {float(explanation.p_value.reshape(-1)[k]):.3g} at alpha = 0.05; 300 shuffles" in text
    assert re.sub(r"\s+", " ", null_figure_caption(explanation, k)) in text
    images = page.images()
    assert set(images) == {"behaviour curve", "null distribution", "filmstrip of the intervention"}
    assert all(_pixels(png).std() > 0 for png in images.values())  # drawn, not blank


def test_labels_sources_and_names_with_markup_come_out_as_text(explanation: Any) -> None:
    hostile = replace(explanation, source=HOSTILE)
    markup = hostile._repr_html_()
    page = _read(markup)
    assert HOSTILE in page.all_text  # shown as text ...
    assert html.escape(HOSTILE) in markup and "<script>" not in markup  # ... never as a tag
    labelled = _read(explanation_fragment(explanation, labels=["<b>warm</b>", "<i>cool</i>"]))
    name = ["<b>warm</b>", "<i>cool</i>"][explanation.top_index]
    assert f"Verdict for {name}" in labelled.all_text
    assert labelled.count("b") == 0 and labelled.count("i") == 0


def test_a_batch_is_a_list_shown_as_one_row_per_image(batch: Any) -> None:
    assert type(batch) is Explanations and isinstance(batch, list) and len(batch) == 3
    assert batch == list(batch) and type(batch[1:]) is list
    assert json.dumps([e.reading for e in batch])  # what a caller does with a list still works
    markup = batch._repr_html_()
    page = _read(markup)
    assert "<script>" not in markup and "<b>" not in markup  # the labels are text
    names = [LABELS[e.top_index] for e in batch]
    cells = [d.strip() for d in page.text if d.strip() in LABELS]
    assert cells == names  # each row names its explained output by its label
    rows = [a for t, a in page.tags if t == "tr"]
    assert len(rows) == 1 + 3  # the header and one row per image
    thumbnails = [png for alt, png in _images_in_order(page, "original image")]
    assert len(thumbnails) == 3
    for k, png in enumerate(thumbnails):  # the original image, enlarged 64 // 24 = 2 times
        expected = (batch[k].images[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(_pixels(png), expected.repeat(2, axis=0).repeat(2, axis=1))
    text = page.all_text
    for e in batch:
        k = e.top_index
        assert re.sub(r"\s+", " ", e.reading) in text
        assert f"p = {float(e.p_value.reshape(-1)[k]):.3g}" in text
        assert "not run (no placebos were drawn)" in text
    assert len(_images_in_order(page, "along the sequence")) == 3


def test_a_large_batch_shows_its_first_rows_and_says_how_many_more(batch: Any, monkeypatch: Any) -> None:
    import propgrad.explain.explanation_html as views

    monkeypatch.setattr(views, "MAX_ROWS", 2)
    page = _read(batch._repr_html_())
    assert page.count("tr") == 1 + 2
    assert "The first 2 of 3 are shown." in page.all_text


def _images_in_order(page: Page, alt_part: str) -> list[tuple[str, bytes]]:
    found = []
    for tag, attrs in page.tags:
        if tag == "img" and alt_part in attrs["alt"]:
            found.append((attrs["alt"], base64.b64decode(attrs["src"].split(",", 1)[1])))
    return found


def test_realisations_show_the_mean_interval_curves_and_one_row_per_seed(explainer: propgrad.PropertyGradient) -> None:
    realisations = explainer.attribute_realisations(
        _image(4), "alpha_patch", [3, 5], settings=test_settings(n_permutations=PERMUTATIONS, n_placebos=0)
    )
    page = _read(realisations._repr_html_())
    text = page.all_text
    s = realisations.scores
    for k in range(2):
        assert f"[{float(s.ci_low[k]):.4g}, {float(s.ci_high[k]):.4g}]" in text
        assert f"{float(s.mean[k]):.4g} per step" in text
    assert "behaviour curves of the realisations" in page.images()
    assert len(_images_in_order(page, "fully intervened image")) == 2
    body = text.split("seed", 1)[1]
    assert re.search(r"\b3\b", body) and re.search(r"\b5\b", body)
    assert "Realisations(alpha_patch" in repr(realisations) and "\n" not in repr(realisations)


def _maps() -> BaselineMaps:
    rng = np.random.default_rng(0)
    structured = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    cancelling = np.zeros((2, 8, 8, 3), dtype=np.float32)
    cancelling[..., 0], cancelling[..., 2] = 2e-3, -2e-3  # red and blue cancel at every pixel
    return BaselineMaps(
        maps={"<i>structured</i>": structured, "cancelling": cancelling},
        images=rng.uniform(size=(2, 8, 8, 3)).astype(np.float32),
        steps=(0, 9),
        values=(0.0, 1.0),
        target=1,
        failures={HOSTILE: "RuntimeError: <b>broken</b>"},
    )


def test_baseline_maps_label_a_constant_map_and_list_failures_as_text() -> None:
    maps = _maps()
    markup = maps._repr_html_()
    page = _read(markup)
    text = page.all_text
    assert f"cancelling before and after: {constant_label(0.0)}" in text
    assert "cancel at every pixel" in text
    assert "<i>structured</i>" in text and HOSTILE in text and "RuntimeError: <b>broken</b>" in text
    assert "<script>" not in markup and "<i>" not in markup and "<b>" not in markup
    assert page.count("p", **{"class": "note constant-map"}) == 1
    assert set(page.images()) == {"attribution maps before and after"}
    assert repr(maps) == "BaselineMaps(target 1, steps [0, 9], 8x8 maps of <i>structured</i>, cancelling, failed: " + (
        f"{HOSTILE})"
    )


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("bench")
    result = run_benchmark(
        darkening_settings(),
        out,
        suites={"darkening": DarkeningSuite()},
        baselines={"image_map": ImageMap()},
        plots=False,
    )
    return result, out


def test_a_benchmark_result_is_its_results_json_shown_as_its_tables(benchmark: tuple[Any, Path]) -> None:
    result, out = benchmark
    assert type(result) is BenchmarkResult and isinstance(result, dict)
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(result))
    assert "\n" not in repr(result) and len(repr(result)) < 600 and "darkening" in repr(result)
    page = _read(result._repr_html_())
    text = page.all_text
    assert VERDICT_TITLE in text
    for row in verdict_rows(result["summary"]).rows:
        assert " ".join(str(c) for c in row) in text  # the verdict table's rows, cell after cell
    assert page.count("details") == 1 and "darkening: test accuracy" in text
    assert page.images() == {}


def test_a_benchmark_result_escapes_a_model_name_with_markup(benchmark: tuple[Any, Path]) -> None:
    result = BenchmarkResult(json.loads(json.dumps(benchmark[0])))
    for block in result["summary"]["darkening"].values():
        block["scores"][HOSTILE] = block["scores"].pop("cut50")
    markup = result._repr_html_()
    assert HOSTILE in _read(markup).all_text and "<script>" not in markup


def test_rendering_leaves_matplotlib_as_it_found_it(explanation: Any, batch: Any) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    before = (plt.get_fignums(), matplotlib.get_backend(), dict(matplotlib.rcParams))
    for _ in range(2):  # a notebook loop
        explanation._repr_html_()
        batch._repr_html_()
        _maps()._repr_html_()
    assert (plt.get_fignums(), matplotlib.get_backend(), dict(matplotlib.rcParams)) == before


def test_the_style_applies_inside_the_fragment_only() -> None:
    css = "body{margin:0 auto;color:#222}\nh1,td:first-child{font-size:2em}"
    assert scoped_css(css, ".v") == ".v{margin:0 auto;color:#222}.v h1,.v td:first-child{font-size:2em}"


def test_the_text_repr_is_one_line(explanation: Any) -> None:
    text = repr(explanation)
    assert "\n" not in text and len(text) < 400
    assert text.startswith("Explanation(alpha_patch: alpha over") and explanation.reading in text


def test_importing_propgrad_and_its_results_does_not_import_matplotlib() -> None:
    code = (
        "import sys, propgrad, propgrad.explain.result, propgrad.explain.explanations, propgrad.explain.maps, "
        "propgrad.explain.realisations, propgrad.explain.explanation_html, propgrad.harness.result_view\n"
        "print(sorted(m for m in ('matplotlib', 'IPython', 'PIL.Image') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
