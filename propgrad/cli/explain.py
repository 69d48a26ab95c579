"""``propgrad explain``: explain one image with one intervention source.

The test options map onto :meth:`propgrad.PropertyGradient.attribute`'s keywords and
:class:`~propgrad.stats.settings.TestSettings` (built once, by
:func:`propgrad.stats.settings.test_settings`); the image options prepare the image the source
intervenes on (resize, centre crop, both on the [0, 1] image) and the model's input
normalisation (``PropertyGradient(model, preprocess=Normalize(mean, std))``), read from the image
processor of a ``--model hf:...`` unless given.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from propgrad.cli.model_loading import ImagePreparation
from propgrad.errors import InvalidParameterError
from propgrad.stats.corrections import METHODS
from propgrad.stats.defaults import DEFAULT_PLACEBOS, DEFAULT_STREAM, PLACEBO_VARIANTS, STATISTIC_NAMES, STREAMS

if TYPE_CHECKING:
    from propgrad.stats.settings import TestSettings

EXAMPLE_MODEL = "propgrad.example_model:colour_balance_net"
DEFAULT_SIZE = 128
"""``--size`` of a model that does not say what it eats (an ``hf:`` model's image processor does)."""
TESTS = ("both", "permutation")
"""``--test``: the size-aware placebo test beside the paper's permutation test, or the paper's test alone."""
CORRECTIONS = (*(m for m in METHODS if m is not None), "none")


def add_parser(sub: Any) -> None:
    """Register the ``explain`` sub-command."""
    p = sub.add_parser(
        "explain",
        help="explain one image: intervene on a property and test how strongly it drives the model",
        description="Intervene gradually on one property of an image, run the model on every step and report the "
        "expected property gradient magnitude with the size-aware verdict (does the property move the model more "
        "than an arbitrary change of the same size?) beside the paper's permutation test, the practical size of "
        "the change (the largest output change along the path) and the decision flips.",
    )
    p.add_argument(
        "--model",
        default=EXAMPLE_MODEL,
        help=f"'package.module:callable', a TorchScript file, 'clip:PATH_OR_ID' (a Hugging Face CLIP folder or "
        "id, with --descriptors) or 'hf:PATH_OR_ID' (a Hugging Face image classifier such as a ViT, with its "
        f"image processor's resize, crop and normalisation) (default: {EXAMPLE_MODEL})",
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
    image = p.add_argument_group("the image and what the model eats")
    image.add_argument(
        "--size",
        type=int,
        metavar="N",
        help=f"resize the image's shorter side to N pixels (0: keep) (default: {DEFAULT_SIZE}, or the image "
        "processor's size of a --model hf:...)",
    )
    image.add_argument(
        "--crop",
        type=int,
        metavar="N",
        help="centre crop to N x N pixels after the resize (with --size S: the usual resize the shorter side to S, "
        "then crop the centre N x N), so a fixed-size model sees a square image and the source intervenes on what "
        "the model sees (0: no crop) (default: none, or the image processor's crop of a --model hf:...)",
    )
    image.add_argument(
        "--normalize",
        metavar="MEAN,MEAN,MEAN/STD,STD,STD",
        help="the model's input normalisation (x - mean) / std per RGB channel, applied after the intervention, "
        "so the source works on [0, 1] images; 'imagenet' for 0.485,0.456,0.406/0.229,0.224,0.225, 'none' for "
        "none (default: none, or the image processor's of a --model hf:...)",
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
    test = p.add_argument_group("the test")
    test.add_argument(
        "--test",
        choices=TESTS,
        default="both",
        help="both: the size-aware placebo test (does the property move the model more than an arbitrary change of "
        "the same pixel size?), whose verdict is read first, beside the paper's permutation test (an ordered, "
        "systematic response, however small); permutation: the paper's test alone (default: both)",
    )
    test.add_argument(
        "--placebos",
        type=int,
        metavar="M",
        help=f"placebo sequences per image for --test both, at most (see --placebo-stop) (default: "
        f"{DEFAULT_PLACEBOS}, the library's; M >= 100 resolves alpha = 0.01)",
    )
    test.add_argument(
        "--placebo",
        choices=PLACEBO_VARIANTS,
        help="the placebo changes: smooth_direction (random smooth changes of the whole image) or region (a "
        "randomly shifted copy of the region the source changes) (default: smooth_direction)",
    )
    test.add_argument(
        "--placebo-stop",
        type=placebo_stop,
        metavar="H",
        help="sequential placebo test: an image stops drawing placebos once H of them score at least the real "
        "sequence (Besag & Clifford); 'auto' (the default) is the smallest H whose verdicts at --alpha equal the "
        "test over all M, 'none' draws all M",
    )
    test.add_argument(
        "--min-effect",
        type=float,
        metavar="D",
        help="smallest score worth calling significant, in the score's units: significant needs p < alpha and "
        "score >= D, in both tests (default: 0)",
    )
    test.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default="none",
        help="multiple-testing correction over the scored output columns: bh (false discovery rate), holm "
        "(family-wise error) or none (default: none)",
    )
    test.add_argument(
        "--permutations", type=int, default=10_000, metavar="K", help="permutations of the permutation test"
    )
    test.add_argument(
        "--sequential",
        type=int,
        metavar="H",
        help="sequential permutation test (Besag & Clifford): a column stops drawing permutations once H of them are "
        "as extreme as the observed score (10 is usual) (default: all K)",
    )
    test.add_argument(
        "--realisations",
        type=int,
        default=1,
        metavar="R",
        help="explain R realisations of a source with randomness (seeds --seed, --seed + 1, ...) and report their "
        "mean score, its bootstrap interval and the share significant (default: 1)",
    )
    test.add_argument(
        "--per",
        default="step",
        choices=("step", "unit"),
        help="score per discrete step (the paper's convention) or per unit of the property values",
    )
    test.add_argument("--alpha", type=float, default=0.01, help="significance level")
    test.add_argument(
        "--statistic",
        default="gradient",
        choices=STATISTIC_NAMES,
        help="the test statistic: gradient (the paper's E|dF/dx| per output), pearson (|Pearson r|), or vector_l1 / "
        "vector_l2 (how far the whole output vector moves: one score for all outputs, no --target needed)",
    )
    p.add_argument(
        "--output-transform",
        choices=("softmax", "sigmoid", "none"),
        help="default: softmax, or none (raw cosine similarities) for a zero-shot --model clip:...",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    add_permutation_stream(p)
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


def load_input_image(spec: str, preparation: ImagePreparation, crop_name: str = "--crop") -> Any:
    """Load ``--image`` (a file or ``skimage:NAME``) and resize and crop it (:func:`prepare_image`)."""
    from propgrad.core.images import example_image, load_image

    image = example_image(spec.split(":", 1)[1]) if spec.startswith("skimage:") else load_image(spec)
    return prepare_image(image, preparation, crop_name)


def prepare_image(image: Any, preparation: ImagePreparation, crop_name: str = "--crop") -> Any:
    """Resize ``image`` (the shorter side, or to an exact (height, width)) and crop its centre, as ``preparation`` says.

    Args:
        image: A float image (3, H, W) in [0, 1].
        preparation: The resize and crop (its normalisation is the model's ``preprocess``, not applied here).
        crop_name: What the crop is called in an error (the option, or the image processor's crop).

    Raises:
        InvalidParameterError: a crop larger than the resized image (naming both sizes).
    """
    from propgrad.core.images import center_crop, resize, resize_shorter_side

    size, crop = preparation.size, preparation.crop
    if isinstance(size, int):
        image = resize_shorter_side(image, size)
    elif size is not None:
        image = resize(image, size)
    return image if crop is None else center_crop(image, crop, name=crop_name)


def add_permutation_stream(parser: argparse.ArgumentParser | Any) -> None:
    """The ``--permutation-stream`` option of the commands that run permutation tests."""
    parser.add_argument(
        "--permutation-stream",
        type=int,
        choices=STREAMS,
        default=DEFAULT_STREAM,
        metavar="V",
        help=f"version of the stream drawing the permutations from the seed (default {DEFAULT_STREAM}; 1 reproduces "
        "results written before stream 2, whose files name no stream)",
    )


def explain_test_settings(args: argparse.Namespace) -> TestSettings:
    """The test of ``--test``, ``--placebos``, ``--placebo``, ``--placebo-stop``, ``--min-effect``, ``--correction`` ...

    Built once by :func:`propgrad.stats.settings.test_settings`, whose messages name a bad value;
    an option left out takes the library's default (``--placebos``:
    :data:`~propgrad.stats.settings.DEFAULT_PLACEBOS`, ``--placebo-stop``: ``auto``).

    Raises:
        InvalidParameterError: a placebo option with ``--test permutation`` (which runs no placebo
            test), ``--placebos 0`` with ``--test both``, or any value the settings refuse.
    """
    from propgrad.stats.settings import test_settings

    placebo_options = {"--placebos": args.placebos, "--placebo": args.placebo, "--placebo-stop": args.placebo_stop}
    given = [name for name, value in placebo_options.items() if value is not None]
    if args.test == "permutation":
        if given:
            raise InvalidParameterError(
                f"{' and '.join(given)} set{'s' if len(given) == 1 else ''} the placebo test, which --test "
                "permutation does not run; drop it, or use --test both (the default) for the placebo test beside the "
                "permutation test"
            )
        n_placebos = 0
    else:
        n_placebos = DEFAULT_PLACEBOS if args.placebos is None else args.placebos
        if n_placebos == 0:
            raise InvalidParameterError(
                "--placebos 0 runs no placebo test; give M >= 1 placebos (100 resolves alpha = 0.01), or --test "
                "permutation for the paper's permutation test alone"
            )
    options: dict[str, Any] = {
        "n_permutations": args.permutations,
        "alpha": args.alpha,
        "seed": args.seed,
        "permutation_stream": args.permutation_stream,
        "per": args.per,
        "statistic": args.statistic,
        "sequential": args.sequential,
        "correction": None if args.correction == "none" else args.correction,
        "n_placebos": n_placebos,
    }
    if args.min_effect is not None:
        options["min_effect"] = args.min_effect
    if args.placebo is not None:
        options["placebo"] = args.placebo
    if args.placebo_stop is not None:
        options["placebo_stop"] = None if args.placebo_stop == "none" else args.placebo_stop
    return test_settings(**options)


def placebo_stop(text: str) -> int | str:
    """``--placebo-stop``: a whole number h, ``auto`` or ``none`` (argparse's type; the settings check the range)."""
    key = text.strip().lower()
    if key in ("auto", "none"):
        return key
    try:
        return int(key)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number h of placebos, 'auto' or 'none', got {text!r}"
        ) from None


def image_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--size``, ``--crop`` and ``--normalize`` as overrides of :class:`ImagePreparation` fields (those given).

    Raises:
        InvalidParameterError: a negative size or crop, a bad ``--normalize`` (see :func:`parse_normalize`),
            or ``--normalize`` with a ``clip:`` model (its processor normalises inside the model).
    """
    from propgrad.cli.model_loading import CLIP_PREFIX

    overrides: dict[str, Any] = {}
    for option, value in (("--size", args.size), ("--crop", args.crop)):
        if value is not None and value < 0:
            raise InvalidParameterError(f"{option} must be a positive number of pixels or 0 for none, got {value}")
    if args.size is not None:
        overrides["size"] = args.size or None
    if args.crop is not None:
        overrides["crop"] = (args.crop, args.crop) if args.crop else None
    if args.normalize is not None:
        if args.model.startswith(CLIP_PREFIX):
            raise InvalidParameterError(
                f"--normalize does not apply to --model {args.model!r}: a CLIP model normalises its images with its "
                "own processor's mean and std"
            )
        overrides["mean"], overrides["std"] = parse_normalize(args.normalize)
    return overrides


def parse_normalize(text: str) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``--normalize``: ``MEAN,MEAN,MEAN/STD,STD,STD``, ``imagenet`` or ``none`` -> ``(mean, std)`` (None, None: none).

    Raises:
        InvalidParameterError: another form, a value that is no finite number, not three means and three
            standard deviations, or a standard deviation <= 0 (the message says which, and the form expected).
    """
    from propgrad.core.images import IMAGENET_MEAN, IMAGENET_STD, Normalize

    key = text.strip().lower()
    if key == "none":
        return None, None
    if key == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    expected = (
        "expected MEAN,MEAN,MEAN/STD,STD,STD (3 means, '/', 3 positive standard deviations, one per RGB channel), "
        "'imagenet' or 'none'"
    )
    means, sep, stds = text.partition("/")
    if not sep or "/" in stds:
        raise InvalidParameterError(f"--normalize {text!r}: {expected}")
    parsed = []
    for part in (means, stds):
        values = []
        for item in part.split(","):
            try:
                values.append(float(item))
            except ValueError:
                raise InvalidParameterError(
                    f"--normalize {text!r}: {item.strip()!r} is not a number; {expected}"
                ) from None
        parsed.append(values)
    try:
        checked = Normalize(*parsed)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--normalize {text!r}: {exc}; {expected}") from None
    return checked.mean, checked.std


def model_preprocess(preparation: ImagePreparation) -> Any:
    """The model's ``preprocess``: :class:`~propgrad.core.images.Normalize` of the preparation, or None."""
    from propgrad.core.images import Normalize

    if preparation.mean is None or preparation.std is None:
        return None
    return Normalize(preparation.mean, preparation.std)


def run(args: argparse.Namespace) -> int:
    """Run the explanation and print (and optionally save) it."""
    from propgrad.cli.model_loading import load_model
    from propgrad.core.forward import run_model
    from propgrad.core.validation import check_device, check_int
    from propgrad.explain.arguments import resolve_source
    from propgrad.explain.explainer import PropertyGradient
    from propgrad.plugins.parameters import parse_cli_params  # by the source's declared types, or as literals

    device = check_device(args.device, "--device")
    report_baselines = report_baseline_names(args)  # before the model loads and the test runs
    tests = explain_test_settings(args)
    check_int(args.realisations, "--realisations", hint="the number of realisations R (seeds --seed, --seed + 1 ...)")
    overrides = image_options(args)
    model = load_model(
        args.model, args.weights, device=device, descriptors=args.descriptors, show_progress=not args.no_progress
    )
    preparation = replace(own_preparation(model), **overrides)
    preprocess = model_preprocess(preparation)
    source = resolve_source(args.source, parse_cli_params(args.source, args.param))
    image = _input_image(args.image, preparation, source, crop_given=args.crop is not None).to(device)
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else default_labels(args.model, model)
    if labels is not None:  # before the sequence and the test: one forward pass tells the outputs
        check_labels(labels, run_model(model, image[None], preprocess=preprocess).shape[1], given=bool(args.labels))
    if args.true_class is not None:  # before the sequence and the test
        _check_true_class(args.true_class, model)
    explainer = PropertyGradient(
        model,
        preprocess=preprocess,
        output_transform=args.output_transform,
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
    )
    realisations = None
    if args.realisations > 1:
        realisations = explainer.attribute_realisations(
            image, source, args.realisations, target=args.target, settings=tests
        )
        explanation = realisations.explanations[0]
        print(realisations.summary(labels))
        print(f"realisation 1 (seed {realisations.seeds[0]}):")
    else:
        explanation = explainer.attribute(image, source=source, target=args.target, settings=tests)
    print(explanation.summary(labels))
    if args.out:
        written = explanation.save(args.out, labels=labels, true_class=args.true_class)
        if realisations is not None:
            written += _save_realisations(args.out, realisations, labels)
        report_model = (
            model if preprocess is None or not isinstance(model, nn.Module) else nn.Sequential(preprocess, model)
        )
        written += _write_report(
            args, explanation, report_model, labels, device, written, report_baselines, preparation
        )
        for path in dict.fromkeys(written):
            print(f"wrote {path}")
    return 0


def own_preparation(model: Any) -> ImagePreparation:
    """What the model says it eats (an ``hf:`` model's image processor), else ``DEFAULT_SIZE`` and nothing more."""
    own = getattr(model, "image_preparation", None)
    return own if isinstance(own, ImagePreparation) else ImagePreparation(size=DEFAULT_SIZE)


def _save_realisations(out_dir: Path, realisations: Any, labels: list[str] | None) -> list[Path]:
    """``realisations.json`` (the summary and every realisation's record) and ``realisations.png`` (their curves)."""
    from propgrad.core.atomic_files import write_json
    from propgrad.core.plotting import save_figure

    record = realisations.to_dict()
    if labels is not None:
        record["labels"] = list(labels)
    first = realisations.explanations[0]  # the explained column, else the one with the highest mean score
    column = first.target if first.target is not None else int(realisations.mean_score.reshape(-1).argmax())
    label = labels[column] if labels is not None and column < len(labels) else None
    ax = realisations.plot_behaviour(column=column, label=label)
    ax.figure.tight_layout()  # the axis labels inside the saved image
    return [
        write_json(Path(out_dir) / "realisations.json", record),
        save_figure(ax.figure, Path(out_dir) / "realisations.png"),
    ]


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
    preparation: ImagePreparation,
) -> list[Path]:
    """report.html beside the saved files, with the maps of ``--report-baselines`` (see ``explain_report``).

    The settings shown and recorded are the command's options and the image preparation they
    resolved to (an ``hf:`` model's processor fills in what the options leave out).
    """
    from propgrad.cli.explain_report import write_explain_report

    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("run", "func") and not callable(v)}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    settings["image_preparation"] = {
        "resize": preparation.size if not isinstance(preparation.size, tuple) else list(preparation.size),
        "crop": None if preparation.crop is None else list(preparation.crop),
        "mean": None if preparation.mean is None else list(preparation.mean),
        "std": None if preparation.std is None else list(preparation.std),
    }
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


