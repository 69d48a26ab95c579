"""How the gradient permutation test splits its work on the CPU: the rule, and the threads that run it.

The rule, in one sentence each:

- **layout:** with at least :data:`~propgrad.stats.null_statistics.VECTOR_MIN_COLUMNS` (8) output
  columns the kernel vectorises over columns, otherwise it loops over the steps of each column;
- **column block:** :data:`COLUMNS_PER_BLOCK` (1024) columns, so every row a shuffle gathers is a
  long contiguous run (4 KiB of float32) whose per-row overhead is amortised; fewer when one
  block of outputs would exceed :data:`OUTPUT_BLOCK_BYTES` (4 MiB, well inside a shared L3 cache
  with a block per worker) or its float64 null statistics the memory budget; then evened out so
  the blocks are of one size and, with several workers, a multiple of the workers in number;
- **shuffle block:** as many shuffles as give one task :data:`TASK_VALUES` shuffled values (a few
  milliseconds of work, long enough to make a task's overhead negligible);
- **workers:** one per :data:`WORK_PER_WORKER` shuffled values (K x N x C), at most
  ``torch.get_num_threads()`` of the calling thread (the user's setting, read, never changed).

With fewer than 8 columns, permutation stream 2 draws each shuffle inside the kernel that scores
it (:func:`plan_fused_test`): one worker per :data:`FUSED_WORK_PER_WORKER` shuffled values, each
taking a quarter of its share of the shuffles at a time.

Workers are Python threads running compiled kernels that release the GIL; tasks are handed out
one at a time from a queue, so a worker that the operating system deschedules (a busy machine)
delays only its own task while the others take the rest, instead of stalling a team of threads
at every operation as intra-op parallelism does. Which worker computes a task never changes its
result (:mod:`propgrad.stats.cpu_kernels`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

import torch

from propgrad.stats.null_statistics import VECTOR_MIN_COLUMNS

COLUMNS_PER_BLOCK = 1024
OUTPUT_BLOCK_BYTES = 4 * 2**20
TASK_VALUES = 2**23
WORK_PER_WORKER = 2**24
FUSED_WORK_PER_WORKER = 2**20
"""Drawing and scoring a shuffled value in one pass takes about 1-2 ns on one thread (N = 360, one
column: 10,000 shuffles in 5-10 ms, 2026-12-07), so 2**20 values are one or two milliseconds of
work, ten times and more the hand-off of a task to a thread."""

T = TypeVar("T")
_DONE = object()
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """How one test is split: kernel layout, columns per block, shuffles per task, worker threads."""

    layout: str
    columns_per_block: int
    shuffles_per_task: int
    workers: int


def plan_gradient_test(n: int, c: int, k: int, itemsize: int, threads: int, memory_budget: int) -> Plan:
    """The rule of the module docstring for N steps, C columns, K shuffles and ``threads`` threads.

    Args:
        n: Steps.
        c: Output columns.
        k: Shuffles.
        itemsize: Bytes per output value (4 for float32, 8 for float64).
        threads: The calling thread's ``torch.get_num_threads()``.
        memory_budget: Bytes that the float64 null statistics of the blocks in flight may take.

    Returns:
        The :class:`Plan`.
    """
    work = k * n * c
    workers = max(1, min(threads, work // WORK_PER_WORKER))
    by_cache = max(VECTOR_MIN_COLUMNS, min(COLUMNS_PER_BLOCK, OUTPUT_BLOCK_BYTES // (n * itemsize)))
    by_memory = max(1, memory_budget // (workers * k * 8))
    cols = max(1, min(c, by_cache, by_memory))
    blocks = -(-c // cols)
    if workers > 1 and c >= workers * VECTOR_MIN_COLUMNS:  # equal blocks, a multiple of the workers
        blocks = -(-blocks // workers) * workers
    cols = -(-c // blocks)
    shuffles = max(1, min(k, TASK_VALUES // (n * cols)))
    return Plan("rows" if cols >= VECTOR_MIN_COLUMNS else "columns", cols, shuffles, workers)


def plan_compiled_test(
    n: int, c: int, k: int, itemsize: int, threads: int, memory_budget: int, stream: int, sequential: bool
) -> Plan:
    """The plan of the compiled gradient test: :func:`plan_fused_test` when its kernel draws the shuffles
    (:func:`draws_in_kernel`), :func:`plan_gradient_test` otherwise."""
    if draws_in_kernel(c, stream, sequential):
        return plan_fused_test(n, c, k, threads)
    return plan_gradient_test(n, c, k, itemsize, threads, memory_budget)


def draws_in_kernel(c: int, stream: int, sequential: bool) -> bool:
    """Whether the compiled gradient kernel draws the shuffles itself: a fixed test of fewer than 8
    columns in permutation stream 2 (no permutation matrix is drawn, streamed or memoised)."""
    return stream == 2 and c < VECTOR_MIN_COLUMNS and not sequential


def plan_fused_test(n: int, c: int, k: int, threads: int) -> Plan:
    """How a test whose kernel draws its own shuffles (stream 2, fewer than 8 columns) is split.

    Args:
        n: Steps.
        c: Output columns.
        k: Shuffles.
        threads: The calling thread's ``torch.get_num_threads()``.

    Returns:
        The :class:`Plan` (layout ``"fused"``, all columns in one block): one worker per
        :data:`FUSED_WORK_PER_WORKER` values; with several, tasks of a quarter of a worker's share
        of the shuffles, so a worker the operating system deschedules delays only a small task.
    """
    workers = max(1, min(threads, k * n * c // FUSED_WORK_PER_WORKER))
    shuffles = k if workers == 1 else max(1, -(-k // (4 * workers)))
    return Plan("fused", c, shuffles, workers)


def run_tasks(fn: Callable[[T], object], tasks: Iterable[T], workers: int) -> None:
    """Call ``fn`` on every task; with ``workers > 1`` on that many threads (the caller's included).

    Each thread takes the next task from ``tasks`` when it finishes one (the iterator is advanced
    under a lock, so a generator of tasks, such as one drawing permutations, runs in order). Tasks
    write their results in place. The first exception raised by a task stops the others from
    taking new tasks and is raised here.
    """
    if workers <= 1:
        for task in tasks:
            fn(task)
        return
    it, lock, failed = iter(tasks), threading.Lock(), threading.Event()

    def drain() -> None:
        while not failed.is_set():
            with lock:
                task = next(it, _DONE)
            if task is _DONE:
                return
            try:
                fn(task)  # type: ignore[arg-type]
            except BaseException:
                failed.set()
                raise

    futures = [_pool().submit(drain) for _ in range(workers - 1)]
    try:
        drain()
    finally:
        for future in futures:
            future.result()


def threads_available() -> int:
    """The calling thread's torch thread count (the user's setting), at least 1."""
    return max(1, torch.get_num_threads())


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="propgrad-test")
        return _POOL
