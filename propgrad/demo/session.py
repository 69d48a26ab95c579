"""What the demo's button does, without Gradio: check the inputs once, explain, draw the page's parts.

:func:`explain` takes the page's inputs (:class:`DemoInputs`), checks them into one
:class:`DemoRequest` (a bad value is a one-line :class:`~propgrad.errors.PropgradError`), runs
:meth:`propgrad.PropertyGradient.attribute` and draws what the explain report draws, with the same
builders (:mod:`propgrad.cli.explain_report`): the verdict card's rows, the filmstrip, the
behaviour curve, the permutation null with its caption and the baselines' maps. Every picture is
an in-memory PNG inside the returned HTML (a ``data:`` URI): nothing is written to disk, so no file
of one user's session is ever served to another. Figures are drawn without LaTeX and without
mathtext (a ``$`` in a label stays a ``$``).
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from propgrad.cli.model_loading import ImagePreparation
from propgrad.core.validation import check_choice, check_int
from propgrad.demo.models import LoadedModel, ModelCatalogue
from propgrad.demo.parameter_inputs import source_params
from propgrad.errors import InvalidParameterError, PropgradWarning

TESTS = ("both", "permutation")
"""The size-aware placebo test beside the paper's permutation test, or the paper's test alone."""
DEFAULT_BASELINES = ("integrated_gradients", "deeplift")
"""The maps drawn unless the page says otherwise: two gradient baselines, seconds on a CPU."""
MAX_SIZE = 512
"""Largest image side the demo explains (a CPU explains a 512 px image in minutes, not hours)."""
NO_LATEX = {"text.usetex": False, "text.parse_math": False}
"""Matplotlib settings of every figure: no LaTeX, no mathtext (labels are drawn as written)."""

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoInputs:
    """The page's inputs, as the page gives them (checked by :func:`check_inputs`).

    Attributes:
        model: A name of the model menu (:attr:`ModelCatalogue.names`).
        photo: A scikit-image photograph (:data:`propgrad.core.images.EXAMPLE_IMAGES`), used without an upload.
        upload: The path of an uploaded image file, or None.
        size: Resize the image's shorter side to this many pixels (with the model's centre crop
            resized alike); 0 keeps the model's own preparation.
        source: A registered source name.
        params: The source's parameter inputs by name (empty: the default).
        test: ``both`` or ``permutation`` (:data:`TESTS`).
        permutations: Shuffles of the permutation test.
        placebos: Placebo sequences of the size-aware test (``test="both"``).
        alpha: Significance level.
        statistic: The test statistic (``gradient``, ``pearson``, ``vector_l1``, ``vector_l2``).
        seed: Seed of the source's random choices, the shuffles and the placebos.
        baselines: Registered baselines whose maps are drawn (empty: none).
    """

    model: str
    photo: str = "chelsea"
    upload: str | None = None
    size: int = 0
    source: str = "alpha_patch"
    params: Mapping[str, Any] = field(default_factory=dict)
    test: str = "both"
    permutations: int = 1000
    placebos: int = 100
    alpha: float = 0.01
    statistic: str = "gradient"
    seed: int = 0
    baselines: Sequence[str] = DEFAULT_BASELINES


@dataclass(frozen=True)
class DemoRequest:
    """Checked inputs: what :func:`run` explains.

    Attributes:
        loaded: The model, its labels and its image preparation.
        image: The prepared image (3, H, W) in [0, 1].
        image_name: What the page calls the image.
        source: The intervention source instance.
        settings: The test's settings (:func:`propgrad.stats.settings.test_settings`).
        baselines: The baselines whose maps are drawn.
    """

    loaded: LoadedModel
    image: Any
    image_name: str
    source: Any
    settings: Any
    baselines: tuple[str, ...]


@dataclass(frozen=True)
class StepView:
    """One step of the slider: the image (PNG), a caption and the outputs (name, value, decision mark)."""

    png: bytes
    caption: str
    rows: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class DemoView:
    """Everything the page shows after an explanation (HTML with the pictures inside).

    Attributes:
        verdict: The verdict card (both tests, the practical size, the flips) and the summary.
        filmstrip: The filmstrip of the intervention.
        curve: The behaviour curve with the flips.
        null: The permutation null distribution with its caption.
        maps: The baselines' maps before and after (or why there are none).
        steps: The slider's steps (at most ``MAX_SLIDER_FRAMES``, evenly spaced, first and last kept).
    """

    verdict: str
    filmstrip: str
    curve: str
    null: str
    maps: str
    steps: tuple[StepView, ...]

    def step_html(self, index: int) -> str:
        """The slider's step ``index`` (clipped to the steps there are): the image, caption and outputs."""
        step = self.steps[max(0, min(int(index), len(self.steps) - 1))]
        from propgrad.core.html_report import png_data_uri

        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{value}</td><td>{mark}</td></tr>" for name, value, mark in step.rows
        )
        return (
            f'<figure><img src="{png_data_uri(step.png)}" alt="{html.escape(step.caption)}" '
            f'style="image-rendering: pixelated"><figcaption>{html.escape(step.caption)}</figcaption></figure>'
            f"<table><tr><th>output</th><th>value</th><th>decision</th></tr>{rows}</table>"
        )


