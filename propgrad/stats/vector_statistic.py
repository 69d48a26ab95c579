"""One statistic for the whole output vector: how far the model's whole belief moves along the property.

``"vector_l1"`` and ``"vector_l2"`` are the mean over the N steps of the L1 or L2 norm of the
derivative of the output vector, ``(1/N) sum_i ||dF/dx (x_i)||``, the derivative of every column
estimated with the stencil of the gradient statistic (``numpy.gradient``'s, see
:func:`propgrad.stats.gradient.finite_difference_weights`). C output columns give one statistic,
so a model with 1000 classes needs no target. The permutation test shuffles whole rows (every
column of a step moves together) and compares the statistic with its values over the shuffles, as
for the per-column statistics: p-values keep their meaning and their validity.

:class:`VectorNull` is the null kernel (the interface of :mod:`propgrad.stats.null_statistics`,
except that its statistics have one column whatever the C columns it is given). On the CPU the
compiled backend (:class:`propgrad.stats.backends.CompiledBackend`) computes its null distribution
in the compiled kernel :func:`propgrad.stats.cpu_kernels.vector_null` (:meth:`VectorNull.cpu_block`),
split into tasks of shuffles by :func:`vector_split`; :class:`VectorBackend` computes it with torch
operations on any device, in float64 (the two agree to float64 rounding). One column of null
statistics takes no column blocks, so both keep the (K, 1) null distribution, and the size check
counts it as one column whatever C is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from propgrad.core.validation import check_int
from propgrad.stats.gradient import finite_difference_weights
from propgrad.stats.kernels import compiled_kernels
from propgrad.stats.null_statistics import NullStatistic, stencil_rows, two_sided_p_values
from propgrad.stats.permutations import PermutationMemo, permutation_blocks
from propgrad.stats.sequential import as_tensors, sequential_test
from propgrad.stats.strategy import TASK_VALUES, WORK_PER_WORKER

if TYPE_CHECKING:
    from propgrad.stats.backends import NullJob, NullOutcome

__all__ = ["VECTOR_LABELS", "VECTOR_NORMS", "VectorBackend", "VectorNull", "vector_split"]

VECTOR_NORMS = {"vector_l1": 1, "vector_l2": 2}
"""The whole-vector statistics and the order of their norm."""
VECTOR_LABELS = {"vector_l1": "E||grad||_1", "vector_l2": "E||grad||_2"}
"""What reports and plots call them."""
CHUNK_BYTES = 4 * 2**20
MEMORY_BUDGET = 128 * 2**20
SEQUENTIAL_BLOCK = 256


class VectorNull:
    """Mean over steps of the L1 or L2 norm of the derivative of the output vector, for many shuffles.

    A shuffle permutes the rows (steps) of the (N, C) outputs; the stencil stays put. The
    derivative of a shuffle is ``sum_k w[i, k] * y[perm[idx[i, k]]]`` (all C columns at once), its
    norm is taken over the columns and the mean over the steps, in float64. Outputs whose
    derivatives' squares would leave float64 are scaled by a power of two first (exact), and the
    statistic scaled back. :meth:`run` computes it with torch operations (any device),
    :meth:`cpu_block` with the compiled kernel (the stencil's rows classified as the gradient's,
    :func:`propgrad.stats.null_statistics.stencil_rows`).
    """

    signature = None

    def __init__(self, x: torch.Tensor, norm: int, *, periodic: bool, period: float | None, edge_order: int) -> None:
        indices, weights = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
        self.n = int(indices.shape[0])
        self.norm = norm
        self.indices = indices  # (N, 3) long on the values' device
        self.weights = weights  # (N, 3) float64
        self._columns = tuple(zip(indices.unbind(1), (w[:, None] for w in weights.unbind(1))))
        self.rows = stencil_rows(indices.cpu(), weights.cpu())  # the compiled kernel's stencil

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return (perms,)

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return 5 * self.n * c * 8  # three gathered (N, C) float64 blocks, the derivative and its magnitude

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The (N, C) outputs in float64, scaled by a power of two when their derivatives' squares
        would overflow or underflow, and that scale."""
        y64 = y.to(torch.float64)
        spread = float(y64.max() - y64.min()) if y64.numel() else 0.0
        bound = spread * float(self.weights.abs().sum(1).max())  # no |derivative| exceeds it
        scale = 1.0 if bound == 0 or 2.0**-400 <= bound <= 2.0**400 else 2.0 ** -round(math.log2(bound))
        return (y64 * scale if scale != 1.0 else y64), scale

    def cpu_prepare(self, y: torch.Tensor) -> tuple[np.ndarray, float]:
        """:meth:`prepare` for the compiled kernel: the scaled float64 outputs (a contiguous numpy array), the scale."""
        y64, scale = self.prepare(y.detach().cpu())
        return np.ascontiguousarray(y64.numpy()), scale

    def cpu_block(self, y: np.ndarray, perms: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (B, 1) float64 with the statistics of shuffles ``perms`` (B, N) of the prepared
        outputs ``y`` (:meth:`cpu_prepare`; divide by its scale afterwards) with the compiled kernel."""
        from propgrad.stats import cpu_kernels

        return cpu_kernels.vector_null(y, perms, self.rows, self.norm, out)

    def compiled_statistic(self, y: torch.Tensor) -> torch.Tensor:
        """The (1,) float64 statistic of the (N, C) outputs in their own order with the compiled kernel
        (the identity shuffle: bit for bit the null statistic of a shuffle that leaves them in place)."""
        prepared, scale = self.cpu_prepare(y)
        out = self.cpu_block(prepared, np.arange(self.n, dtype=np.int32)[None], np.empty((1, 1)))
        return torch.from_numpy(out[0] / scale).to(y.device)

    def run(
        self, prepared: tuple[torch.Tensor, float], bound: tuple[torch.Tensor, ...], s: int, e: int
    ) -> torch.Tensor:
        """(e - s, 1) float64 statistics of shuffles ``s:e`` with torch operations."""
        y, scale = prepared
        perms = bound[0][s:e]
        b, n = perms.shape
        shuffled = y.index_select(0, perms.reshape(-1).long()).view(b, n, y.shape[1])  # whole rows move
        (i0, w0), (i1, w1), (i2, w2) = self._columns
        derivative = shuffled.index_select(1, i0).mul_(w0)  # (B, N, C)
        derivative.addcmul_(shuffled.index_select(1, i1), w1).addcmul_(shuffled.index_select(1, i2), w2)
        if self.norm == 1:
            norms = derivative.abs_().sum(2)
        else:
            norms = torch.linalg.vector_norm(derivative, dim=2)
        return (norms.sum(1) / (self.n * scale))[:, None]


def compiled_available(device: torch.device) -> bool:
    """Whether the compiled kernels can compute on ``device`` (the CPU, with numba importable)."""
    return device.type == "cpu" and compiled_kernels() is not None


def vector_split(n: int, c: int, k: int, threads: int) -> tuple[int, int]:
    """``(workers, shuffles per task)`` of the compiled whole-vector null: the rule of
    :mod:`propgrad.stats.strategy` with one column block of all C columns (a shuffle's norms need
    every column), so only the shuffles are split.

    Args:
        n: Steps.
        c: Output columns.
        k: Shuffles.
        threads: The calling thread's ``torch.get_num_threads()``.
    """
    workers = max(1, min(threads, k * n * c // WORK_PER_WORKER))
    return workers, max(1, min(k, TASK_VALUES // (n * c)))


@dataclass
class VectorBackend:
    """The null distribution of a whole-vector statistic (:class:`VectorNull`) with torch operations.

    It serves only :class:`VectorNull` kernels (the column-wise backends assume one statistic per
    column), on any device; on the CPU the compiled backend comes first and serves them when numba
    is available. It draws the same seeded permutations as the others do (from the shared memo, or
    streamed block by block for a first test of an (N, K, seed, stream)).

    Attributes:
        memo: The permutation memo.
        chunk_size: Shuffles per chunk (default: as many as keep one chunk's temporaries within
            4 MB, or ``memory_budget`` if smaller).
        memory_budget: Rough bound in bytes on one chunk's temporaries.
    """

    memo: PermutationMemo = field(default_factory=PermutationMemo)
    chunk_size: int | None = None
    memory_budget: int = MEMORY_BUDGET
    compiled: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.chunk_size is not None:
            check_int(self.chunk_size, "chunk_size", hint="permutations per chunk, or None")
        check_int(self.memory_budget, "memory_budget", hint="a rough bound in bytes on the temporaries")

    def supports(self, kernel: NullStatistic, device: torch.device) -> bool:
        return isinstance(kernel, VectorNull)

    def columns_per_block(self, kernel: NullStatistic, k: int, c: int, itemsize: int = 8) -> int:
        return c  # the statistic needs every column at once

    def null(self, job: NullJob) -> NullOutcome:
        """The p-value (1,) and the kept (K, 1) null distribution (or the sequential test's draws)."""
        from propgrad.stats.backends import NullOutcome

        kernel, y, k = job.kernel, job.y, job.k
        assert isinstance(kernel, VectorNull)
        n = y.shape[0]
        prepared = kernel.prepare(y)
        per_permutation = max(1, kernel.bytes_per_permutation(y.shape[1], 8))
        chunk = self.chunk_size or max(1, min(self.memory_budget, CHUNK_BYTES) // per_permutation)
        observed = job.observed.to(torch.float64)
        if job.sequential is not None:
            perms = self.memo.permutations(n, k, job.seed, job.permutation_stream).to(y.device)

            def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
                return _fill(kernel, prepared, perms[s:e], chunk).cpu().numpy()

            rel_tol = 1000 * torch.finfo(y.dtype).eps
            block = self.chunk_size or SEQUENTIAL_BLOCK
            p, drawn = sequential_test(null_block, observed.cpu().numpy(), k, job.sequential, rel_tol, block)
            p_value, drawn_t = as_tensors(p, drawn, y.dtype, y.device)
            return NullOutcome(p_value, drawn=drawn_t)
        if job.stream:
            parts = [
                _fill(kernel, prepared, torch.from_numpy(block).to(y.device), chunk)
                for _, block in permutation_blocks(n, k, job.seed, job.permutation_stream)
            ]
            null = torch.cat(parts)
        else:
            perms = self.memo.permutations(n, k, job.seed, job.permutation_stream)
            null = _fill(kernel, prepared, perms.to(y.device), chunk)
        return NullOutcome(two_sided_p_values(observed, null, y.dtype), null)


def _fill(kernel: VectorNull, prepared: Any, perms: torch.Tensor, chunk: int) -> torch.Tensor:
    """The (B, 1) float64 statistics of the (B, N) permutations ``perms``, ``chunk`` shuffles at a time."""
    out = torch.empty(perms.shape[0], 1, dtype=torch.float64, device=perms.device)
    for s in range(0, perms.shape[0], chunk):
        e = min(s + chunk, perms.shape[0])
        out[s:e] = kernel.run(prepared, (perms,), s, e)
    return out
