"""Speed of the vectorised permutation test against the paper code's per-shuffle loop.

The reference is a plain Python loop that shuffles the outputs and calls ``numpy.gradient`` once
per shuffle and per output column (the way the paper's code runs Algorithm 1). Both run in this
process, on the same data, with K permutations of N steps, at C=1 and C=1000 columns; at C=1000
the loop is timed on 3 columns and multiplied by C/3. Each configuration is timed with torch's
default number of threads and with one thread (the loop is single-threaded numpy either way).

"cold" is a first call for a (N, K, seed): the memo is cleared, so the call draws the K
permutations (median of several such calls). "warm" repeats a call, reusing the memoised
permutations (median), as when many images are scored with the same settings. Before timing,
one tiny call absorbs the process's one-time start-up (lazy imports, first use of kernels);
its time is printed too. Targets (the issue): >= 30x at C=1 and >= 300x at C=1000, cold.

Usage::

    python benchmarks/permutation_speed.py [--k 10000] [--n 100] [--columns 1 1000]
        [--threads 0 1] [--grid unit|nonuniform] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from propgrad.stats.permutation import clear_cache, permutation_test

TARGETS = {1: 30.0, 1000: 300.0}


def loop_reference(outputs: np.ndarray, values: np.ndarray | None, k: int, seed: int = 0) -> np.ndarray:
    """p-values of the two-sided gradient test, one numpy.gradient call per shuffle and column."""
    rng = np.random.default_rng(seed)
    grid = () if values is None else (values,)
    p_values = []
    for column in outputs.T:
        observed = np.abs(np.gradient(column, *grid)).mean()
        null = np.empty(k)
        for j in range(k):
            null[j] = np.abs(np.gradient(column[rng.permutation(column.shape[0])], *grid)).mean()
        mean = null.mean()
        p_values.append((np.sum(np.abs(null - mean) >= np.abs(observed - mean)) + 1) / (k + 1))
    return np.array(p_values)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_loop(outputs: np.ndarray, values: np.ndarray | None, k: int, repeats: int) -> tuple[float, int]:
    """(seconds for all C columns, columns actually looped): median over repeats at C <= 3."""
    looped = min(outputs.shape[1], 3)
    runs = repeats if outputs.shape[1] <= 3 else 1
    sample = outputs[:, :looped].astype(np.float64)
    loop = statistics.median(_seconds(lambda: loop_reference(sample, values, k)) for _ in range(runs))
    return loop * outputs.shape[1] / looped, looped


def time_vectorised(outputs: torch.Tensor, values: torch.Tensor | None, k: int, repeats: int) -> tuple[float, float]:
    """(median cold, median warm) seconds of permutation_test on outputs."""

    def call() -> None:
        permutation_test(outputs, values, n_permutations=k)

    cold = []
    for _ in range(repeats):
        clear_cache()
        cold.append(_seconds(call))
    warm = [_seconds(call) for _ in range(repeats)]
    return statistics.median(cold), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--columns", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", choices=["unit", "nonuniform"], default="unit", help="property values")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1], help="torch threads to test (0 = default)")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    startup = _seconds(lambda: permutation_test(torch.randn(5), n_permutations=10))
    print(
        f"torch {torch.__version__}; K={args.k}, N={args.n}, float32, {args.grid} grid; "
        f"one-time start-up call {startup * 1e3:.1f} ms"
    )
    rng = np.random.default_rng(0)
    values = None if args.grid == "unit" else np.cumsum(rng.uniform(0.5, 1.5, args.n))
    grid = None if values is None else torch.from_numpy(values)
    verdicts = []
    for threads in args.threads:
        torch.set_num_threads(threads or default_threads)
        print(f"-- {torch.get_num_threads()} torch thread(s){' (default)' if not threads else ''}")
        for c in args.columns:
            outputs = rng.normal(size=(args.n, c)).astype(np.float32)
            loop, looped = time_loop(outputs, values, args.k, args.repeats)
            cold, warm = time_vectorised(torch.from_numpy(outputs), grid, args.k, args.repeats)
            note = "" if looped == c else f" (timed on {looped} columns, x{c / looped:.0f})"
            target = TARGETS.get(c)
            met = (
                "" if target is None else f"  target >= {target:.0f}x: {'met' if loop / cold >= target else 'NOT met'}"
            )
            print(f"C={c:5d}: loop {loop:8.3f} s{note}")
            print(f"         vectorised cold {cold * 1e3:9.1f} ms  ratio {loop / cold:7.1f}x{met}")
            print(f"         vectorised warm {warm * 1e3:9.1f} ms  ratio {loop / warm:7.1f}x")
            if target is not None:
                verdicts.append(loop / cold >= target)
    print("all targets met (cold)" if verdicts and all(verdicts) else "targets NOT all met (cold)")


if __name__ == "__main__":
    main()