def check_inputs(inputs: DemoInputs, catalogue: ModelCatalogue) -> DemoRequest:
    """The page's inputs checked once into a :class:`DemoRequest` (the model is loaded here).

    Raises:
        InvalidParameterError: a value out of range or unknown (the message names the input and what
            was expected), a source parameter its declaration refuses.
        InputFileError: an upload that is not a readable image.
    """
    from propgrad.cli.explain import prepare_image
    from propgrad.core.images import EXAMPLE_IMAGES, example_image, load_image
    from propgrad.explain.arguments import resolve_source
    from propgrad.plugins import list_baselines, list_sources
    from propgrad.stats.settings import test_settings

    source_name = check_choice(inputs.source, "source", tuple(list_sources()))
    test = check_choice(inputs.test, "test", TESTS)
    size = check_int(inputs.size, "image size", minimum=0, maximum=MAX_SIZE, hint="0 keeps the model's own size")
    unknown = [name for name in inputs.baselines if name not in list_baselines()]
    if unknown:
        raise InvalidParameterError(f"baseline {unknown[0]!r} is not one of {', '.join(list_baselines())}")
    placebos = check_int(inputs.placebos, "placebos", minimum=1) if test == "both" else 0
    settings = test_settings(
        n_permutations=inputs.permutations,
        alpha=inputs.alpha,
        statistic=inputs.statistic,
        seed=inputs.seed,
        n_placebos=placebos,
    )
    source = resolve_source(source_name, source_params(source_name, inputs.params))
    loaded = catalogue.get(inputs.model)
    preparation = _sized(loaded.preparation, size)
    if inputs.upload:
        image, name = load_image(inputs.upload), "the uploaded image"
    else:
        photo = check_choice(inputs.photo, "photograph", EXAMPLE_IMAGES)
        image, name = example_image(photo), f"skimage:{photo}"
    image = prepare_image(image, preparation, "the model's crop")
    return DemoRequest(loaded, image, name, source, settings, tuple(dict.fromkeys(inputs.baselines)))


def _sized(preparation: ImagePreparation, size: int) -> ImagePreparation:
    """The model's preparation with the shorter side resized to ``size`` (its square crop alike); 0: unchanged."""
    if size == 0:
        return preparation
    return replace(preparation, size=size, crop=None if preparation.crop is None else (size, size))


def explain(inputs: DemoInputs, catalogue: ModelCatalogue, progress: Progress | None = None) -> DemoView:
    """Check the inputs, explain the image and draw the page (the demo's button).

    Args:
        inputs: The page's inputs.
        catalogue: The models on offer.
        progress: Called with (fraction done, what is running) before each stage.

    Returns:
        The page's parts; propgrad's warnings during the explanation are appended to the verdict.

    Raises:
        PropgradError: a bad input (one line naming it).
    """
    report = progress or (lambda fraction, text: None)
    report(0.0, "loading the model and the image")
    request = check_inputs(inputs, catalogue)
    report(0.1, f"intervening with {inputs.source} and running the test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PropgradWarning)
        explanation = run(request)
    report(0.6, "computing the baselines' maps" if request.baselines else "drawing")
    view = draw(request, explanation, report)
    notes = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, PropgradWarning))
    return replace(view, verdict=view.verdict + "".join(f"<p>warning: {html.escape(n)}</p>" for n in notes))


def run(request: DemoRequest) -> Any:
    """The explanation of the request's image (:meth:`propgrad.PropertyGradient.attribute`, every column)."""
    from propgrad.cli.explain import model_preprocess
    from propgrad.explain.explainer import PropertyGradient

    explainer = PropertyGradient(request.loaded.model, preprocess=model_preprocess(request.loaded.preparation))
    return explainer.attribute(request.image, source=request.source, settings=request.settings)


