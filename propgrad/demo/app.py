"""The demo's page: Gradio Blocks laid out around :func:`propgrad.demo.session.explain`.

A source's parameters are one group of inputs per registered source, built from its declaration
(:mod:`propgrad.demo.parameter_inputs`); the group of the chosen source shows. Each user's result
stays in that user's session (``gr.State``); every picture is sent inside the HTML. An upload is
the only file: Gradio keeps it in the server's own temporary folder
(:func:`propgrad.demo.server.private_temp_folder`), and a session's uploads are deleted when its
page closes.

This module imports Gradio: :func:`propgrad.demo.server.serve` imports it after checking that
Gradio is installed and switching its analytics off.
"""

from __future__ import annotations

import inspect
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from propgrad.demo.models import ModelCatalogue
from propgrad.demo.parameter_inputs import ParameterInput, source_inputs
from propgrad.demo.session import DEFAULT_BASELINES, MAX_SIZE, TESTS, DemoInputs, explain
from propgrad.errors import PropgradError

TITLE = "propgrad demo"
INTRO = """# propgrad demo
Pick a photograph or upload an image, choose an intervention source and a model, and press **Explain**.
The source changes one property of the image step by step; the model runs on every step, and two tests
read the change of its outputs: the size-aware placebo test (is the response larger than an arbitrary
change of the image of the same size?) and the paper's permutation test (is it ordered, however small?).
"""


@dataclass
class SessionUploads:
    """The uploaded files of every open session, deleted when its page closes."""

    folder: Path
    paths: dict[str, set[Path]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, session: str | None, path: str | None) -> None:
        """Note an upload of ``session`` (a file inside the server's folder)."""
        if session and path and Path(path).resolve().is_relative_to(self.folder.resolve()):
            with self.lock:
                self.paths.setdefault(session, set()).add(Path(path).resolve())

    def forget(self, session: str | None) -> None:
        """Delete the uploads of ``session`` (and the folders Gradio made for them)."""
        with self.lock:
            paths = self.paths.pop(session or "", set())
        for path in paths:
            path.unlink(missing_ok=True)
            if path.parent != self.folder.resolve() and path.parent.is_dir() and not any(path.parent.iterdir()):
                path.parent.rmdir()


def build_app(catalogue: ModelCatalogue, upload_folder: Path) -> Any:
    """The page: inputs on the left, the verdict and pictures on the right (a ``gr.Blocks``).

    Args:
        catalogue: The models on offer.
        upload_folder: Gradio's temporary folder of this server (uploads are deleted per session).
    """
    from propgrad.core.images import EXAMPLE_IMAGES
    from propgrad.plugins import list_baselines, list_sources

    sources = list(list_sources())
    baselines = list(list_baselines())
    uploads = SessionUploads(Path(upload_folder))
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                model = gr.Dropdown(catalogue.names, value=catalogue.names[0], label="model")
                photo = gr.Dropdown(list(EXAMPLE_IMAGES), value=EXAMPLE_IMAGES[0], label="photograph (scikit-image)")
                upload = gr.Image(
                    type="filepath", sources=["upload"], label="or upload an image (used instead of the photograph)"
                )
                size = gr.Number(
                    0,
                    precision=0,
                    minimum=0,
                    maximum=MAX_SIZE,
                    label="image size (pixels)",
                    info="resize the shorter side to this size; 0: the model's own (64 for the example model)",
                )
                source = gr.Dropdown(
                    sources, value="alpha_patch" if "alpha_patch" in sources else sources[0], label="source"
                )
                groups, params = [], []
                for name in sources:
                    with gr.Group(visible=name == source.value) as group:
                        inputs = source_inputs(name)
                        if not inputs:
                            gr.Markdown(f"`{name}` takes no parameters.")
                        params += [(name, spec.name, _component(spec)) for spec in inputs]
                    groups.append(group)
                with gr.Accordion("the test", open=False):
                    test = gr.Radio(list(TESTS), value="both", label="tests", info="both: the size-aware test too")
                    permutations = gr.Number(1000, precision=0, minimum=1, label="shuffles of the permutation test")
                    placebos = gr.Number(100, precision=0, minimum=1, label="placebo sequences (size-aware test)")
                    alpha = gr.Number(0.01, minimum=0, maximum=1, label="significance level alpha")
                    statistic = gr.Dropdown(_statistics(), value="gradient", label="statistic")
                    seed = gr.Number(0, precision=0, minimum=0, label="seed")
                chosen = gr.CheckboxGroup(
                    baselines, value=[b for b in DEFAULT_BASELINES if b in baselines], label="baselines' maps"
                )
                run = gr.Button("Explain", variant="primary")
            with gr.Column(scale=3):
                verdict = gr.HTML("<p>The verdict shows here.</p>", label="verdict")
                filmstrip = gr.HTML(label="the intervention")
                slider = gr.Slider(0, 1, value=0, step=1, label="step", visible=False)
                step = gr.HTML(label="the image and the outputs at the step")
                curve = gr.HTML(label="behaviour")
                null = gr.HTML(label="permutation null")
                maps = gr.HTML(label="attribution maps")
        view = gr.State(None)

        source.change(
            lambda chosen: [gr.update(visible=chosen == n) for n in sources],
            source,
            groups,
            api_visibility="private",
            show_progress="hidden",
        )

        page_inputs = [model, photo, upload, size, source, test, permutations, placebos, alpha, statistic, seed, chosen]
        page_inputs += [component for _, _, component in params]
        on_explain = explain_handler(
            catalogue, uploads, [(owner, name) for owner, name, _ in params], [c.value for c in page_inputs]
        )
        run.click(
            on_explain,
            page_inputs,
            [verdict, filmstrip, slider, step, curve, null, maps, view],
            api_name="explain",
        )

        def on_step(result: Any, index: Any) -> str:
            return "" if result is None else result.step_html(_whole(index))

        slider.change(on_step, [view, slider], step, api_name="step", show_progress="hidden")

        def on_close(request: gr.Request) -> None:
            uploads.forget(getattr(request, "session_hash", None))

        app.unload(on_close)
    return app


