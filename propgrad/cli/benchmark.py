"""``propgrad benchmark``: the "predict the flip" benchmark of Penzel & Denzler (Tab. 2).

Default: the quick mode of the ``fur`` suite with every registered baseline. ``--full`` runs every
registered suite at the paper's sizes. Interrupted runs continue where they stopped when started
again with the same ``--out`` and settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument(
        "--permutations", type=int, metavar="K", help="permutations per test (default: 1000 quick, 10000 full)"
    )
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in --out and start over")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    parser.set_defaults(run=run)
    return parser


def resolve_names(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, type]]:
    """The suite names, baseline names and baseline classes selected by the arguments.

    Raises:
        LookupError: An unknown suite or baseline name (the registry's error lists known ones).
        ValueError: ``none`` combined with baseline names.
    """
    from propgrad.plugins import get_baseline, get_suite, list_baselines, list_suites

    if args.baselines is None:
        classes = dict(list_baselines())
    elif [b.lower() for b in args.baselines] == ["none"]:
        classes = {}
    elif "none" in [b.lower() for b in args.baselines]:
        raise ValueError(f"--baselines: 'none' cannot be combined with baseline names, got {args.baselines}")
    else:
        classes = {name: get_baseline(name) for name in dict.fromkeys(args.baselines)}
    if args.suites:
        suites = tuple(dict.fromkeys(args.suites))
    else:
        suites = tuple(list_suites()) if not args.quick else (DEFAULT_SUITE,)
    for name in suites:
        get_suite(name)
    return suites, tuple(classes), classes


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the tables, write results.json, report.md and plots to ``--out``."""
    from propgrad.harness import preset, run_benchmark

    suites, baselines, classes = resolve_names(args)
    settings = preset(
        quick=args.quick,
        suites=suites,
        baselines=baselines,
        baseline_classes=classes,
        seed=args.seed,
        n_permutations=args.permutations,
    )
    mode = "quick" if args.quick else "full"
    print(
        f"propgrad benchmark ({mode}): suites {', '.join(suites)}; "
        f"baselines {', '.join(baselines) or 'none'}; K = {settings.n_permutations}; out {args.out}"
    )
    run_benchmark(settings, args.out, fresh=args.fresh, show_progress=args.progress, echo=print)
    return 0
