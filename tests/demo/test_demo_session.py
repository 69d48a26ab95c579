"""The demo's building blocks without a server: the button's function, the parameter inputs, the models on offer."""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from typing import Literal

import pytest
import torch
from PIL import Image

from propgrad.cli.explain_report import verdict_rows
from propgrad.cli.model_loading import ImagePreparation
from propgrad.core.images import example_image, resize_shorter_side
from propgrad.demo.models import EXAMPLE_LABEL, LoadedModel, ModelCatalogue, cached_suite_models
from propgrad.demo.parameter_inputs import DEFAULT_CHOICE, parameter_input, source_inputs, source_params
from propgrad.demo.server import loopback_host
from propgrad.demo.session import DemoInputs, DemoRequest, draw, explain, run
from propgrad.errors import InvalidParameterError
from propgrad.example_model import CLASS_NAMES, colour_balance_net
from propgrad.explain.explainer import PropertyGradient
from propgrad.plugins.parameters import Parameters, parameter, parameter_specs, parse_cli_params
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.stats.settings import test_settings as make_test_settings

#: A small, quick explanation: 32 px, 8 steps, 200 shuffles, the placebo test on with 20 placebos.
SMALL = {
    "size": 32,
    "source": "gaussian_vignette",
    "params": {"steps": 8},
    "permutations": 200,
    "placebos": 20,
    "alpha": 0.1,
}


def pngs(page: str) -> list[Image.Image]:
    """Every picture inside an HTML part, decoded from its ``data:`` URI."""
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


@pytest.fixture(scope="module")
def catalogue() -> ModelCatalogue:
    return ModelCatalogue(suites=[])


def test_the_button_shows_the_librarys_verdict_curve_null_steps_and_maps(catalogue):
    view = explain(DemoInputs(model=EXAMPLE_LABEL, baselines=("integrated_gradients",), **SMALL), catalogue)
    # the same explanation computed directly with the library (placebo test on, 20 placebos)
    image = resize_shorter_side(example_image("chelsea"), 32)
    settings = make_test_settings(n_permutations=200, n_placebos=20, alpha=0.1, seed=0)
    expected = PropertyGradient(colour_balance_net()).attribute(
        image, source=GaussianVignetteSource(steps=8), settings=settings
    )
    for name, value in verdict_rows(expected, expected.top_index):
        assert f"<th>{html.escape(name)}</th><td>{html.escape(value)}</td>" in view.verdict
    assert html.escape(expected.reading) in view.verdict
    for part in (view.filmstrip, view.curve, view.null, view.maps):
        assert len(pngs(part)) == 1 and min(pngs(part)[0].size) > 50
    # one slider step per step: the 32 x 48 image enlarged 5x (256 // 48), its property value and outputs
    assert image.shape[1:] == (32, 48) and len(view.steps) == 8
    for k in (0, 5):
        step = view.step_html(k)
        assert pngs(step)[0].size == (48 * 5, 32 * 5)
        assert f"step {k + 1} of 8" in step and f"= {float(expected.values[k]):.4g} strength" in step
        warm = float(expected.outputs[k, 0])
        assert f"<td>warm</td><td>{warm:.4f}</td>" in step
    assert "step 8 of 8" in view.step_html(99)  # past the end: the last step


def test_figures_draw_labels_without_latex_or_mathtext(catalogue):
    """A label with an unclosed mathtext command would fail to draw if mathtext parsed it."""
    inputs = DemoInputs(model=EXAMPLE_LABEL, baselines=(), **SMALL)
    request = replace_labels(inputs, catalogue, ("$\\frac{$ warm", "cool"))
    view = draw(request, run(request))
    assert pngs(view.curve) and "$\\frac{$ warm" in view.verdict


def replace_labels(inputs: DemoInputs, catalogue: ModelCatalogue, labels: tuple[str, ...]) -> DemoRequest:
    from propgrad.demo.session import check_inputs

    request = check_inputs(inputs, catalogue)
    loaded = LoadedModel(request.loaded.model, labels, request.loaded.preparation)
    return DemoRequest(loaded, request.image, request.image_name, request.source, request.settings, ())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 100_000}, "image size"),
        ({"model": "no such model"}, "model must be one of 'example"),
        ({"baselines": ("nope",)}, "baseline 'nope'"),
        ({"params": {"steps": 1}}, "steps"),
        ({"params": {"sigma": "wide"}}, "sigma"),
        ({"photo": "lena"}, "photograph"),
        ({"test": "placebo"}, "test"),
    ],
)
def test_a_bad_input_is_one_line_naming_it(catalogue, change, message):
    inputs = DemoInputs(**{"model": EXAMPLE_LABEL, "baselines": (), **SMALL, **change})
    with pytest.raises(InvalidParameterError, match=re.escape(message)) as caught:
        explain(inputs, catalogue)
    assert "\n" not in str(caught.value)


