"""Does a fur benchmark run show what it must? The validity checks, with their numbers.

Reads the ``results.json`` of ``propgrad benchmark`` runs that included the ``fur`` suite and
prints each check of :mod:`propgrad.suites.fur_validity` as PASS or FAIL with the measured figures:
among them, per biased model, a one-sided Wilcoxon signed-rank test of the per-image fur score over
the same image's background score, and the unbiased model's flip counts under each intervention
(the restated background check, which replaced "background >= 10x lower"; on fur and background
only, as fixed before the equal-size intervention existed). Then, informational with no pass/fail,
the score table of an equal-size background intervention (with the images significant against
placebos when the run counts them), or a line saying the run holds none. Given several runs
(seeds, say), it ends with how many runs passed each check. Exits 0 when every check passes on
every run, 1 when one fails, 2 when a run's results cannot be read.

Usage::

    propgrad benchmark --out RUN            # or --full, --seed N
    python benchmarks/fur_validity.py RUN/results.json [RUN2/results.json ...] [--alpha 0.01] [--max-flips 0.02]
        [--margin 10] [--rare 0.1] [--equal-size background_equal_size]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from propgrad.suites.fur_validity import EQUAL_SIZE_INTERVENTION, equal_size_lines, fur_checks


def main(argv: list[str] | None = None) -> int:
    """Print the checks; the exit status says whether all passed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "results",
        type=Path,
        nargs="*",
        default=[Path("propgrad-benchmark/results.json")],
        help="results.json of one or more runs (default: propgrad-benchmark/results.json)",
    )
    parser.add_argument("--alpha", type=float, default=0.01, help="Wilcoxon p (fur over background) must be below this")
    parser.add_argument(
        "--max-flips", type=float, default=0.02, help="largest fraction of unbiased-model flips under each intervention"
    )
    parser.add_argument("--margin", type=float, default=10.0, help="lead over the best baseline, accuracy points")
    parser.add_argument("--rare", type=float, default=0.1, help="largest fraction of unbiased-model flips under fur")
    parser.add_argument(
        "--equal-size",
        default=EQUAL_SIZE_INTERVENTION,
        help=f"name of the equal-size background intervention (default: {EQUAL_SIZE_INTERVENTION})",
    )
    args = parser.parse_args(argv)
    runs = []
    for path in args.results:
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            checks = fur_checks(
                results,
                wilcoxon_alpha=args.alpha,
                rare_flips=args.rare,
                unbiased_flips=args.max_flips,
                margin=args.margin,
            )
            info = equal_size_lines(results, equal_size=args.equal_size)
        except (OSError, ValueError) as exc:
            print(f"error: cannot check {path}: {exc}", file=sys.stderr)
            return 2
        settings = results.get("settings", {})
        print(f"{path}: quick={settings.get('quick')} seed={settings.get('seed')}")
        for check in checks:
            print(check.line())
        for line in info:
            print(line)
        runs.append(checks)
    if len(runs) > 1:
        print(f"\nover {len(runs)} runs:")
        for k, check in enumerate(runs[0]):
            print(f"{sum(run[k].passed for run in runs)}/{len(runs)} passed: {check.name}")
    return 0 if all(c.passed for run in runs for c in run) else 1


if __name__ == "__main__":
    raise SystemExit(main())
