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
from pathlib import Path

from propgrad.suites.fur_validity import EQUAL_SIZE_INTERVENTION, equal_size_lines, fur_checks
from propgrad.suites.validity import report_runs


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
    return report_runs(
        args.results,
        lambda results: (
            fur_checks(
                results,
                wilcoxon_alpha=args.alpha,
                rare_flips=args.rare,
                unbiased_flips=args.max_flips,
                margin=args.margin,
            ),
            equal_size_lines(results, equal_size=args.equal_size),
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