def test_an_uploaded_image_is_read_from_its_file(catalogue, tmp_path):
    pixels = torch.zeros(40, 60, 3, dtype=torch.uint8)
    pixels[..., 0] = 230  # a red image: the example model says warm
    path = tmp_path / "red.png"
    Image.fromarray(pixels.numpy()).save(path)
    view = explain(DemoInputs(model=EXAMPLE_LABEL, upload=str(path), baselines=(), **SMALL), catalogue)
    assert pngs(view.step_html(0))[0].size == (48 * 5, 32 * 5)  # shorter side 32, 48 wide; enlarged 256 // 48 = 5x
    assert "decision: warm" in view.step_html(0)


@dataclass(frozen=True)
class DeclaredParams(Parameters):
    flag: bool = parameter(True, "a flag")
    maybe: bool | None = parameter(None, "a flag or None")
    steps: int = parameter(8, "steps", bounds="[2, 100]")
    share: float = parameter(0.5, "a share", bounds="(0, 1]")
    mode: Literal["fast", "slow"] = parameter("fast", "a choice")
    centre: tuple[float, float] | None = parameter(None, "(y, x)")
    width: float | None = parameter(None, "a width or None", bounds="(0, inf)")


def test_inputs_follow_the_declaration():
    inputs = {spec.name: parameter_input(spec) for spec in parameter_specs(DeclaredParams)}
    assert (inputs["flag"].kind, inputs["flag"].value) == ("checkbox", True)
    assert (inputs["maybe"].kind, inputs["maybe"].value) == ("menu", DEFAULT_CHOICE)
    assert inputs["maybe"].choices == ("true", "false", DEFAULT_CHOICE)
    steps = inputs["steps"]
    assert (steps.kind, steps.integer, steps.minimum, steps.maximum, steps.value) == ("number", True, 2, 100, 8)
    share = inputs["share"]
    assert (share.minimum, share.maximum, share.integer) == (None, 1, False)  # (0: exclusive, not a limit
    assert (inputs["mode"].kind, inputs["mode"].choices, inputs["mode"].value) == ("menu", ("fast", "slow"), "fast")
    assert (inputs["centre"].kind, inputs["centre"].value) == ("text", "")
    assert (inputs["width"].kind, inputs["width"].value) == ("number", None)
    assert "a share; allowed: (0, 1]" in share.info


def test_every_registered_source_gets_its_inputs():
    for name in ("alpha_patch", "gaussian_vignette"):
        assert [i.name for i in source_inputs(name)] == [s.name for s in parameter_specs(type_of(name))]


def type_of(name: str) -> type:
    from propgrad.plugins import get_source

    return get_source(name)


def test_values_are_read_as_the_command_line_reads_them():
    values = {"steps": 8.0, "sigma": 0.5, "center": "0.3, 0.7", "mask": "", "max_strength": None}
    expected = parse_cli_params("gaussian_vignette", ["steps=8", "sigma=0.5", "center=0.3, 0.7"])
    assert source_params("gaussian_vignette", values) == expected
    assert expected["center"] == (0.3, 0.7) and expected["steps"] == 8
    with pytest.raises(InvalidParameterError, match="steps"):
        source_params("gaussian_vignette", {"steps": 0})


def test_models_on_offer_without_training(tmp_path):
    assert cached_suite_models(tmp_path, ["fur"]) == []  # nothing cached: no suite model offered
    from propgrad.suites.fur import FurSuite

    suite = FurSuite(quick=True, cache_dir=tmp_path)
    for split in suite.training_splits[:-1]:
        (suite.cache_path / f"model_{split}.pt").parent.mkdir(parents=True, exist_ok=True)
        (suite.cache_path / f"model_{split}.pt").write_bytes(b"")
    assert cached_suite_models(tmp_path, ["fur"]) == []  # one model missing: it would need training
    (suite.cache_path / f"model_{suite.training_splits[-1]}.pt").write_bytes(b"")
    names = [entry.name for entry in cached_suite_models(tmp_path, ["fur"])]
    assert names == [f"suite fur (quick): {split}" for split in suite.training_splits]


def test_a_launch_spec_comes_first_with_its_labels():
    catalogue = ModelCatalogue("propgrad.example_model:colour_balance_net", suites=[])
    assert catalogue.names == ["--model propgrad.example_model:colour_balance_net", EXAMPLE_LABEL]
    loaded = catalogue.get(catalogue.names[0])
    assert loaded.labels == tuple(CLASS_NAMES) and loaded.preparation == ImagePreparation(size=128)
    assert catalogue.get(catalogue.names[0]) is loaded  # loaded once


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_are_served(host):
    assert loopback_host(host) in ("127.0.0.1", "::1", "127.0.0.2")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", ""])
def test_other_hosts_are_refused(host):
    with pytest.raises(InvalidParameterError, match="loopback address only"):
        loopback_host(host)
