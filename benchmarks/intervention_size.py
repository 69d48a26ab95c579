"""How much does each intervention of a suite change its test images? No model is involved.

Property scores are per step of an intervention, so a score of one property is easier to compare
with another's when both interventions move the pixels by similar amounts. This prints, for every
intervention of a built-in or plugin suite, the mean over the test images of
:meth:`InterventionSequence.pixel_change` (the largest mean absolute per-pixel change from the
original), its range, and its ratio to the first intervention's.

Usage::

    python benchmarks/intervention_size.py [--suite fur] [--full] [--seed 0] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys


def main(argv: list[str] | None = None) -> int:
    """Print the size of every intervention of one suite; exit 2 on an unknown suite."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="fur", help="suite name (default: fur)")
    parser.add_argument("--full", action="store_true", help="the suite's full-size test set (default: quick)")
    parser.add_argument("--seed", type=int, default=0, help="suite seed (default: 0)")
    parser.add_argument("--limit", type=int, help="measure only the first N test images")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")

    from propgrad.plugins import get_suite

    try:
        suite = get_suite(args.suite)(quick=not args.full, seed=args.seed)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    available = len(suite.test_set()[1])
    n = available if args.limit is None else min(args.limit, available)
    print(f"suite {args.suite!r} ({'full' if args.full else 'quick'}, seed {args.seed}), {n} test images")
    first: float | None = None
    for intervention in suite.interventions:
        sizes = [suite.intervene(intervention, i).pixel_change() for i in range(n)]
        mean = statistics.fmean(sizes)
        first = mean if first is None else first
        ratio = f"{mean / first:.2f}x" if first > 0 else "n/a (the first changes nothing)"
        print(
            f"{intervention:<14} mean |Δpixel| {mean:.4f} (min {min(sizes):.4f}, max {max(sizes):.4f}), "
            f"{ratio} the {suite.interventions[0]!r} intervention's"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