def draw(request: DemoRequest, explanation: Any, progress: Progress | None = None) -> DemoView:
    """The page's parts for an explanation, drawn by the explain report's builders."""
    from matplotlib import rc_context

    from propgrad.cli.explain_report import (
        behaviour_figure,
        filmstrip_figure,
        headline,
        null_figure,
        null_figure_caption,
        output_name,
        verdict_rows,
    )

    labels = request.loaded.labels
    k, column = headline(explanation)
    with rc_context(NO_LATEX):
        maps = _maps_html(request, explanation)
        if progress is not None:
            progress(0.9, "drawing")
        rows = "".join(
            f"<tr><th>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>" for n, v in verdict_rows(explanation, k)
        )
        verdict = (
            f"<h3>Verdict for {html.escape(output_name(column, labels))}</h3>"
            f"<p><b>reading:</b> {html.escape(explanation.reading)}</p><table>{rows}</table>"
            f'<pre style="white-space: pre-wrap">{html.escape(explanation.summary(labels))}</pre>'
        )
        seq = explanation.sequence
        return DemoView(
            verdict=verdict,
            filmstrip=_figure_html(filmstrip_figure(explanation), f"filmstrip of {seq.property_name}"),
            curve=_figure_html(behaviour_figure(explanation, labels), "outputs along the intervention"),
            null=_figure_html(null_figure(explanation, k), null_figure_caption(explanation, k)),
            maps=maps,
            steps=steps(explanation, labels),
        )


def _figure_html(fig: Any, caption: str) -> str:
    from propgrad.core.html_report import figure_png, png_data_uri

    return (
        f'<figure><img src="{png_data_uri(figure_png(fig))}" alt="{html.escape(caption)}" style="max-width: 100%">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _maps_html(request: DemoRequest, explanation: Any) -> str:
    """The baselines' maps before and after (:func:`propgrad.cli.explain_report.compute_maps`), or why none."""
    from torch import nn

    from propgrad.cli.explain import model_preprocess
    from propgrad.cli.explain_report import compute_maps, constant_maps, maps_figure

    if not request.baselines:
        return "<p>No baselines chosen.</p>"
    model, preprocess = request.loaded.model, model_preprocess(request.loaded.preparation)
    if preprocess is not None and isinstance(model, nn.Module):
        model = nn.Sequential(preprocess, model)
    try:
        maps, _ = compute_maps(model, explanation, request.baselines)
    except Exception as exc:  # noqa: BLE001 - the verdict stands without maps; the page says why
        return f"<p>No attribution maps: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
    parts = []
    if maps is not None and maps.maps:
        parts.append(_figure_html(maps_figure(maps, request.loaded.labels), "baseline maps before and after"))
        parts += [f"<p>{html.escape(line)}</p>" for line in constant_maps(maps)]
    if maps is not None and maps.failures:
        parts += [f"<p>{html.escape(name)} failed: {html.escape(error)}</p>" for name, error in maps.failures.items()]
    return "".join(parts) or "<p>No attribution maps.</p>"


def steps(explanation: Any, labels: Sequence[str] | None) -> tuple[StepView, ...]:
    """The slider's steps: every step's image (enlarged to about ``SLIDER_WIDTH`` pixels), its property
    value and decision, and the outputs that change most (the explained one with a target)."""
    import numpy as np
    import torch

    from propgrad.cli.explain_report import MAX_SLIDER_FRAMES, SLIDER_WIDTH, output_name
    from propgrad.core.html_report import array_png

    seq, outputs = explanation.sequence, explanation.outputs
    n = len(seq)
    shown = np.unique(np.linspace(0, n - 1, min(n, MAX_SLIDER_FRAMES)).round().astype(int)).tolist()
    scale = max(1, SLIDER_WIDTH // max(int(seq.images.shape[-1]), 1))
    if explanation.target is not None:
        columns = [int(explanation.target)]
    else:
        columns = torch.argsort(outputs.max(0).values - outputs.min(0).values, descending=True)[:8].tolist()
    decisions = explanation.flips.decisions.tolist()
    flips = set(explanation.flips.flip_steps.tolist())
    views = []
    for k in shown:
        flip = " (the decision flips here)" if k in flips else ""
        caption = (
            f"step {k + 1} of {n}: {seq.property_name} = {float(seq.values[k]):.4g} {seq.unit}; "
            f"decision: {output_name(decisions[k], labels)}{flip}"
        )
        rows = tuple(
            (output_name(j, labels), f"{float(outputs[k, j]):.4f}", "◀" if j == decisions[k] else "") for j in columns
        )
        views.append(StepView(array_png(seq.images[k], scale=scale), caption, rows))
    return tuple(views)
