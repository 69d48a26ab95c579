"""``propgrad validate``: does a benchmark run show what its suites must show? Their validity checks.

Each suite states what a run's results must show for its flip tables to mean something
(:meth:`~propgrad.suites.base.BenchmarkSuite.validity_checks`, with its thresholds in
``validity_thresholds``); this command reads the ``results.json`` of one or more runs and prints
every check of every suite the run holds as ``PASS`` or ``FAIL`` with the measured numbers, then the
suite's informational lines (no pass/fail). Over several runs (seeds, say) it ends with how many
runs passed each check. Exit status: 0 when every check of every run passed, 1 when one failed,
2 when a run cannot be read or checked (or a bad option).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from propgrad.errors import InvalidParameterError
from propgrad.suites.validity import Check

DEFAULT_RUN = Path("propgrad-benchmark")
"""Where ``propgrad benchmark`` writes by default."""

RESULTS_NAME = "results.json"


def add_parser(subparsers: Any) -> None:
    """Add the ``validate`` sub-command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "validate",
        help="run the suites' validity checks on benchmark results (PASS/FAIL per check)",
        description=(
            "Read the results.json of one or more benchmark runs and print every validity check of every suite "
            "the run holds (what its results must show for the flip tables to mean something) as PASS or FAIL "
            "with the measured numbers, then the suite's informational lines. Over several runs, also how many "
            "passed each check. Exit status: 0 when every check passed, 1 when one failed, 2 when a run cannot "
            "be read or checked."
        ),
    )
    parser.add_argument(
        "runs",
        type=Path,
        nargs="*",
        default=[DEFAULT_RUN],
        metavar="RUN",
        help=f"a run's output folder or its {RESULTS_NAME} (default: {DEFAULT_RUN}/)",
    )
    parser.add_argument("--suite", help="check this suite only (default: every suite of the run)")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another value for one of the --suite's thresholds (repeatable; an unknown NAME is refused with the "
        "list of the suite's thresholds)",
    )
    parser.set_defaults(run=run)


def results_path(run: Path) -> Path:
    """``run`` itself when it is a file, else the ``results.json`` in the folder ``run``."""
    run = Path(run)
    return run / RESULTS_NAME if run.is_dir() else run


def parse_thresholds(pairs: Sequence[str]) -> dict[str, float]:
    """``["name=value", ...]`` as ``{name: value}``.

    Raises:
        InvalidParameterError: An item without ``=``, or a value that is not a number.
    """
    thresholds: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidParameterError(f"--threshold must be NAME=VALUE, got {pair!r}")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise InvalidParameterError(f"--threshold {name.strip()} must be a number, got {value!r}") from None
    return thresholds


def run_suites(results: Mapping[str, Any]) -> list[str]:
    """The suites a run holds, in the order it ran them."""
    ran = list(results.get("settings", {}).get("suites") or [])
    return ran + [name for name in results.get("summary", {}) if name not in ran]


def evaluate(
    results: Mapping[str, Any], suite: str | None = None, thresholds: Mapping[str, float] | None = None
) -> tuple[list[Check], list[str]]:
    """Every check and informational line of the run's suites (or of ``suite`` alone).

    When more than one suite states checks, each check's name starts with its suite's.

    Args:
        results: A run's results.
        suite: Check this suite only (None: every suite of the run).
        thresholds: Thresholds of ``suite`` to use instead of its defaults.

    Returns:
        ``(checks, lines)``.

    Raises:
        UnknownNameError: A suite of the run is not installed here.
        ValueError: The results lack what a check reads.
    """
    from propgrad.plugins import get_suite

    names = [suite] if suite is not None else run_suites(results)
    by_suite, lines = {}, []
    for name in names:
        cls = get_suite(name)
        by_suite[name] = cls.validity_checks(results, thresholds if name == suite else None)
        if not by_suite[name]:
            lines.append(f"INFO suite {name!r} states no validity checks")
        lines += cls.validity_notes(results)
    several = sum(bool(found) for found in by_suite.values()) > 1
    checks = [replace(c, name=f"{name}: {c.name}") if several else c for name, found in by_suite.items() for c in found]
    return checks, lines


def run(args: argparse.Namespace) -> int:
    """Print the checks of every run; returns the exit status (0 all passed, 1 one failed, 2 unreadable)."""
    from propgrad.plugins import get_suite
    from propgrad.suites.validity import checked_thresholds, report_runs

    thresholds = parse_thresholds(args.threshold)
    if thresholds:
        if args.suite is None:
            raise InvalidParameterError("--threshold needs --suite NAME: each suite declares its own thresholds")
        cls = get_suite(args.suite)
        checked_thresholds(args.suite, thresholds, cls.validity_thresholds)  # a bad name fails before any run
    return report_runs(
        [results_path(path) for path in args.runs], lambda results: evaluate(results, args.suite, thresholds)
    )
