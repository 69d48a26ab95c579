"""``propgrad track``: the property score along a model's training checkpoints (the paper's Sec. 4.3).

The model, image and test options are the explain command's (:mod:`propgrad.cli.explain`: the same
model specs, image preparation, ``--param`` parsing and test settings); the checkpoints are found
and ordered by :func:`propgrad.track.checkpoints.find_checkpoints`. Every input is checked, the
checkpoints found and the first one loaded before anything is written into ``--out``; the folder
is locked while the track runs, and every finished checkpoint is kept in its store
(``track-store.jsonl``), so an interrupted track continues where it stopped. ``--demo fur`` runs the
built-in demonstration (:mod:`propgrad.track.demo`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from propgrad.cli.explain import (
    CORRECTIONS,
    EXAMPLE_MODEL,
    add_permutation_stream,
    explain_test_settings,
    image_options,
    load_input_image,
    model_preprocess,
    own_preparation,
    placebo_stop,
)
from propgrad.errors import InvalidParameterError, PropgradError
from propgrad.stats.defaults import DEFAULT_PLACEBOS, PLACEBO_VARIANTS, STATISTIC_NAMES

STORE_NAME = "track-store.jsonl"
DEMOS = ("fur",)


def add_parser(sub: Any) -> None:
    """Register the ``track`` sub-command."""
    p = sub.add_parser(
        "track",
        help="track how strongly a property drives a model along its training checkpoints",
        description="Generate the intervention sequence of each image once, then load every checkpoint in training "
        "order (one at a time) and score the property under it: score, p-value, flips, the decision on the "
        "original image and the outputs along the sequence, with the over-training summary of the paper's Tab. 12.",
    )
    p.add_argument("--model", default=EXAMPLE_MODEL, help="the model the checkpoints load into, as for explain")
    p.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="DIR|GLOB|FILE",
        help="checkpoint folders (Hugging Face Trainer checkpoint-<step>/, Lightning *.ckpt, *.safetensors, "
        "*.pt/*.pth), globs or files; ordered by the step or epoch each records, never by name",
    )
    p.add_argument(
        "--load-func",
        metavar="MODULE:FUNCTION",
        help="your own loader load_func(model, path) (as Captum's TracInCP takes); it returns the model or None",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load full pickles (runs code from the files; only for checkpoints you trust). Default: weights only",
    )
    p.add_argument(
        "--image",
        action="append",
        metavar="FILE",
        help="image file or skimage:NAME, repeatable (default: skimage:chelsea)",
    )
    image = p.add_argument_group("the image and what the model eats (as for explain)")
    image.add_argument("--size", type=int, metavar="N", help="resize the image's shorter side to N pixels (0: keep)")
    image.add_argument("--crop", type=int, metavar="N", help="centre crop to N x N pixels after the resize (0: none)")
    image.add_argument(
        "--normalize",
        metavar="MEAN,MEAN,MEAN/STD,STD,STD",
        help="the model's input normalisation, 'imagenet' or 'none'",
    )
    p.add_argument("--source", default="alpha_patch", help="intervention source (see 'propgrad plugins')")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="source parameter, repeatable")
    p.add_argument("--target", type=int, help="output column to track (default: every column)")
    test = p.add_argument_group("the test (as for explain)")
    test.add_argument(
        "--test",
        choices=("both", "permutation"),
        default="permutation",
        help="permutation: the paper's test alone (default: a placebo test costs up to M extra sequences per image "
        "at every checkpoint); both: the size-aware placebo test beside it",
    )
    test.add_argument(
        "--placebos", type=int, metavar="M", help=f"placebos per image for --test both ({DEFAULT_PLACEBOS})"
    )
    test.add_argument("--placebo", choices=PLACEBO_VARIANTS, help="the placebo changes (default: smooth_direction)")
    test.add_argument("--placebo-stop", type=placebo_stop, metavar="H", help="sequential placebo test's h, auto, none")
    test.add_argument("--min-effect", type=float, metavar="D", help="smallest score worth calling significant")
    test.add_argument("--correction", choices=CORRECTIONS, default="none", help="over the scored columns")
    test.add_argument(
        "--permutations", type=int, metavar="K", help="permutations of the test (default: 10000; --demo: 1000)"
    )
    test.add_argument("--sequential", type=int, metavar="H", help="sequential permutation test's h (10 is usual)")
    test.add_argument("--per", default="step", choices=("step", "unit"), help="score per step or per unit")
    test.add_argument("--alpha", type=float, default=0.01, help="significance level")
    test.add_argument("--statistic", default="gradient", choices=STATISTIC_NAMES, help="the test statistic")
    p.add_argument("--output-transform", choices=("softmax", "sigmoid", "none"), help="default: softmax")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    add_permutation_stream(p)
    p.add_argument("--device", default="cpu", help="where the model runs")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for track.csv, track.jsonl, track.json, report.html, the figures and the resumable store",
    )
    p.add_argument("--fresh", action="store_true", help="discard the finished checkpoints kept in --out")
    p.add_argument("--no-hash", action="store_true", help="do not hash the checkpoint files for track.json")
    p.add_argument("--tensorboard", metavar="DIR", help="also log every score to TensorBoard event files in DIR")
    p.add_argument("--mlflow", metavar="URI", help="also log every score as MLflow metrics (e.g. file:./mlruns)")
    p.add_argument(
        "--demo",
        choices=DEMOS,
        help="the built-in demonstration: train the fur suite's ConvMixer on its biased split from two starts, "
        "a checkpoint per epoch (cached), and track the fur score on test images (no downloads)",
    )
    p.add_argument("--epochs", type=int, default=8, help="--demo: training epochs (default: 8)")
    p.add_argument("--demo-images", type=int, default=6, metavar="N", help="--demo: test images tracked (default: 6)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def replace_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    """A copy of ``args`` with ``changes`` (the parsed options stay as given)."""
    return argparse.Namespace(**{**vars(args), **changes})


def resolve_load_func(spec: str | None) -> Callable[..., Any] | None:
    """``--load-func module:function`` as the function.

    Raises:
        InvalidParameterError: not ``module:function``, a module that does not import, a missing or
            non-callable attribute.
    """
    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidParameterError(f"--load-func {spec!r}: expected MODULE:FUNCTION, e.g. mypackage.loading:load")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise InvalidParameterError(f"--load-func {spec!r}: cannot import module {module_name!r}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise InvalidParameterError(f"--load-func {spec!r}: module {module_name!r} has no function {attr!r}")
    return func


def _images(specs: list[str] | None, preparation: Any) -> Any:
    """The ``--image`` files prepared like explain's, stacked (B, 3, H, W); they must come out the same size."""
    import torch

    images = [load_input_image(spec, preparation) for spec in (specs or ["skimage:chelsea"])]
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) > 1:
        raise InvalidParameterError(
            f"the --image files come out in different sizes {sorted(shapes)}; give --size and --crop so every "
            "image is prepared to the same size"
        )
    return torch.stack(images)


