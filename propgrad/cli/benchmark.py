"""``propgrad benchmark``: the "predict the flip" benchmark of Penzel & Denzler (Tab. 2).

Default: the quick mode of the ``fur`` suite with every registered baseline. ``--full`` runs every
registered suite at the paper's sizes. Interrupted runs (Ctrl-C, or SIGTERM from a scheduler or
``kill``) continue where they stopped when started again with the same ``--out`` and settings;
a resumed run keeps the baselines and suites it was started with unless ``--baselines`` or
``--suite`` is given, so installing a new plugin does not block it. One run at a time can use
an ``--out`` folder. Several runs sharing a machine are fastest with ``--threads 1`` each.
``--executor dask`` spreads the grid over Dask workers (a local cluster of ``--workers`` processes,
or a running scheduler at ``--scheduler``, e.g. a SLURM cluster): the same records, the output
folder written by this process alone (docs/distributed.md).

Flip tables come under four definitions: the paper's two (a flip anywhere, the final decision),
extrapolation (every method sees the first half of the path, the label is a flip in the second)
and held-out realisation (scores of one realisation, labels from another). The score table
counts the images each test calls significant, raw and corrected over the images
(``--correction``): the size-aware placebo test (run by default: does the property move the model
more than an arbitrary change of the image of the same size?) beside the paper's permutation test
(an ordered, systematic response, however small).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from propgrad.cli.explain import add_permutation_stream
from propgrad.errors import InvalidParameterError
from propgrad.stats.defaults import DEFAULT_STREAM, PLACEBO_VARIANTS

DEFAULT_OUT = Path("propgrad-benchmark")
DEFAULT_SUITE = "fur"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``benchmark`` sub-command."""
    parser = subparsers.add_parser(
        "benchmark",
        help="run the 'predict the flip' benchmark (property score vs. attribution baselines)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        dest="suites",
        nargs="+",
        metavar="NAME",
        help=f"suites to run (default: {DEFAULT_SUITE!r}; with --full every registered suite)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=True,
        help="small images and models, K=1000 permutations, modest baseline sample counts (default)",
    )
    mode.add_argument(
        "--full",
        dest="quick",
        action="store_false",
        help="the paper's sizes: larger images and models, every test image, K=10,000, baseline defaults",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output folder; rerunning with the same folder resumes (default: ./{DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        metavar="NAME",
        help="attribution baselines to compare (default: every registered one; 'none' for none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training, tests and resampling (default 0)")
    add_permutation_stream(parser)
    parser.add_argument(
        "--permutations", type=int, metavar="K", help="permutations per test (default: 1000 quick, 10000 full)"
    )
    parser.add_argument(
        "--placebos",
        type=int,
        metavar="M",
        help="most placebo sequences per cell of the size-aware placebo test beside the permutation test "
        "(default: 100, which resolves alpha = 0.01; 0: none). Sequential: a cell stops once a placebo reaches "
        "its score, with the verdicts of drawing all M, so a cell the model ignores costs a few placebos",
    )
    parser.add_argument(
        "--placebo",
        choices=PLACEBO_VARIANTS,
        default=PLACEBO_VARIANTS[0],
        help="placebo variant: smooth_direction (the whole image along a random smooth direction, the default) "
        "or region (a randomly shifted copy of the pixels the intervention changes)",
    )
    parser.add_argument(
        "--correction",
        choices=("bh", "holm", "none"),
        default="bh",
        help="multiple-testing correction over the images behind each significance count (default: bh)",
    )
    parser.add_argument(
        "--realisations",
        type=int,
        metavar="R",
        default=1,
        help="realisations of each intervention scored per image; R > 1 adds their mean score as a method (default: 1)",
    )
    parser.add_argument(
        "--quantus-metrics",
        nargs="+",
        metavar="NAME",
        default=[],
        help="Quantus metrics (Quantus's class names, e.g. FaithfulnessCorrelation Sparseness) computed per model "
        "and baseline on the same images, as a table beside the flip tables (default: none; docs/captum-quantus.md)",
    )
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in --out and start over")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads of torch (default: torch's choice); use 1 per run when several runs share a machine. "
        "Suite models train on one thread whatever this says, so it never changes them",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where the grid's units run: local (this process, the default) or dask (Dask distributed: a local "
        "cluster of --workers processes, or the scheduler at --scheduler; pip install 'propgrad[dask]'; "
        "docs/distributed.md). The records are the same either way",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="with --executor dask: a running Dask scheduler, e.g. tcp://host:8786"
    )
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --executor dask: worker processes of a local cluster (default: Dask's choice)",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        metavar="T",
        help="with --executor dask: torch threads of each worker (default 1; each worker computes one unit at a time)",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help="where the models run: cpu, cuda, cuda:1 ... (default: where the suite puts them, the CPU for the "
        "built-in suites); with --executor dask every unit asks for one GPU worker resource when it is cuda",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    parser.set_defaults(run=run)
    return parser


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM, so it stops like on Ctrl-C."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``); restored after.

    Schedulers and ``kill`` send SIGTERM, and background jobs ignore SIGINT, so without this a
    terminated run would stop without a word. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise Terminated(f"received signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (None: leave torch's choice); restored after."""
    if n is None:
        yield
        return
    import torch

    from propgrad.core.validation import check_int

    n = check_int(n, "--threads")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def stored_names(args: argparse.Namespace) -> dict[str, list[str]]:
    """The suite and baseline names an earlier run in ``--out`` was started with, where not given now.

    Returns:
        ``{"suites": [...], "baselines": [...]}`` with only the entries taken from the store
        (none with ``--fresh``, without a store, or for what the arguments name explicitly).
    """
    from propgrad.harness.pipeline import STORE_NAME
    from propgrad.harness.store import read_header

    header = None if args.fresh else read_header(Path(args.out) / STORE_NAME)
    settings = header.get("settings") if header else None
    if not isinstance(settings, dict):
        return {}
    out = {}
    for field, given in (("suites", args.suites), ("baselines", args.baselines)):
        names = settings.get(field)
        if given is None and isinstance(names, list) and all(isinstance(n, str) for n in names):
            out[field] = names
    if not out.get("suites"):
        out.pop("suites", None)  # a run always has suites; an empty list is not a choice to keep
    return out


def default_suites(quick: bool) -> tuple[str, ...]:
    """The suites run when ``--suite`` is not given: ``fur`` in quick mode, every registered one in full mode."""
    from propgrad.plugins import list_suites

    return (DEFAULT_SUITE,) if quick else tuple(list_suites())


def resolve_names(
    args: argparse.Namespace, stored: dict[str, list[str]] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, type]]:
    """The suite names, baseline names and baseline classes selected by the arguments.

    Args:
        args: The parsed arguments.
        stored: Names to use where the arguments give none (from :func:`stored_names`).

    Raises:
        LookupError: An unknown suite or baseline name (the registry's error lists known ones).
        InvalidParameterError: ``none`` combined with baseline names.
    """
    from propgrad.plugins import get_baseline, get_suite, list_baselines

    stored = stored or {}
    if args.suites:  # the suites first: an unknown name is the answer, before any warning about plugins
        suites = tuple(dict.fromkeys(args.suites))
    elif "suites" in stored:
        suites = tuple(stored["suites"])
    else:
        suites = default_suites(args.quick)
    for name in suites:
        get_suite(name)
    if args.baselines is None and "baselines" in stored:
        classes = {name: get_baseline(name) for name in stored["baselines"]}
    elif args.baselines is None:
        classes = dict(list_baselines())
    elif [b.lower() for b in args.baselines] == ["none"]:
        classes = {}
    elif "none" in [b.lower() for b in args.baselines]:
        raise InvalidParameterError(f"--baselines: 'none' cannot be combined with baseline names, got {args.baselines}")
    else:
        classes = {name: get_baseline(name) for name in dict.fromkeys(args.baselines)}
    return suites, tuple(classes), classes


def _say_kept(stored: dict[str, list[str]], out: Path, quick: bool) -> None:
    from propgrad.plugins import list_baselines

    if "baselines" in stored:
        new = [name for name in list_baselines() if name not in stored["baselines"]]
        extra = f"; not added: {', '.join(new)}" if new else ""
        print(
            f"resuming {out} with the baselines it was started with: {', '.join(stored['baselines']) or 'none'}"
            f"{extra} (pass --baselines to choose, or --fresh to start over)"
        )
    if "suites" in stored and tuple(stored["suites"]) != default_suites(quick):
        names = ", ".join(stored["suites"])
        print(f"resuming {out} with the suites it was started with: {names} (pass --suite to choose)")


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The checked ``--executor`` options: ``{"executor": "local" | "dask", "scheduler", "workers", "threads"}``.

    Raises:
        InvalidParameterError: A Dask option without ``--executor dask``, or a count below 1.
    """
    from propgrad.core.validation import check_int

    executor = getattr(args, "executor", "local")
    options = {
        "scheduler": getattr(args, "scheduler", None),
        "workers": getattr(args, "workers", None),
        "threads": getattr(args, "threads_per_worker", None),
    }
    flags = {"scheduler": "--scheduler", "workers": "--workers", "threads": "--threads-per-worker"}
    if executor != "dask":
        given = [flags[k] for k, v in options.items() if v is not None]
        if given:
            raise InvalidParameterError(f"{', '.join(given)} need(s) --executor dask, got --executor {executor}")
    for name in ("workers", "threads"):
        if options[name] is not None:
            options[name] = check_int(options[name], flags[name])
    return {"executor": executor, **options}


def checked_device(device: str, *, on_workers: bool) -> str:
    """``--device`` checked: one this process has, or (``on_workers``: the workers run the models) a valid name."""
    import torch

    from propgrad.core.validation.tensors import check_device

    if not on_workers:
        return str(check_device(device, "--device"))
    try:
        return str(torch.device(device))
    except (RuntimeError, ValueError):
        raise InvalidParameterError(f"--device must name a torch device such as cpu or cuda, got {device!r}") from None


@contextmanager
def chosen_executor(options: dict[str, Any], device: str | None) -> Iterator[Any]:
    """The executor ``options`` ask for: None (in-process; Dask is not imported), or a Dask executor."""
    if options["executor"] != "dask":
        yield None
        return
    from propgrad.harness.executors import dask_executor

    with dask_executor(
        scheduler=options["scheduler"],
        workers=options["workers"],
        threads_per_worker=options["threads"],
        device=device,
        say=print,
    ) as executor:
        yield executor


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the tables, write results.json, records.csv, report.md/.html, plots to ``--out``."""
    from propgrad.harness import preset, run_benchmark

    options = executor_options(args)
    device = getattr(args, "device", None)
    if device is not None:
        device = checked_device(device, on_workers=options["executor"] == "dask")
    stored = stored_names(args)
    suites, baselines, classes = resolve_names(args, stored)
    correction = getattr(args, "correction", "bh")
    settings = preset(
        quick=args.quick,
        suites=suites,
        baselines=baselines,
        baseline_classes=classes,
        seed=args.seed,
        n_permutations=args.permutations,
        n_placebos=getattr(args, "placebos", None),
        placebo=getattr(args, "placebo", PLACEBO_VARIANTS[0]),
        correction=None if correction == "none" else correction,
        realisations=getattr(args, "realisations", 1),
        quantus_metrics=tuple(getattr(args, "quantus_metrics", None) or ()),
        permutation_stream=getattr(args, "permutation_stream", DEFAULT_STREAM),
    )
    mode = "quick" if args.quick else "full"
    with torch_threads(getattr(args, "threads", None)), sigterm_interrupts():
        import torch

        print(
            f"propgrad benchmark ({mode}): suites {', '.join(suites)}; "
            f"baselines {', '.join(baselines) or 'none'}; K = {settings.n_permutations}; "
            f"M = {settings.n_placebos} placebos ({settings.placebo}); correction {settings.correction}; "
            f"{torch.get_num_threads()} torch threads; out {args.out}"
        )
        _say_kept(stored, args.out, args.quick)
        sys.stdout.flush()
        with chosen_executor(options, device) as executor:  # a scheduler that does not answer fails here
            run_benchmark(
                settings,
                args.out,
                fresh=args.fresh,
                show_progress=args.progress,
                echo=print,
                executor=executor,
                device=device,
            )
    return 0