def _input_image(spec: str | None, preparation: ImagePreparation, source: Any, *, crop_given: bool) -> Any:
    """``--image``, or without it the source's ``reference_image()`` (the object before the intervention) or chelsea.

    A source that renders its own frames (``rendered_rotation``) ignores the image's pixels and
    renders at the image's size; its reference image, rendered at the size the model sees (the
    crop, else the resize), makes the "original" the model's decision is compared with the
    unrotated object.

    Raises:
        InvalidParameterError: ``--crop`` with a source whose ``--param image_size`` sets the frames' size.
    """
    crop_name = f"--crop {preparation.crop[1]}" if crop_given and preparation.crop else "the image processor's crop"
    if spec is not None:
        return load_input_image(spec, preparation, crop_name)
    reference = getattr(source, "reference_image", None)
    if callable(reference):
        if getattr(source, "image_size", None) is not None:  # a size given with --param image_size wins
            if crop_given:
                raise InvalidParameterError(
                    f"--crop does not apply to source {source.name or type(source).__name__!r} with --param "
                    "image_size: it renders its frames at that size; set image_size to the size the model eats instead"
                )
            return reference(None)
        return reference(preparation.crop or preparation.size)
    return load_input_image("skimage:chelsea", preparation, crop_name)


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


def default_labels(model_spec: str, model: Any = None) -> list[str] | None:
    """The example model's class names, a zero-shot model's column labels or an ``hf:`` model's ``id2label``."""
    from propgrad.cli.model_loading import HfImageClassifier

    if model_spec == EXAMPLE_MODEL:
        from propgrad.example_model import CLASS_NAMES

        return list(CLASS_NAMES)
    if isinstance(model, HfImageClassifier):
        return model.labels
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