def run(args: argparse.Namespace) -> int:
    """Run the track (or the demo) and print Tab. 12; write the outputs into ``--out``."""
    if args.demo is not None:
        from propgrad.track.demo import run_demo_command

        return run_demo_command(args)
    if not args.checkpoints:
        raise InvalidParameterError("give --checkpoints DIR|GLOB|FILE ... (or --demo fur for the built-in demo)")
    from propgrad.cli.model_loading import load_model
    from propgrad.core.validation import check_device
    from propgrad.explain.arguments import resolve_source
    from propgrad.plugins.parameters import parse_cli_params
    from propgrad.track.tracking import PropertyTracker

    device = check_device(args.device, "--device")
    tests = explain_test_settings(
        replace_args(args, permutations=10_000 if args.permutations is None else args.permutations)
    )
    overrides = image_options(args)
    load_func = resolve_load_func(args.load_func)
    model = load_model(args.model, None, device=device, show_progress=not args.no_progress)
    preparation = replace(own_preparation(model), **overrides)
    preprocess = model_preprocess(preparation)
    source = resolve_source(args.source, parse_cli_params(args.source, args.param))
    images = _images(args.image, preparation).to(device)
    tracker = PropertyTracker(
        model,
        args.checkpoints,
        load_func=load_func,
        trust=args.trust_checkpoint,
        preprocess=preprocess,
        output_transform=args.output_transform or "softmax",
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
    )
    provenance = {
        "model": args.model,
        "source": args.source,
        "source_params": list(args.param),
        "images": list(args.image or ["skimage:chelsea"]),
        "target": args.target,
        "command": ["propgrad", *sys.argv[1:]] if sys.argv and "propgrad" in Path(sys.argv[0]).name else None,
    }
    return track_into(args, tracker, images, source, tests, provenance)


