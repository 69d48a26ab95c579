"""Speed of the vectorised permutation test against the paper code's per-shuffle loop.

The reference is a plain Python loop that shuffles the outputs and calls ``numpy.gradient`` once
per shuffle and per output column (the way the paper's code runs Algorithm 1). Both run in this
process, on the same data, with K permutations of N steps, at C=1 and C=1000 columns; at C=1000
the loop is timed on 3 columns and multiplied by C/3.

The vectorised time is reported twice: "cold" is the first call for a (N, K, seed), which also
draws the K permutations; "warm" is a repeated call, which reuses the memoised permutation matrix
(``propgrad.permutation.seeded_permutations``), as happens when many images are scored with the
same settings.

Threads: the loop is single-threaded numpy, so by default torch also runs on one thread
(``--threads 1``): the ratio measures vectorisation, not extra cores. On a shared machine torch's
multi-threaded kernels can also be much slower than one thread when other processes hold the
cores. Usage::

    python benchmarks/permutation_speed.py [--k 10000] [--n 100] [--columns 1 1000] [--threads 1]
        [--grid unit|nonuniform]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from propgrad.permutation import clear_cache, permutation_test


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


def time_vectorised(outputs: torch.Tensor, values: torch.Tensor | None, k: int, repeats: int) -> tuple[float, float]:
    """(cold, best warm) seconds of permutation_test on outputs."""
    clear_cache()
    start = time.perf_counter()
    permutation_test(outputs, values, n_permutations=k)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        permutation_test(outputs, values, n_permutations=k)
        warm.append(time.perf_counter() - start)
    return cold, min(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--columns", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid", choices=["unit", "nonuniform"], default="unit", help="property values")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"K={args.k}, N={args.n}, float32, {args.grid} grid"
    )
    rng = np.random.default_rng(0)
    values = None if args.grid == "unit" else np.cumsum(rng.uniform(0.5, 1.5, args.n))
    for c in args.columns:
        outputs = rng.normal(size=(args.n, c)).astype(np.float32)
        looped = min(c, 3)
        start = time.perf_counter()
        loop_reference(outputs[:, :looped].astype(np.float64), values, args.k)
        loop = (time.perf_counter() - start) * c / looped
        grid = None if values is None else torch.from_numpy(values)
        cold, warm = time_vectorised(torch.from_numpy(outputs), grid, args.k, args.repeats)
        note = "" if looped == c else f" (timed on {looped} columns, x{c / looped:.0f})"
        print(f"C={c:5d}: loop {loop:8.3f} s{note}")
        print(f"         vectorised cold {cold * 1e3:9.1f} ms  ratio {loop / cold:7.1f}x")
        print(f"         vectorised warm {warm * 1e3:9.1f} ms  ratio {loop / warm:7.1f}x")


if __name__ == "__main__":
    main()
