"""Where the permutation test's null distribution is computed: one interface, two backends, chosen once.

A backend turns a :class:`NullJob` (a statistic's null kernel, the checked outputs, their
observed statistics, K, the seed) into a :class:`NullOutcome` (p-values, the kept null
distribution, the shuffles drawn). :func:`plan_test` chooses the backend once per test:

- :class:`CompiledBackend`: the gradient statistic on the CPU, in the compiled kernels of
  :mod:`propgrad.stats.cpu_kernels`, split over worker threads by the rule of
  :mod:`propgrad.stats.strategy` (whole column blocks per task when there are enough blocks,
  otherwise tasks of shuffles; with fewer than 8 columns in permutation stream 2, tasks of
  shuffles that the kernel draws itself, without a permutation matrix); and the whole-vector
  statistics (``"vector_l1"``, ``"vector_l2"``: one statistic for all C columns) on the CPU in
  their compiled kernel, in tasks of shuffles (:func:`propgrad.stats.vector_statistic.vector_split`);
- :class:`propgrad.stats.vector_statistic.VectorBackend`: the whole-vector statistics with torch
  operations (any device, or the CPU without numba);
- :class:`TorchBackend`: any statistic on any device, in the torch kernels of
  :mod:`propgrad.stats.null_statistics`, column block by column block within the memory budget.

Both draw the permutations the same way: a first test for an (N, K, seed, stream) streams them block by
block (:func:`propgrad.stats.permutations.permutation_blocks`); a second one memoises the (K, N)
matrix in the backend's :class:`~propgrad.stats.permutations.PermutationMemo`. With
``sequential=h`` columns stop early (:mod:`propgrad.stats.sequential`). No backend, block size,
chunk size or thread count changes a result: the p-values are bit-identical (the compiled and the
torch whole-vector kernels agree to float64 rounding; a test uses one of them for its observed
statistic and its null alike).

Memory settings (``chunk_size``, ``memory_budget``) and the memo are attributes of the backend
objects; :data:`BACKENDS` are the ones :func:`propgrad.stats.permutation.permutation_test` uses
(a test forces the torch backend with ``monkeypatch.setattr(COMPILED, "enabled", False)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from propgrad.core.validation import check_int
from propgrad.stats.kernels import compiled_kernels
from propgrad.stats.null_statistics import GradientNull, NullStatistic, two_sided_p_values
from propgrad.stats.permutations import PermutationMemo, permutation_blocks, stream_key
from propgrad.stats.sequential import as_tensors, sequential_test
from propgrad.stats.strategy import Plan, draws_in_kernel, plan_compiled_test, run_tasks, threads_available
from propgrad.stats.vector_statistic import VectorBackend, VectorNull, vector_split

__all__ = [
    "BACKENDS",
    "COMPILED",
    "KEEP_NULL_MAX_COLUMNS",
    "TORCH",
    "VECTOR",
    "Backend",
    "CompiledBackend",
    "NullJob",
    "NullOutcome",
    "TestPlan",
    "TorchBackend",
    "plan_test",
]

KEEP_NULL_MAX_COLUMNS = 16
"""The null distribution is kept (returned) for at most this many output columns."""
CHUNK_BYTES = 4 * 2**20  # chunks whose temporaries stay cache-sized (and reuse freed memory) run faster
MEMORY_BUDGET = 128 * 2**20
SEQUENTIAL_BLOCK = 256  # shuffles per block of the sequential test on the torch backend (default)


@dataclass(frozen=True)
class NullJob:
    """One test's work for a backend; everything in it is checked.

    Attributes:
        kernel: The statistic's null kernel.
        y: (N, C) float outputs (float64 where the gradient of their dtype would overflow).
        observed: (C,) observed statistics (:meth:`propgrad.stats.statistic.Statistic.observed`).
        k: K, shuffles.
        seed: Seed of the permutations.
        permutation_stream: Version of the stream drawing them (:data:`propgrad.stats.permutations.STREAMS`).
        sequential: Besag-Clifford's h, or None for the fixed-K test.
        stream: Draw the permutations block by block instead of using the memoised matrix.
    """

    kernel: NullStatistic
    y: torch.Tensor
    observed: torch.Tensor
    k: int
    seed: int
    permutation_stream: int
    sequential: int | None
    stream: bool


@dataclass(frozen=True)
class NullOutcome:
    """What a backend returns: (C,) p-values in the outputs' dtype, the kept (K, C) null
    distribution (None above :data:`KEEP_NULL_MAX_COLUMNS` columns or for the sequential test),
    and the shuffles drawn per column (sequential test only)."""

    p_value: torch.Tensor
    null: torch.Tensor | None = None
    drawn: torch.Tensor | None = None


class Backend(Protocol):
    """The interface of a backend (see the module docstring)."""

    memo: PermutationMemo
    compiled: bool
    """Whether the null statistics follow the compiled kernels' arithmetic (the observed one must too)."""

    def supports(self, kernel: NullStatistic, device: torch.device) -> bool:
        """Whether this backend can compute ``kernel``'s null on ``device``."""
        ...

    def columns_per_block(self, kernel: NullStatistic, k: int, c: int, itemsize: int = 8) -> int:
        """Output columns it processes at once (all C: one block) with null statistics of ``itemsize`` bytes."""
        ...

    def null(self, job: NullJob) -> NullOutcome:
        """The p-values (and kept null) of ``job``."""
        ...


