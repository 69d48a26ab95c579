"""The gradient permutation test over a grid of N steps x C columns, against its peers, in one run.

For every cell (K permutations, float32 outputs of N(0, 1) noise, unit steps) it prints:

- propgrad **cold** (a first call for that N, K and seed: the memo is cleared, so the call draws
  its permutations) and **warm** (the same call again, permutations memoised; with fewer than 8
  columns the default stream 2 draws every shuffle inside the kernel, so both do the same work), and the peak
  resident memory of the whole process during the cold call (sampled every millisecond);
- the peers, each run on the same outputs in the same process: the paper-style **loop** (a shuffle
  and a ``numpy.gradient`` per permutation and column), ``scipy.stats.permutation_test(...,
  permutation_type="pairings", vectorized=True)`` on the same statistic, and a **naive torch**
  vectorisation (rand + argsort, gather, ``torch.gradient``). Peers are linear in K, so large
  cells time them on fewer permutations (and the loop on fewer columns) and scale up: the printed
  "(xS)" is that factor;
- the **gather bound**: K x N x C values at the rate at which this machine gathers rows of float32
  values from an L2-resident table into an L2-resident buffer (``torch.index_select``, measured
  here on one thread, times the workers the plan uses); and the fraction propgrad takes of it.

``--load`` repeats the propgrad calls with one busy process beside them (a pure-Python loop on
one core) and with ``torch.set_num_threads(1)`` (the script, not the library, sets it), and
prints the loaded/one-thread ratio. ``--sequential`` times the Besag-Clifford option against the
fixed test on the largest cell. ``--gradient`` times ``property_gradient`` against
``numpy.gradient`` + mean |.|.

Usage::

    python benchmarks/permutation_speed.py [--k 10000] [--n 21 100 360 1000]
        [--columns 1 10 1000 10000] [--load] [--sequential] [--gradient]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np
import torch

from propgrad.stats.gradient import property_gradient
from propgrad.stats.permutation import clear_cache, permutation_test
from propgrad.stats.permutations import DEFAULT_STREAM
from propgrad.stats.strategy import plan_compiled_test

PEER_VALUES = 4 * 10**8  # shuffled values a peer is timed on at most (then scaled to K)
LOOP_VALUES = 2 * 10**6
TARGETS = "every cell: scipy/propgrad >= 3x and naive/propgrad >= 3x (cold); C = 1, N <= 360: loop >= 30x; "
TARGETS += "N = 360, C = 10000: <= 2x the gather bound; peak memory <= 2 GB; loaded <= 1.5x one thread"


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], object]) -> tuple[float, int]:
    """(seconds, peak resident set of the whole process in bytes during one call).

    The whole process's resident set (torch, numba and the benchmark's own arrays included) is an
    upper bound on what the test itself holds, and unlike its growth it does not hide memory that
    an earlier cell left to the allocator.
    """
    base, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = _seconds(fn)
    done.set()
    sampler.join()
    return seconds, max(peak[0], _rss(), base)


def statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean |numpy.gradient| along ``axis`` (the peers' statistic)."""
    return np.abs(np.gradient(x, axis=axis)).mean(axis=axis)


