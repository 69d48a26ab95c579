"""The whole-vector statistics' permutation test: the compiled CPU kernel against the torch path, in one run.

For every cell (N steps x C output columns of float64 N(0, 1) noise, K shuffles, unit steps) and
each statistic (``vector_l1``, ``vector_l2``) it times ``permutation_test(..., statistic=...)``
twice in the same process, on the same outputs and the same memoised permutations:

- **compiled**: the default backends, where the compiled kernel
  (:func:`propgrad.stats.cpu_kernels.vector_null`, split over worker threads) serves the statistic;
- **torch**: the compiled backend switched off (``COMPILED.enabled = False``), so the torch
  backend (:class:`propgrad.stats.vector_statistic.VectorBackend`) serves it.

Each time is the best of ``--repeats`` calls after one warm-up call (the warm-up compiles the
kernel on a first run and memoises the permutations). It prints both times, their ratio
compiled / torch (below 1: the compiled kernel is faster), and the largest relative difference
between the two null distributions (the kernels agree to float64 rounding, not bit for bit).
``--threads`` sets ``torch.set_num_threads`` for the run (the script sets it, not the library):
the torch path's intra-op threads and the compiled kernel's worker threads both follow it.

Usage::

    python benchmarks/vector_statistic_speed.py [--k 10000] [--n 31] [--columns 10 100 1000] [--repeats 3]
        [--threads T]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from propgrad.stats.backends import COMPILED
from propgrad.stats.permutation import PermutationResult, permutation_test

STATISTICS = ("vector_l1", "vector_l2")


def best_of(fn: Callable[[], PermutationResult], repeats: int) -> tuple[float, PermutationResult]:
    """(the shortest of ``repeats`` timed calls after one warm-up call, the last result)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(n: int, c: int, k: int, statistic: str, repeats: int) -> tuple[float, float, float]:
    """(compiled seconds, torch seconds, largest relative difference of the nulls) for one cell."""
    outputs = torch.randn(n, c, dtype=torch.float64, generator=torch.Generator().manual_seed(c))

    def run() -> PermutationResult:
        return permutation_test(outputs, n_permutations=k, statistic=statistic, seed=0)

    compiled_s, compiled = best_of(run, repeats)
    COMPILED.enabled = False
    try:
        torch_s, torch_path = best_of(run, repeats)
    finally:
        COMPILED.enabled = True
    a, b = compiled.null_distribution, torch_path.null_distribution
    difference = float(((a - b).abs() / b.abs().clamp_min(torch.finfo(b.dtype).tiny)).max())
    return compiled_s, torch_s, difference


def main(argv: list[str] | None = None) -> int:
    """Print the table of the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10_000, help="shuffles K (default: 10000)")
    parser.add_argument("--n", type=int, default=31, help="steps N (default: 31)")
    parser.add_argument("--columns", type=int, nargs="+", default=[10, 100, 1000], help="output columns C")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per cell, best kept (default: 3)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the run (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    for name, value in (("--k", args.k), ("--n", args.n), ("--repeats", args.repeats)):
        if value < (2 if name == "--n" else 1):
            parser.error(f"{name} must be at least {2 if name == '--n' else 1}, got {value}")
    if min(args.columns) < 1:
        parser.error(f"--columns must be at least 1, got {min(args.columns)}")
    print(f"N = {args.n}, K = {args.k}, torch threads = {torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'statistic':>10} {'C':>6} {'compiled s':>11} {'torch s':>9} {'compiled/torch':>15} {'max rel diff':>13}")
    for statistic in STATISTICS:
        for c in args.columns:
            compiled_s, torch_s, difference = measure(args.n, c, args.k, statistic, args.repeats)
            ratio = compiled_s / torch_s
            print(f"{statistic:>10} {c:>6} {compiled_s:>11.4f} {torch_s:>9.4f} {ratio:>15.3f} {difference:>13.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