@dataclass
class CompiledBackend:
    """The gradient and whole-vector statistics on the CPU in compiled kernels (numba), split over worker threads.

    Attributes:
        memo: The permutation memo.
        chunk_size: Shuffles per task (default: the rule of :mod:`propgrad.stats.strategy`).
        memory_budget: Bytes the float64 null statistics of the column blocks in flight may take.
        enabled: False makes :func:`plan_test` pass it over (tests use it to force torch).
    """

    memo: PermutationMemo = field(default_factory=PermutationMemo)
    chunk_size: int | None = None
    memory_budget: int = MEMORY_BUDGET
    enabled: bool = True
    compiled: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_memory(self.chunk_size, self.memory_budget)

    def supports(self, kernel: NullStatistic, device: torch.device) -> bool:
        return (
            self.enabled
            and isinstance(kernel, (GradientNull, VectorNull))
            and device.type == "cpu"
            and compiled_kernels() is not None
        )

    def columns_per_block(self, kernel: NullStatistic, k: int, c: int, itemsize: int = 8) -> int:
        return c

    def null(self, job: NullJob) -> NullOutcome:
        """The p-values with the compiled kernels; see :mod:`propgrad.stats.strategy` for the gradient's split."""
        from propgrad.stats import cpu_kernels

        if isinstance(job.kernel, VectorNull):
            return self._vector_null(job)
        kernel, y, k = job.kernel, job.y, job.k
        assert isinstance(kernel, GradientNull)
        n, c = y.shape
        y_np = y.detach().contiguous().numpy()
        rel_tol = 1000 * torch.finfo(y.dtype).eps
        sequential = job.sequential is not None
        plan = plan_compiled_test(
            n, c, k, y.element_size(), threads_available(), self.memory_budget, job.permutation_stream, sequential
        )
        if plan.layout == "fused":  # few columns in stream 2: each task draws its own shuffles
            return self._fused_null(job, y_np, plan, rel_tol)
        observed = job.observed.numpy()
        shuffles = self.chunk_size or plan.shuffles_per_task
        if job.sequential is not None:
            perms = self.memo.permutations(n, k, job.seed, job.permutation_stream).numpy()

            def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
                block = np.ascontiguousarray(y_np[:, columns])
                return kernel.cpu_block(block, perms[s:e], np.empty((e - s, block.shape[1])))

            p, drawn = sequential_test(null_block, observed, k, job.sequential, rel_tol, plan.shuffles_per_task)
            p_value, drawn_t = as_tensors(p, drawn, y.dtype, y.device)
            return NullOutcome(p_value, drawn=drawn_t)
        p_value = np.empty(c)
        kept = np.empty((k, c)) if c <= KEEP_NULL_MAX_COLUMNS else None
        blocks = [slice(c0, min(c0 + plan.columns_per_block, c)) for c0 in range(0, c, plan.columns_per_block)]

        def finish(columns: slice, null: np.ndarray) -> None:
            cpu_kernels.two_sided_p_values(observed[columns], null, rel_tol, p_value[columns])
            if kept is not None:
                kept[:, columns] = null

        if len(blocks) > 1 and len(blocks) >= plan.workers:  # whole column blocks per task
            perms = self.memo.permutations(n, k, job.seed, job.permutation_stream).numpy()

            def column_task(columns: slice) -> None:
                block = np.ascontiguousarray(y_np[:, columns])
                null = np.empty((k, block.shape[1]))
                for s in range(0, k, shuffles):
                    kernel.cpu_block(block, perms[s : s + shuffles], null[s : s + shuffles])
                finish(columns, null)

            run_tasks(column_task, blocks, plan.workers)
        else:  # one (or a few) column blocks: tasks of shuffles
            for columns in blocks:
                block = np.ascontiguousarray(y_np[:, columns])
                null = np.empty((k, block.shape[1]))
                run_tasks(_shuffle_task(kernel, block, null), self._shuffle_tasks(job, shuffles), plan.workers)
                finish(columns, null)
        null_t = None if kept is None else torch.from_numpy(kept)
        return NullOutcome(torch.from_numpy(p_value).to(y.dtype), null_t)

    def _fused_null(self, job: NullJob, y_np: np.ndarray, plan: Plan, rel_tol: float) -> NullOutcome:
        """The gradient's p-values for a few columns in stream 2: each task draws its shuffles and scores them.

        No permutation matrix is drawn, streamed or memoised (:meth:`GradientNull.cpu_stream_block`);
        ``plan`` (:func:`propgrad.stats.strategy.plan_fused_test`) splits the shuffles over the threads.
        """
        from propgrad.stats import cpu_kernels

        kernel, k = job.kernel, job.k
        assert isinstance(kernel, GradientNull)
        c = y_np.shape[1]
        shuffles = self.chunk_size or plan.shuffles_per_task
        yt, key = np.ascontiguousarray(y_np.T), stream_key(job.seed)
        null = np.empty((k, c))

        def task(s: int) -> None:
            kernel.cpu_stream_block(yt, key, s, null[s : s + shuffles])

        run_tasks(task, range(0, k, shuffles), plan.workers)
        p_value = cpu_kernels.two_sided_p_values(job.observed.numpy(), null, rel_tol, np.empty(c))
        return NullOutcome(torch.from_numpy(p_value).to(job.y.dtype), torch.from_numpy(null))

    def _vector_null(self, job: NullJob) -> NullOutcome:
        """A whole-vector statistic's p-value (1,) and (K, 1) null with the compiled kernel, in tasks of shuffles."""
        from propgrad.stats import cpu_kernels

        kernel, y, k = job.kernel, job.y, job.k
        assert isinstance(kernel, VectorNull)
        n, c = y.shape
        prepared, scale = kernel.cpu_prepare(y)
        workers, shuffles = vector_split(n, c, k, threads_available())
        shuffles = self.chunk_size or shuffles
        observed = job.observed.to(torch.float64).cpu().numpy()
        rel_tol = 1000 * torch.finfo(y.dtype).eps
        if job.sequential is not None:
            perms = self.memo.permutations(n, k, job.seed, job.permutation_stream).numpy()

            def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
                return kernel.cpu_block(prepared, perms[s:e], np.empty((e - s, 1))) / scale

            p, drawn = sequential_test(null_block, observed, k, job.sequential, rel_tol, shuffles)
            p_value, drawn_t = as_tensors(p, drawn, y.dtype, y.device)
            return NullOutcome(p_value, drawn=drawn_t)
        null = np.empty((k, 1))
        run_tasks(_shuffle_task(kernel, prepared, null), self._shuffle_tasks(job, shuffles), workers)
        if scale != 1.0:
            null /= scale  # a power of two: exact, as the observed statistic's
        p_value = cpu_kernels.two_sided_p_values(observed, null, rel_tol, np.empty(1))
        return NullOutcome(torch.from_numpy(p_value).to(y.dtype), torch.from_numpy(null))

    def _shuffle_tasks(self, job: NullJob, shuffles: int) -> Any:
        """``(start, rows)`` tasks of the seeded permutations: streamed, or slices of the memoised matrix."""
        n = job.y.shape[0]
        if job.stream:
            return ((s, rows.copy()) for s, rows in permutation_blocks(n, job.k, job.seed, job.permutation_stream))
        perms = self.memo.permutations(n, job.k, job.seed, job.permutation_stream).numpy()
        return ((s, perms[s : s + shuffles]) for s in range(0, job.k, shuffles))