def track_into(args: argparse.Namespace, tracker: Any, images: Any, source: Any, tests: Any, provenance: dict) -> int:
    """Run a checked track, print its summary and write ``--out`` (locked, resumable; nothing on an early error)."""
    from propgrad.harness.versions import collect_versions
    from propgrad.track.report import summary_text, write_track_outputs
    from propgrad.track.tracking import Keeping

    sinks = open_sinks(args, provenance)
    out = args.out
    try:
        if out is None:
            result = tracker.track(
                images, source, target=args.target, settings=tests, keep=Keeping(sinks=sinks, model_id=args.model)
            )
        else:
            result = _track_in_folder(args, tracker, images, source, tests, sinks)
    finally:
        for sink in sinks:
            sink.close()
    print(summary_text(result.summary()))
    if result.timing.resumed:
        print(
            f"{result.timing.resumed} checkpoint(s) read back from {out / STORE_NAME}, {result.timing.computed} scored"
        )
    if out is not None:
        full = {"versions": collect_versions(device=str(args.device)), **provenance}
        for path in write_track_outputs(out, result, full, hashes=not args.no_hash):
            print(f"wrote {path}")
    return 0


def _track_in_folder(args: argparse.Namespace, tracker: Any, images: Any, source: Any, tests: Any, sinks: list) -> Any:
    """The track with its store in ``--out``, the folder locked; what this run created is removed again when it
    fails before finishing a checkpoint (so a bad checkpoint leaves ``--out`` as it was)."""
    from propgrad.harness.output_folder import check_writable, locked_output
    from propgrad.track.tracking import Keeping

    out: Path = args.out
    created = not out.exists()
    check_writable(out)
    store = out / STORE_NAME
    had_store = store.exists()
    try:
        with locked_output(out):
            if args.fresh and store.exists():
                store.unlink()
            return tracker.track(
                images, source, target=args.target, settings=tests, keep=Keeping(store, sinks, model_id=args.model)
            )
    except PropgradError as exc:
        _clean_up(out, store, created=created, had_store=had_store)
        kept = _finished_lines(store) if store.exists() else 0
        if kept:
            raise type(exc)(
                f"{exc}; the {kept} checkpoint score(s) finished before it are kept in {store}, and a rerun continues "
                "from there"
            ) from exc
        raise
    except BaseException:
        _clean_up(out, store, created=created, had_store=had_store)
        raise


def _clean_up(out: Path, store: Path, *, created: bool, had_store: bool) -> None:
    """Remove what a failed run created in ``out`` when it finished no checkpoint (the store, the lock, the folder)."""
    from propgrad.harness.output_folder import LOCK_NAME

    if not had_store and store.exists() and _finished_lines(store) == 0:
        store.unlink()
    if created and not any(p.name != LOCK_NAME for p in out.iterdir()):
        shutil.rmtree(out, ignore_errors=True)
    elif not had_store and not store.exists():
        (out / LOCK_NAME).unlink(missing_ok=True)


def _finished_lines(store: Path) -> int:
    """Lines after the header of a store file (0: no checkpoint finished)."""
    with open(store, "rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def open_sinks(args: argparse.Namespace, params: dict) -> list[Any]:
    """The ``--tensorboard`` and ``--mlflow`` loggers (each import is checked here, before any checkpoint loads)."""
    from propgrad.track.logging_sinks import MlflowSink, TensorBoardSink

    sinks: list[Any] = []
    if args.tensorboard:
        sinks.append(TensorBoardSink(args.tensorboard))
    if args.mlflow:
        sinks.append(MlflowSink(args.mlflow, params={k: v for k, v in params.items() if v is not None}))
    return sinks
