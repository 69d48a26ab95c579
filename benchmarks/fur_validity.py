"""Does a fur benchmark run show what it must? ``propgrad validate --suite fur``, with the old flags.

The checks are the fur suite's own (``FurSuite.validity_checks``, in :mod:`propgrad.suites.fur_validity`)
and ``propgrad validate`` runs them: this script only keeps the flags it had before that command
existed, as names of the suite's thresholds. It prints each check as PASS or FAIL with the measured
figures, then the equal-size background's score table (no pass/fail); over several runs, how many
passed each check. Exits 0 when every check passes on every run, 1 when one fails, 2 when a run's
results cannot be read.

Usage::

    propgrad benchmark --out RUN            # or --full, --seed N
    python benchmarks/fur_validity.py RUN/results.json [RUN2/results.json ...] [--alpha 0.01] [--max-flips 0.02]
        [--margin 10] [--rare 0.1]
    propgrad validate RUN [RUN2 ...] --suite fur [--threshold wilcoxon_alpha=0.01 ...]   # the same
"""

from __future__ import annotations

import argparse

from propgrad.cli import main as propgrad_main

FLAGS = {
    "--alpha": ("wilcoxon_alpha", "Wilcoxon p (fur over background) must be below this"),
    "--max-flips": ("unbiased_flips", "largest fraction of unbiased-model flips under each intervention"),
    "--margin": ("margin", "lead over the best baseline, accuracy points"),
    "--rare": ("rare_flips", "largest fraction of unbiased-model flips under fur"),
}
"""Each flag of this script and the fur suite's threshold it sets."""


def main(argv: list[str] | None = None) -> int:
    """Run ``propgrad validate --suite fur`` with the thresholds the flags set; returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", default=["propgrad-benchmark/results.json"], help="results.json files")
    for flag, (threshold, text) in FLAGS.items():
        parser.add_argument(flag, dest=threshold, type=float, default=None, help=f"{text} (threshold {threshold})")
    args = parser.parse_args(argv)
    given = [f"{name}={value!r}" for name, _ in FLAGS.values() if (value := getattr(args, name)) is not None]
    return propgrad_main(["validate", *args.results, "--suite", "fur", *(f"--threshold={g}" for g in given)])


if __name__ == "__main__":
    raise SystemExit(main())