PAGE_INPUTS = (
    "model",
    "photo",
    "upload",
    "size",
    "source",
    "test",
    "permutations",
    "placebos",
    "alpha",
    "statistic",
    "seed",
    "baselines",
)
"""The explain button's first inputs, by name (its API's parameters, before the sources' ``SOURCE__PARAMETER``)."""


def explain_handler(
    catalogue: ModelCatalogue,
    uploads: SessionUploads,
    params: Sequence[tuple[str, str]],
    defaults: Sequence[Any],
) -> Callable[..., tuple[Any, ...]]:
    """The explain button's function: the page's values -> the verdict, the pictures, the slider and the result.

    Its signature names every input (:data:`PAGE_INPUTS`, then ``SOURCE__PARAMETER`` for each
    source's parameter, in ``params``' order), so the page's API takes them by name:
    ``Client(url).predict(model=..., gaussian_vignette__steps=8, api_name="/explain")``, each
    defaulting to its input's initial value (``defaults``, in the same order). Only the chosen
    source's parameters are read. A bad input is a one-line ``gr.Error`` on the page.
    """
    names = [*PAGE_INPUTS, *(api_name(owner, name) for owner, name in params)]

    def on_explain(*values: Any) -> tuple[Any, ...]:
        *given, request, progress = values
        page = dict(zip(PAGE_INPUTS, given))
        values_of = zip(params, given[len(PAGE_INPUTS) :])
        chosen = {name: value for (owner, name), value in values_of if owner == page["source"]}
        uploads.remember(getattr(request, "session_hash", None), page["upload"])
        inputs = DemoInputs(
            model=page["model"],
            photo=page["photo"],
            upload=page["upload"],
            size=_whole(page["size"]),
            source=page["source"],
            params=chosen,
            test=page["test"],
            permutations=_whole(page["permutations"]),
            placebos=_whole(page["placebos"]),
            alpha=page["alpha"],
            statistic=page["statistic"],
            seed=_whole(page["seed"]),
            baselines=tuple(page["baselines"] or ()),
        )
        try:
            result = explain(inputs, catalogue, lambda fraction, text: progress(fraction, desc=text))
        except PropgradError as exc:
            raise gr.Error(" ".join(str(exc).split()), print_exception=False) from None
        last = len(result.steps) - 1
        return (
            result.verdict,
            result.filmstrip,
            gr.update(minimum=0, maximum=max(last, 1), value=0, visible=True, label=f"step (0 to {last})"),
            result.step_html(0),
            result.curve,
            result.null,
            result.maps,
            result,
        )

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    on_explain.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, positional, default=value) for name, value in zip(names, defaults, strict=True)]
        + [inspect.Parameter("request", positional, default=None)]
        + [inspect.Parameter("progress", positional, default=gr.Progress())]
    )
    on_explain.__annotations__ = {"request": gr.Request}  # Gradio passes the request (the session) by this type
    return on_explain


def api_name(source: str, parameter: str) -> str:
    """The API's name of a source's parameter: ``SOURCE__PARAMETER`` (anything but letters, digits and _ as _)."""
    return re.sub(r"\W", "_", f"{source}__{parameter}")


def _whole(value: Any) -> Any:
    """A whole number from a number field (which may hand back 3.0); anything else unchanged (checked later)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _statistics() -> list[str]:
    from propgrad.stats.defaults import STATISTIC_NAMES

    return list(STATISTIC_NAMES)


def _component(spec: ParameterInput) -> Any:
    """The Gradio input of one declared parameter."""
    if spec.kind == "checkbox":
        return gr.Checkbox(spec.value, label=spec.label, info=spec.info)
    if spec.kind == "menu":
        return gr.Dropdown(list(spec.choices), value=spec.value, label=spec.label, info=spec.info)
    if spec.kind == "number":
        return gr.Number(
            spec.value,
            label=spec.label,
            info=spec.info,
            minimum=spec.minimum,
            maximum=spec.maximum,
            precision=0 if spec.integer else None,
        )
    return gr.Textbox(spec.value, label=spec.label, info=spec.info, placeholder="empty: the default")