def loop_peer(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """p-values by a Python loop: one shuffle and one numpy.gradient per permutation and column."""
    rng = np.random.default_rng(seed)
    p = []
    for column in y.T:
        observed = statistic(column)
        null = np.array([statistic(column[rng.permutation(column.shape[0])]) for _ in range(k)])
        m = null.mean()
        p.append((np.sum(np.abs(null - m) >= np.abs(observed - m)) + 1) / (k + 1))
    return np.array(p)


def scipy_peer(y: np.ndarray, k: int) -> np.ndarray:
    from scipy import stats

    n, c = y.shape
    batch = max(1, int(2**28 // (8 * n * c)))  # bound scipy's memory to ~256 MB per batch
    res = stats.permutation_test(
        (y.T,), statistic, permutation_type="pairings", vectorized=True, n_resamples=k, batch=batch, axis=-1, rng=0
    )
    return res.pvalue


def naive_torch_peer(y: torch.Tensor, k: int) -> torch.Tensor:
    n, c = y.shape
    observed = torch.gradient(y, dim=0)[0].abs().mean(0)
    chunk = max(1, int(2**26 // (n * c)))
    null = torch.empty(k, c)
    for s in range(0, k, chunk):
        perms = torch.argsort(torch.rand(min(chunk, k - s), n), dim=1)
        null[s : s + perms.shape[0]] = torch.gradient(y[perms], dim=1)[0].abs().mean(1)
    m = null.mean(0)
    return ((null - m).abs() >= (observed - m).abs()).sum(0).add(1) / (k + 1)


def gather_rate() -> float:
    """float32 values per second that one thread gathers by rows from an L2-resident table."""
    table = torch.randn(256, 128)  # 128 KiB
    index = torch.randint(0, 256, (512,))
    out = torch.empty(512, 128)  # 256 KiB
    best = 0.0
    for _ in range(5):
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.2:
            torch.index_select(table, 0, index, out=out)
            reps += 1
        best = max(best, reps * out.numel() / (time.perf_counter() - start))
    return best


def time_propgrad(y: torch.Tensor, k: int, repeats: int, seed: int) -> tuple[float, float, int]:
    """(median cold s, median warm s, peak resident bytes during a cold call)."""
    cold, peaks = [], []
    for r in range(repeats):
        clear_cache()
        seconds, peak = peak_memory(lambda r=r: permutation_test(y, n_permutations=k, seed=seed + r))
        cold.append(seconds)
        peaks.append(peak)
    for _ in range(2):  # a first use streams, the second memoises: warm calls come after both
        permutation_test(y, n_permutations=k, seed=seed)
    warm = [_seconds(lambda: permutation_test(y, n_permutations=k, seed=seed)) for _ in range(repeats)]
    return statistics.median(cold), statistics.median(warm), max(peaks)


def time_peer(fn: Callable[[int], object], k: int, values_per_permutation: int, budget: int) -> tuple[float, float]:
    """(seconds scaled to K, scale factor): the peer is timed on min(K, budget / values) permutations."""
    kp = max(2, min(k, budget // max(1, values_per_permutation)))
    return _seconds(lambda: fn(kp)) * k / kp, k / kp


BUSY_LOOP = """
import os
parent = os.getppid()
while os.getppid() == parent:  # ends by itself if the benchmark is killed
    for _ in range(10**6):
        pass
"""


class BusyProcess:
    """One other process keeping one core busy (a pure-Python loop), for the loaded measurements."""

    def __enter__(self) -> BusyProcess:
        self.proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def cell(n: int, c: int, k: int, rate: float, load: bool) -> dict:
    rng = np.random.default_rng(n * 100_003 + c)
    y_np = rng.normal(size=(n, c)).astype(np.float32)
    y = torch.from_numpy(y_np)
    work = k * n * c
    repeats = 3 if work <= 4 * 10**9 else 1
    row: dict = {"n": n, "c": c}
    row["cold"], row["warm"], row["peak"] = time_propgrad(y, k, repeats, seed=1000)
    row["scipy"], row["scipy_scale"] = time_peer(lambda kp: scipy_peer(y_np, kp), k, n * c, PEER_VALUES)
    row["naive"], row["naive_scale"] = time_peer(lambda kp: naive_torch_peer(y, kp), k, n * c, PEER_VALUES)
    cols = min(c, 2)
    loop, loop_scale = time_peer(lambda kp: loop_peer(y_np[:, :cols], kp), k, n * cols, LOOP_VALUES)
    row["loop"], row["loop_scale"] = loop * c / cols, loop_scale * c / cols
    plan = plan_compiled_test(n, c, k, 4, torch.get_num_threads(), 128 * 2**20, DEFAULT_STREAM, sequential=False)
    row["workers"] = plan.workers
    row["bound"] = work / (rate * plan.workers)
    if load:
        default = torch.get_num_threads()
        with BusyProcess():
            row["loaded_cold"], row["loaded_warm"], _ = time_propgrad(y, k, repeats, seed=2000)
            torch.set_num_threads(1)
            try:
                row["loaded_one_cold"], row["loaded_one_warm"], _ = time_propgrad(y, k, repeats, seed=3000)
            finally:
                torch.set_num_threads(default)
        torch.set_num_threads(1)
        try:
            row["one_cold"], row["one_warm"], _ = time_propgrad(y, k, repeats, seed=4000)
        finally:
            torch.set_num_threads(default)
    return row


def print_row(row: dict, load: bool) -> None:
    n, c, cold = row["n"], row["c"], row["cold"]

    def scaled(name: str) -> str:
        s = row[name + "_scale"]
        return f"{row[name] / cold:7.1f}x" + (f" (x{s:.0f})" if s > 1.01 else "")

    line = (
        f"N={n:5d} C={c:6d} | cold {cold:9.4f} s warm {row['warm']:9.4f} s peak {row['peak'] / 2**20:7.1f} MiB | "
        f"loop {scaled('loop'):>16} scipy {scaled('scipy'):>14} naive {scaled('naive'):>14} | "
        f"bound {row['bound']:8.3f} s ({row['workers']} worker(s)) cold/bound {cold / row['bound']:6.2f}"
    )
    if load:
        line += (
            f" | loaded {row['loaded_cold']:8.4f}/{row['loaded_warm']:8.4f} s, one thread quiet "
            f"{row['one_cold']:8.4f}/{row['one_warm']:8.4f} s, loaded one thread {row['loaded_one_cold']:8.4f} s: "
            f"loaded/one-thread {row['loaded_cold'] / row['one_cold']:5.2f} (cold) "
            f"{row['loaded_warm'] / row['one_warm']:5.2f} (warm)"
        )
    print(line, flush=True)


def sequential_speedup(k: int) -> None:
    y = torch.from_numpy(np.random.default_rng(5).normal(size=(360, 10_000)).astype(np.float32))
    y[:, :100] += torch.linspace(0, 3, 360)[:, None]  # 100 columns with an effect
    clear_cache()
    fixed = _seconds(lambda: permutation_test(y, n_permutations=k))
    seq_res: list = []
    seq = _seconds(lambda: seq_res.append(permutation_test(y, n_permutations=k, sequential=10)))
    res = seq_res[0]
    print(
        f"sequential (Besag-Clifford, limit 10) at N=360, C=10000, K={k}: fixed {fixed:.2f} s, sequential "
        f"{seq:.2f} s, speed-up {fixed / seq:.1f}x; mean shuffles drawn {float(res.n_drawn.double().mean()):.0f}; "
        f"significant at 0.01: {int(res.significant[:100].sum())}/100 effect columns, "
        f"{int(res.significant[100:].sum())}/9900 noise columns"
    )


def gradient_speed() -> None:
    for n, c in [(100, 10_000), (1000, 10_000), (10_000, 1000)]:
        y = np.random.default_rng(0).normal(size=(n, c)).astype(np.float32)
        yt = torch.from_numpy(y)
        ref = min(_seconds(lambda y=y: np.abs(np.gradient(y, axis=0)).mean(0)) for _ in range(7))
        ours = min(_seconds(lambda yt=yt: property_gradient(yt)) for _ in range(7))
        same = np.allclose(property_gradient(yt).numpy(), np.abs(np.gradient(y, axis=0)).mean(0), rtol=1e-5)
        print(
            f"property_gradient N={n:6d} C={c:6d}: {ours * 1e3:7.1f} ms, "
            f"numpy.gradient + mean |.| {ref * 1e3:7.1f} ms, "
            f"ratio {ours / ref:5.2f} (target <= 1.5), same results: {same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--n", type=int, nargs="+", default=[21, 100, 360, 1000])
    parser.add_argument("--columns", type=int, nargs="+", default=[1, 10, 1000, 10_000])
    parser.add_argument("--load", action="store_true", help="also measure with one busy process beside")
    parser.add_argument("--sequential", action="store_true", help="time the sequential option on N=360, C=10000")
    parser.add_argument("--gradient", action="store_true", help="time property_gradient against numpy.gradient")
    args = parser.parse_args()
    startup = _seconds(lambda: permutation_test(torch.randn(30, 9), n_permutations=10, sequential=2))
    startup += _seconds(lambda: permutation_test(torch.randn(30, 2), n_permutations=10))
    rate = gather_rate()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); K={args.k}, float32, unit steps; "
        f"one-time start-up calls {startup:.2f} s; gather rate {rate / 1e9:.2f}e9 values/s per thread"
    )
    print("targets: " + TARGETS)
    for n in args.n:
        for c in args.columns:
            print_row(cell(n, c, args.k, rate, args.load), args.load)
    if args.sequential:
        sequential_speedup(args.k)
    if args.gradient:
        gradient_speed()


if __name__ == "__main__":
    main()
