"""``propgrad explain``'s report.html reads right, checked in headless Chromium.

The verdict card comes first: the size-aware placebo test's decision (and where a sequential
test stopped), the paper's permutation test beside it, labelled for what it tests, the practical
size and the one-line reading. The null histogram's caption says what the observed value's side
of the null means for the statistic. A constant attribution map is labelled with its value
instead of drawn as a blank panel. One output has one name on the whole page, and the vignette's
strength is shown as the property values with its sign stated once in words.

The pages are built with :func:`propgrad.cli.explain_report.explain_html` from explanations of
tiny models (the command's own run is checked in ``tests/harness/test_report_html.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import propgrad
from propgrad.cli.explain_report import compute_maps, explain_html, headline, maps_figure, null_figure_caption
from propgrad.example_model import colour_balance_net
from propgrad.explain.maps import BaselineMaps
from propgrad.stats.settings import test_settings
from tests.browser import Browser, chromium_path

matplotlib.use("Agg")

needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)

LABELS = ["warm", "cool"]
PERMUTATIONS = 400

PAGE = """(() => {
  const card = document.querySelector('div.card.verdict');
  const first = document.querySelector('img');
  const figure = [...document.querySelectorAll('figure')].find(f => f.querySelector('img').alt === 'null distribution');
  const maps = [...document.querySelectorAll('figure')].find(
      f => f.querySelector('img').alt === 'attribution maps before and after');
  const slider = JSON.parse(document.querySelector('div.slider script').textContent);
  return {
    card: card ? card.innerText : null,
    title: card ? card.querySelector('h3').innerText : null,
    lead: card ? card.querySelector('p.lead').innerText : null,
    rows: card ? [...card.querySelectorAll('dt')].map(dt => [dt.innerText, dt.nextElementSibling.innerText]) : [],
    cardFirst: Boolean(card && first && (card.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING)),
    nullCaption: figure ? figure.querySelector('figcaption').innerText : null,
    mapsCaption: maps ? maps.querySelector('figcaption').innerText : null,
    constant: [...document.querySelectorAll('p.constant-map')].map(p => p.innerText),
    sliderLabels: slider.labels,
    sliderNames: slider.rows.flat().map(row => row[0]),
    text: document.body.innerText,
    settings: [...document.querySelectorAll('dl.kv')].map(dl => dl.innerText).join('\\n'),
  };
})()"""


class RegionNet(nn.Module):
    """Reads only the warmth of one 6 x 6 region (top, left): the patch's, or a corner blind to it."""

    def __init__(self, top: int, left: int) -> None:
        super().__init__()
        self.top, self.left = top, left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        region = x[:, :, self.top : self.top + 6, self.left : self.left + 6].mean(dim=(2, 3))
        warmth = 5.0 * (region[:, 0] - region[:, 2])
        return torch.stack([warmth, -warmth], dim=1)


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(seed))


def _explain(model: nn.Module, source: str = "alpha_patch", **kwargs: Any) -> Any:
    params = kwargs.pop("source_params", {})
    settings = test_settings(n_permutations=PERMUTATIONS, **kwargs)
    return propgrad.PropertyGradient(model).attribute(_image(), source, source_params=params, settings=settings)


def _read(browser: Browser, explanation: Any, path: Path, maps: Any = None) -> dict[str, Any]:
    page = explain_html(
        explanation, labels=LABELS, settings={"image": "random"}, provenance={"propgrad": "test"}, maps=maps
    )
    browser.open(page.write(path))
    return browser.evaluate(PAGE)


@pytest.fixture(scope="module")
def patch_explanation() -> Any:
    """A model that reads the patch's region: an ordered response, larger than the placebos."""
    return _explain(RegionNet(4, 4), source_params={"position": (4, 4)})


@pytest.fixture(scope="module")
def example_explanation() -> Any:
    """The example model (its Guided Grad-CAM maps cancel), without the placebo test."""
    return _explain(colour_balance_net(), source_params={"position": (4, 4)}, n_placebos=0)


@pytest.fixture(scope="module")
def corner_explanation() -> Any:
    """A model that never sees the patch: constant outputs; the placebos change its corner."""
    return _explain(RegionNet(0, 0), source_params={"position": (18, 18)})