def _check_memory(chunk_size: Any, memory_budget: Any) -> None:
    """Check a backend's memory settings (they are checked when the backend is made)."""
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", hint="permutations per chunk, or None")
    check_int(memory_budget, "memory_budget", hint="a rough bound in bytes on the temporaries")


def _shuffle_task(kernel: GradientNull | VectorNull, block: np.ndarray, null: np.ndarray) -> Any:
    """A task filling the rows of ``null`` that one ``(start, rows)`` of permutations gives."""

    def task(item: tuple[int, np.ndarray]) -> None:
        s, rows = item
        kernel.cpu_block(block, rows, null[s : s + rows.shape[0]])

    return task


@dataclass
class TorchBackend:
    """Any statistic on any device with torch operations, column block by column block.

    Attributes:
        memo: The permutation memo (also of the index tensors a kernel derives from the permutations).
        chunk_size: Shuffles per chunk (default: as many as keep one chunk's temporaries within
            4 MB, cache-sized, or ``memory_budget`` if smaller).
        memory_budget: Rough bound in bytes on the temporaries, including the (K, columns) null
            statistics of one block of columns.
    """

    memo: PermutationMemo = field(default_factory=PermutationMemo)
    chunk_size: int | None = None
    memory_budget: int = MEMORY_BUDGET
    compiled: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_memory(self.chunk_size, self.memory_budget)

    def supports(self, kernel: NullStatistic, device: torch.device) -> bool:
        return not isinstance(kernel, VectorNull)  # one statistic over all columns: the vector backend's

    def columns_per_block(self, kernel: NullStatistic, k: int, c: int, itemsize: int = 8) -> int:
        return max(1, min(c, kernel.columns_per_block(c, itemsize), self.memory_budget // (2 * k * itemsize)))

    def null(self, job: NullJob) -> NullOutcome:
        """The p-values (and kept null) with the torch kernels."""
        kernel, y, k, seed, version = job.kernel, job.y, job.k, job.seed, job.permutation_stream
        n, c = y.shape
        null_dtype = torch.float64 if isinstance(kernel, GradientNull) else y.dtype
        if job.sequential is not None:
            return self._sequential(job)
        bound: tuple[torch.Tensor, ...] = ()
        if not job.stream:
            perms = self.memo.permutations(n, k, seed, version).to(y.device)
            signature = kernel.signature
            grid = (n, k, seed, version, str(y.device), y.dtype)
            key = None if signature is None else (type(kernel).__name__, signature, *grid)
            bound = self.memo.memoised(key, lambda: kernel.bind(perms, y.dtype))
        itemsize = _null_itemsize(kernel, y)
        cols = self.columns_per_block(kernel, k, c, itemsize)
        pvals, nulls = [], []
        for c0 in range(0, c, cols):
            yc = y[:, c0 : c0 + cols].contiguous()
            prepared = kernel.prepare(yc)
            per_permutation = max(1, kernel.bytes_per_permutation(yc.shape[1], itemsize))
            b = self.chunk_size or max(1, min(self.memory_budget, CHUNK_BYTES) // per_permutation)
            null = torch.empty(k, yc.shape[1], dtype=null_dtype, device=y.device)
            if job.stream:
                _run_streamed(kernel, prepared, null, (n, seed, version), b)
            else:
                for s in range(0, k, b):
                    null[s : s + b] = kernel.run(prepared, bound, s, min(s + b, k))
            pvals.append(two_sided_p_values(job.observed[c0 : c0 + cols].to(null_dtype), null, y.dtype))
            if c <= KEEP_NULL_MAX_COLUMNS:
                nulls.append(null)
        null_t = torch.cat(nulls, 1) if c <= KEEP_NULL_MAX_COLUMNS else None
        return NullOutcome(torch.cat(pvals), null_t)

    def _sequential(self, job: NullJob) -> NullOutcome:
        """The Besag-Clifford test (:mod:`propgrad.stats.sequential`) with the torch kernels."""
        kernel, y = job.kernel, job.y
        perms = self.memo.permutations(y.shape[0], job.k, job.seed, job.permutation_stream).to(y.device)
        bound = kernel.bind(perms, y.dtype)

        def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
            if isinstance(columns, np.ndarray):
                columns = torch.from_numpy(columns).to(y.device)
            return kernel.run(kernel.prepare(y[:, columns]), bound, s, e).to(torch.float64).cpu().numpy()

        null_dtype = torch.float64 if isinstance(kernel, GradientNull) else y.dtype
        observed = job.observed.to(null_dtype).cpu().numpy()
        rel_tol = 1000 * torch.finfo(y.dtype).eps
        block = self.chunk_size or SEQUENTIAL_BLOCK
        p, drawn = sequential_test(null_block, observed, job.k, job.sequential or 0, rel_tol, block)
        p_value, drawn_t = as_tensors(p, drawn, y.dtype, y.device)
        return NullOutcome(p_value, drawn=drawn_t)


def _run_streamed(kernel: NullStatistic, prepared: Any, null: torch.Tensor, grid: tuple[int, int], chunk: int) -> None:
    """Fill ``null`` (K, C) with the kernel's statistics while drawing the seeded permutations by block.

    ``grid`` is ``(n, seed, stream)``: the steps, the seed of the permutations and its stream version.
    """
    (n, seed, version), k = grid, null.shape[0]
    for s, block in permutation_blocks(n, k, seed, version):
        bound = kernel.bind(torch.from_numpy(block).to(null.device), null.dtype)
        rows = block.shape[0]
        for j in range(0, rows, chunk):
            null[s + j : s + min(j + chunk, rows)] = kernel.run(prepared, bound, j, min(j + chunk, rows))


@dataclass(frozen=True)
class TestPlan:
    """How one test runs, chosen once: the backend, its column blocks, whether permutations are streamed.

    Attributes:
        backend: The backend computing the null.
        columns: Columns of null statistics per block as the size check counts them (float64): 1 for
            a whole-vector statistic, whose null is (K, 1) whatever C is.
        stream: No (K, N) matrix of permutations: they are drawn block by block (a first test for its
            (N, K, seed, stream version)) or inside the kernel (:func:`propgrad.stats.strategy.draws_in_kernel`).
        observed_columns: Columns per block of the null kernel's evaluations, in which the
            observed statistic is evaluated too (:meth:`propgrad.stats.statistic.Statistic.observed`).
        null_columns: Columns of the whole null distribution: C, or 1 for a whole-vector statistic.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    backend: Backend
    columns: int
    stream: bool
    observed_columns: int
    null_columns: int


def plan_test(
    kernel: NullStatistic, y: torch.Tensor, k: int, shuffles: tuple[int, int], sequential: int | None, backends: Any
) -> TestPlan:
    """Choose the first of ``backends`` that supports ``kernel`` on ``y``'s device, and how it runs.

    ``shuffles`` is the permutations' (seed, stream version). A fixed-K test that processes all
    columns at once streams its permutations when its (N, K, seed, stream version) is new to the
    backend's memo (a second test with it memoises the matrix). A whole-vector statistic reads all C
    columns at once but has one column of null statistics, (K, 1): the plan counts one column for it.
    """
    backend = next(b for b in backends if b.supports(kernel, y.device))
    n, c = y.shape
    cols = backend.columns_per_block(kernel, k, c)
    fused = backend.compiled and isinstance(kernel, GradientNull)
    if fused and draws_in_kernel(c, shuffles[1], sequential is not None):
        stream = True  # the kernel draws each shuffle as it scores it: no matrix, as when streaming
    else:
        stream = sequential is None and cols >= c and backend.memo.first_use(n, k, *shuffles)
    observed_cols = c if sequential is not None else backend.columns_per_block(kernel, k, c, _null_itemsize(kernel, y))
    null_cols = 1 if isinstance(kernel, VectorNull) else c
    return TestPlan(backend, min(cols, null_cols), stream, observed_cols, null_cols)


def _null_itemsize(kernel: NullStatistic, y: torch.Tensor) -> int:
    """Bytes per null statistic: float64 for the gradient, the outputs' dtype otherwise."""
    return 8 if isinstance(kernel, GradientNull) else y.element_size()


_MEMO = PermutationMemo()
COMPILED = CompiledBackend(_MEMO)
"""The default compiled backend (sharing its memo with :data:`TORCH`)."""
TORCH = TorchBackend(_MEMO)
"""The default torch backend."""
VECTOR = VectorBackend(_MEMO)
"""The default backend of the whole-vector statistics (it must come before :data:`TORCH`, which takes any kernel)."""
BACKENDS: tuple[Backend, ...] = (COMPILED, VECTOR, TORCH)
"""The backends :func:`propgrad.stats.permutation.permutation_test` chooses from, in order."""
