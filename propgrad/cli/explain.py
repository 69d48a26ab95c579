"""``propgrad explain``: explain one image with one intervention source."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

from propgrad.errors import InvalidParameterError

EXAMPLE_MODEL = "propgrad.example_model:colour_balance_net"


def add_parser(sub: Any) -> None:
    """Register the ``explain`` sub-command."""
    p = sub.add_parser(
        "explain",
        help="explain one image: intervene on a property and test how strongly it drives the model",
        description="Intervene gradually on one property of an image, run the model on every step and "
        "report the expected property gradient magnitude, its permutation-test p-value and the decision flips.",
    )
    p.add_argument(
        "--model",
        default=EXAMPLE_MODEL,
        help=f"'package.module:callable', a TorchScript file, or 'clip:PATH_OR_ID' (a Hugging Face CLIP folder or "
        f"id, with --descriptors) (default: {EXAMPLE_MODEL})",
    )
    p.add_argument(
        "--descriptors",
        metavar="FILE.json",
        help='for --model clip:...: a JSON object {"class name": ["descriptor 1", ...], ...}, equally many '
        "descriptors per class; one output column per descriptor, aggregated per class",
    )
    p.add_argument(
        "--true-class",
        help="ground-truth class of a zero-shot model, for the per-class plot's marked minima and maxima "
        "(default: the class with the highest mean similarity on the original image)",
    )
    p.add_argument("--weights", help="state-dict checkpoint for the model (loaded with weights_only=True)")
    p.add_argument(
        "--image",
        help="image file, or 'skimage:NAME' for a photograph bundled with scikit-image (default: the source's "
        "reference image when it has one, e.g. rendered_rotation's unrotated object, else skimage:chelsea)",
    )
    p.add_argument(
        "--size", type=int, default=128, help="resize the image's shorter side to this many pixels (0: keep)"
    )
    p.add_argument("--source", default="alpha_patch", help="intervention source (see 'propgrad plugins')")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="source parameter, repeatable; values are Python literals (numbers, lists, strings)",
    )
    p.add_argument("--target", type=int, help="output column to explain (default: every column)")
    p.add_argument("--labels", help="comma-separated names of the output columns, one per column")
    p.add_argument("--permutations", type=int, default=10_000, help="permutations of the significance test")
    p.add_argument(
        "--per",
        default="step",
        choices=("step", "unit"),
        help="score per discrete step (the paper's convention) or per unit of the property values",
    )
    p.add_argument("--alpha", type=float, default=0.01, help="significance level")
    p.add_argument(
        "--output-transform",
        choices=("softmax", "sigmoid", "none"),
        help="default: softmax, or none (raw cosine similarities) for a zero-shot --model clip:...",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda, cuda:1, mps ...")
    p.add_argument(
        "--out", type=Path, help="folder for the plots, the filmstrip, a JSON record and a self-contained report.html"
    )
    p.add_argument(
        "--report-baselines",
        nargs="+",
        metavar="NAME",
        help="attribution baselines whose maps before and after the report.html of --out shows (default: every "
        "registered one; 'none' for none)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` pairs; values are Python literals, anything else stays a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InvalidParameterError(f"--param {pair!r}: expected KEY=VALUE with KEY a parameter name")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = raw
    return params


def load_input_image(spec: str, size: int) -> Any:
    """Load ``--image``: a file or ``skimage:NAME``, resized so the shorter side is ``size``."""
    from propgrad.core.images import example_image, load_image, resize

    if size < 0:
        raise InvalidParameterError(f"--size must be a positive number of pixels or 0 to keep the size, got {size}")
    image = example_image(spec.split(":", 1)[1]) if spec.startswith("skimage:") else load_image(spec)
    if not size:
        return image
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    return resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def run(args: argparse.Namespace) -> int:
    """Run the explanation and print (and optionally save) it."""
    from propgrad.cli.model_loading import load_model
    from propgrad.core.forward import run_model
    from propgrad.core.validation import check_device
    from propgrad.explain.arguments import resolve_source
    from propgrad.explain.explainer import PropertyGradient
    from propgrad.plugins.parameters import parse_cli_params  # by the source's declared types, or as literals
    from propgrad.stats.settings import test_settings

    device = check_device(args.device, "--device")
    report_baselines = report_baseline_names(args)  # before the model loads and the test runs
    model = load_model(
        args.model, args.weights, device=device, descriptors=args.descriptors, show_progress=not args.no_progress
    )
    source = resolve_source(args.source, parse_cli_params(args.source, args.param))
    image = _input_image(args.image, args.size, source).to(device)
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else _default_labels(args.model, model)
    if labels is not None:  # before the sequence and the test: one forward pass tells the outputs
        check_labels(labels, run_model(model, image[None]).shape[1], given=bool(args.labels))
    if args.true_class is not None:  # before the sequence and the test
        _check_true_class(args.true_class, model)
    explainer = PropertyGradient(
        model, output_transform=args.output_transform, batch_size=args.batch_size, show_progress=not args.no_progress
    )
    explanation = explainer.attribute(
        image,
        source=source,
        target=args.target,
        n_permutations=args.permutations,
        alpha=args.alpha,
        seed=args.seed,
        settings=test_settings(per=args.per),
    )
    print(explanation.summary(labels))
    if args.out:
        written = explanation.save(args.out, labels=labels, true_class=args.true_class)
        written += _write_report(args, explanation, model, labels, device, written, report_baselines)
        for path in dict.fromkeys(written):
            print(f"wrote {path}")
    return 0


def report_baseline_names(args: argparse.Namespace) -> list[str] | None:
    """The baselines of ``--report-baselines`` (every registered one if not given), checked before any work.

    Returns:
        Their registered names, or None without ``--out`` (no report is written).

    Raises:
        InvalidParameterError: ``--report-baselines`` without ``--out``, or ``none`` combined with names.
        UnknownNameError: A name no plugin registered (the registry's error lists the known ones).
    """
    from propgrad.plugins import get_baseline, list_baselines

    names = getattr(args, "report_baselines", None)
    if not getattr(args, "out", None):
        if names is not None:
            raise InvalidParameterError(
                f"--report-baselines {' '.join(names)} needs --out FOLDER: the maps are shown in FOLDER/report.html, "
                "which is written only with --out"
            )
        return None
    if names is None:
        return list(list_baselines())
    lowered = [n.lower() for n in names]
    if lowered == ["none"]:
        return []
    if "none" in lowered:
        raise InvalidParameterError(f"--report-baselines: 'none' cannot be combined with baseline names, got {names}")
    return [get_baseline(n).name or n for n in dict.fromkeys(names)]


def _write_report(
    args: argparse.Namespace,
    explanation: Any,
    model: Any,
    labels: list[str] | None,
    device: Any,
    written: list[Path],
    names: list[str] | None,
) -> list[Path]:
    """report.html beside the saved files, with the maps of ``--report-baselines`` (see ``explain_report``)."""
    from propgrad.cli.explain_report import write_explain_report

    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("run", "func") and not callable(v)}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    return write_explain_report(
        args.out,
        explanation,
        model=model,
        labels=labels,
        settings=settings,
        baselines=names or [],
        device=str(device),
        written=written,
    )


def _input_image(spec: str | None, size: int, source: Any) -> Any:
    """``--image``, or without it the source's ``reference_image()`` (the object before the intervention) or chelsea.

    A source that renders its own frames (``rendered_rotation``) ignores the image's pixels; its
    reference image makes the "original" the model's decision is compared with the unrotated object.
    """
    if spec is not None:
        return load_input_image(spec, size)
    reference = getattr(source, "reference_image", None)
    if callable(reference):
        if size < 0:
            raise InvalidParameterError(f"--size must be a positive number of pixels or 0 to keep the size, got {size}")
        own_size = getattr(source, "image_size", None)  # a size given with --param image_size wins
        return reference(None if own_size is not None or not size else size)
    return load_input_image("skimage:chelsea", size)


def check_labels(labels: list[str], n_outputs: int, *, given: bool = True) -> list[str]:
    """Refuse ``--labels`` that do not name each of the model's ``n_outputs`` output columns once.

    Raises:
        InvalidParameterError: another number of labels than outputs (naming both counts), or an empty label.
    """
    option = "--labels" if given else "the model's default labels"
    if len(labels) != n_outputs:
        raise InvalidParameterError(
            f"{option} gives {len(labels)} label{'s' if len(labels) != 1 else ''} ({','.join(labels)}) but the model "
            f"has {n_outputs} output{'s' if n_outputs != 1 else ''}; give one comma-separated name per output column"
        )
    if given and not all(labels):
        raise InvalidParameterError(
            f"--labels has an empty name at position {labels.index('') + 1}: {','.join(labels)!r}"
        )
    return labels


def _default_labels(model_spec: str, model: Any = None) -> list[str] | None:
    if model_spec == EXAMPLE_MODEL:
        from propgrad.example_model import CLASS_NAMES

        return list(CLASS_NAMES)
    from propgrad.explain.zero_shot import ClassGrouping

    grouping = getattr(model, "class_grouping", None)  # a zero-shot model names its columns
    if isinstance(grouping, ClassGrouping) and grouping.column_labels is not None:
        return list(grouping.column_labels)
    return None


def _check_true_class(name: str, model: Any) -> None:
    """Refuse ``--true-class`` for a model without classes, or a name that is not one of them."""
    from propgrad.explain.zero_shot import ClassGrouping

    grouping = getattr(model, "class_grouping", None)
    if not isinstance(grouping, ClassGrouping):
        raise InvalidParameterError(
            "--true-class needs a model with classes of several descriptors (--model clip:... --descriptors)"
        )
    if name not in grouping.class_names:
        shown = ", ".join(repr(n) for n in grouping.class_names[:10]) + (" ..." if grouping.n_classes > 10 else "")
        raise InvalidParameterError(
            f"--true-class {name!r} is not one of the {grouping.n_classes} classes of --descriptors ({shown})"
        )