def _hand_made_maps() -> BaselineMaps:
    rng = np.random.default_rng(0)
    shape = (2, 8, 8, 3)
    cancelling = np.zeros(shape, dtype=np.float32)
    cancelling[..., 0], cancelling[..., 2] = 3e-5, -3e-5  # red and blue cancel at every pixel
    flat_then_structured = np.full(shape, 0.5, dtype=np.float32)
    flat_then_structured[1] = rng.normal(size=shape[1:])
    return BaselineMaps(
        maps={
            "zero": np.zeros(shape, dtype=np.float32),
            "cancelling": cancelling,
            "flat_before": flat_then_structured,
            "structured": rng.normal(size=shape).astype(np.float32),
        },
        images=rng.random(shape).astype(np.float32),
        steps=(0, 20),
        values=(0.0, 1.0),
        target=0,
        failures={},
    )


@needs_chromium
def test_the_verdict_card_comes_first_with_the_size_aware_test_before_the_papers(
    patch_explanation: Any, corner_explanation: Any, example_explanation: Any, tmp_path: Path
) -> None:
    no_placebos = example_explanation
    with Browser() as browser:
        pages = [
            _read(browser, e, tmp_path / f"{n}.html")
            for n, e in enumerate((patch_explanation, corner_explanation, no_placebos))
        ]
    for page, explanation in zip(pages, (patch_explanation, corner_explanation, no_placebos)):
        k, column = headline(explanation)
        assert page["cardFirst"], "the verdict card must come before every figure"
        assert page["title"] == f"Verdict for {LABELS[column]}"
        assert page["lead"] == f"reading: {explanation.reading}"
        (size_aware, placebo), (paper, permutation), (practical, size), (flips, n_flips) = page["rows"]
        assert size_aware.startswith("size-aware test (placebo)")
        assert paper == "permutation test (paper): an ordered, systematic response, however small"
        significant = bool(explanation.significant.reshape(-1)[k])
        assert permutation.startswith(("significant" if significant else "not significant") + ", p = ")
        assert practical.startswith("practical size") and size == explanation.practical.describe(column)
        assert n_flips == str(explanation.flips.n_flips)
        if explanation.placebo is None:
            assert placebo.startswith("not run")
            continue
        verdict = bool(explanation.verdict.reshape(-1)[k])
        assert placebo.startswith(("significant" if verdict else "not significant") + ", p = ")
        used = int(explanation.placebo.n_used.reshape(-1)[k])
        m = explanation.placebo.n_placebos
        assert (f"stopped after {used} of {m} placebos" in placebo) == (used < m)
    patch, corner = pages[0]["rows"][0][1], pages[1]["rows"][0][1]
    assert patch.startswith("significant") and patch.endswith("; 100 placebos")
    assert corner.startswith("not significant, p = 1 ") and "stopped after 1 of 100 placebos" in corner


@needs_chromium
def test_the_null_caption_says_what_the_observed_side_means(patch_explanation: Any, tmp_path: Path) -> None:
    null = patch_explanation.test.null_distribution[:, headline(patch_explanation)[0]]
    assert float(patch_explanation.score.reshape(-1).max()) < float(null.min())  # a smooth, ordered response
    with Browser() as browser:
        page = _read(browser, patch_explanation, tmp_path / "page.html")
    caption = page["nullCaption"]
    assert "Observed E|grad| left of the null: the outputs change more smoothly along the property" in caption
    assert "an ordered, systematic response, however small" in caption
    assert "An ordered response lies left of the null, a jagged one right of it" in caption
    ratio = float(patch_explanation.effect_size.reshape(-1)[headline(patch_explanation)[0]])
    assert ratio < 1  # the effect size beside it, in two digits with what its side of 1 means
    assert f"effect size: E|grad| / a random order's mean: {ratio:.2g} (1: no order; below 1: ordered" in page["text"]


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("pearson", "Observed |Pearson r| right of the null: the outputs follow the property more linearly"),
        ("vector_l2", "left of the null: the outputs change more smoothly along the property"),
    ],
)
def test_the_null_caption_follows_the_statistic(statistic: str, expected: str) -> None:
    explanation = _explain(colour_balance_net(), source_params={"position": (4, 4)}, statistic=statistic, n_placebos=0)
    assert expected in null_figure_caption(explanation, 0)


