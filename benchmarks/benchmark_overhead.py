"""How much of a benchmark run is harness overhead rather than model forward passes and attribution?

Runs the default quick benchmark of one suite (its own images per class, every baseline; or a
smaller pool with ``--pool``) into a temporary folder and prints the total wall time (suite
construction excluded, it is cached training), the time spent inside model forward passes plus
``baseline.attribute`` calls, the ratio of the two (target: <= 1.10, issue 22) and a breakdown of the rest.
Drawing the size-aware test's placebos is part of the rest ("scoring": tests, flips and placebo drawing).

Usage::

    python benchmarks/benchmark_overhead.py [--suite fur] [--pool N] [--baselines NAME ...|none]

Reporting (tables, resampling, four figures) is a fixed cost of a few seconds, so small pools
show a higher ratio than the default run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TARGET = 1.10
"""The run's wall time over its time in model forward passes and attribution calls (issue 22)."""


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="fur", help="suite to run (default: fur)")
    parser.add_argument(
        "--pool", type=int, help="test images per class (default: the suite's, as in `propgrad benchmark`)"
    )
    parser.add_argument("--baselines", nargs="+", help="baselines (default: every registered; 'none' for none)")
    parser.add_argument("--permutations", type=int, default=1000, help="K (default: 1000, the quick setting)")
    args = parser.parse_args(argv)

    from dataclasses import replace

    from propgrad.harness import preset, run_benchmark
    from propgrad.plugins import get_baseline, list_baselines

    if args.baselines is None:
        classes = dict(list_baselines())
    elif [b.lower() for b in args.baselines] == ["none"]:
        classes = {}
    else:
        classes = {name: get_baseline(name) for name in args.baselines}
    settings = preset(
        quick=True,
        suites=(args.suite,),
        baselines=tuple(classes),
        baseline_classes=classes,
        n_permutations=args.permutations,
    )
    if args.pool is not None:
        settings = replace(settings, pool_per_class=args.pool)
    from machine_load import StealClock  # benchmarks/ on sys.path

    steal, start = StealClock(), time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        results = run_benchmark(settings, Path(out), show_progress=False)
    wall = time.perf_counter() - start
    t = results["timing"]
    n_cells = results["resume"]["cells_computed"]
    pool = results["suites"][args.suite]["images_per_class"] if args.pool is None else args.pool
    print(f"suite {args.suite!r}, {pool} images per class, baselines: {', '.join(classes) or 'none'}, {n_cells} cells")
    print(f"suite setup (excluded):          {t.get('suite_setup_s', 0.0):8.2f} s")
    print(f"total (run):                     {t['run_s']:8.2f} s")
    print(
        f"model forward + attribution:     {t['model_and_attribution_s']:8.2f} s "
        f"(forward {t.get('forward_s', 0.0):.2f} s, attribution {t.get('attribution_s', 0.0):.2f} s)"
    )
    rest = {
        "intervention": t.get("intervention_s", 0.0),
        "scoring": t.get("scoring_s", 0.0) - t.get("forward_s", 0.0),  # tests and flips; forward timed above
        "reporting": t.get("reporting_s", 0.0),
    }
    # what no activity measures: cell records and store appends, the collector, progress, the units' bookkeeping
    rest["elsewhere"] = t["run_s"] - t["model_and_attribution_s"] - sum(rest.values())
    for name, seconds in rest.items():
        print(f"  of the rest, {name + ':':<18} {seconds:8.2f} s")
    for name in classes:
        print(f"  attribution, {name + ':':<22} {t.get(f'attribution/{name}_s', 0.0):8.2f} s")
    verdict = "met" if t["overhead_ratio"] <= TARGET else "not met"
    print(f"ratio total / (forward + attribution): {t['overhead_ratio']:.3f}  (target <= {TARGET}: {verdict})")
    print(steal.describe(wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