def test_a_response_the_order_does_not_explain_is_inside_the_null(corner_explanation: Any) -> None:
    caption = null_figure_caption(corner_explanation, headline(corner_explanation)[0])
    assert "inside the null: the outputs change along the property about as smoothly as the same outputs shuffled" in (
        caption
    )


@needs_chromium
def test_constant_maps_are_labelled_with_their_value(patch_explanation: Any, tmp_path: Path) -> None:
    maps = _hand_made_maps()
    with Browser() as browser:
        page = _read(browser, patch_explanation, tmp_path / "page.html", maps=maps)
    assert page["constant"] == [
        "zero before and after: constant map: all values = 0",
        "cancelling before and after: constant map: all values = 0 (the channels, summed as drawn, reach ±3e-05 "
        "but cancel at every pixel)",
        "flat_before before: constant map: all values = 1.5",
    ]
    figure = maps_figure(maps, LABELS)
    panels = {ax.get_title(): ax for ax in figure.axes if ": " in ax.get_title()}
    for title in ("zero: before", "zero: after", "cancelling: before", "flat_before: before"):
        texts = [t.get_text() for t in panels[title].texts]
        value = "1.5" if title.startswith("flat") else "0"
        assert texts == [f"constant map:\nall values = {value}"] and not panels[title].images, title
    for title in ("flat_before: after", "structured: before", "structured: after"):
        assert not panels[title].texts and len(panels[title].images) == 1, title


def test_guided_gradcam_of_the_example_model_is_labelled_not_blank(example_explanation: Any) -> None:
    maps, _ = compute_maps(colour_balance_net(), example_explanation, ["guided_gradcam"])
    assert float(np.abs(maps.maps["guided_gradcam"]).max()) > 0  # its channels are not zero ...
    assert maps.constant("guided_gradcam", 0) == maps.constant("guided_gradcam", -1) == 0.0  # ... but cancel
    page = explain_html(example_explanation, labels=LABELS, settings={}, provenance={}, maps=maps).render()
    assert "guided_gradcam before and after: constant map: all values = 0" in page


@needs_chromium
def test_one_output_has_one_name_in_the_cards_the_slider_and_the_maps(patch_explanation: Any, tmp_path: Path) -> None:
    maps, _ = compute_maps(RegionNet(4, 4), patch_explanation, ["occlusion"])
    _, column = headline(patch_explanation)
    name = LABELS[column]
    assert maps.target == column  # the maps explain the output the verdict card reads
    with Browser() as browser:
        page = _read(browser, patch_explanation, tmp_path / "page.html", maps=maps)
    assert page["title"] == f"Verdict for {name}"
    assert f"E|grad| of {name}" in page["text"]
    assert page["mapsCaption"] == f"Baseline maps of {name}"
    assert maps_figure(maps, LABELS).get_suptitle().startswith(f"attribution maps of {name},")
    assert set(page["sliderNames"]) <= set(LABELS)
    assert all(label.split("decision: ")[1].split(" ")[0] in LABELS for label in page["sliderLabels"])
    for other in ("class 0", "class 1", "output 0", "output 1"):
        assert other not in page["text"], other


@needs_chromium
def test_the_vignette_strength_is_shown_as_magnitudes_with_the_sign_in_words(tmp_path: Path) -> None:
    explanation = _explain(
        colour_balance_net(), "gaussian_vignette", source_params={"max_strength": -0.9}, n_placebos=0
    )
    assert explanation.sequence.metadata["strengths"][-1] == pytest.approx(-0.9)  # signed in the record only
    with Browser() as browser:
        page = _read(browser, explanation, tmp_path / "page.html")
    assert "Filmstrip: vignette strength from 0 to 0.9 strength, darkening" in page["text"]
    shown = page["text"].split("Settings, model and image")[0]
    assert "-0." not in shown and "−0." not in shown
    assert all("strength = -" not in label for label in page["sliderLabels"])
