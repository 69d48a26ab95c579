"""The test statistic: its name, the label reports print, its observed value and its null kernel, in one place.

A :class:`Statistic` is what the permutation test takes. The built-ins are ``"gradient"`` (the
expected property gradient magnitude E|∇X|, :func:`propgrad.stats.gradient.property_gradient`)
and ``"pearson"`` (|Pearson r| between the property values and the outputs); a user callable
``f(permuted_outputs (B, N, C), values (N,)) -> (B, C)`` is wrapped by :func:`as_statistic`.
``"vector_l1"`` and ``"vector_l2"`` (:mod:`propgrad.stats.vector_statistic`) give one statistic for
all C columns: the mean over steps of the norm of the output vector's derivative.

:meth:`Statistic.observed` computes the statistic of the outputs in their own order directly
(no permutation is drawn); it uses the arithmetic of the statistic's null kernel
(:mod:`propgrad.stats.null_statistics`), so the observed value equals the null statistic of the
identity shuffle bit for bit and ties between them are exact. :func:`observed_statistic` is its
checked public door, the score every part of the project reports.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from propgrad.core.validation import check_device
from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.gradient import stencil_dtype
from propgrad.stats.null_statistics import (
    CallableNull,
    GradientNull,
    NullStatistic,
    PearsonNull,
    StatisticFn,
    gradient_null,
)
from propgrad.stats.vector_statistic import VECTOR_LABELS, VECTOR_NORMS, VectorNull, compiled_available

__all__ = ["LABELS", "STATISTICS", "Grid", "Statistic", "as_statistic", "check_statistic", "observed_statistic"]

STATISTICS = ("gradient", "pearson", *VECTOR_NORMS)
LABELS = {"gradient": "E|grad|", "pearson": "|Pearson r|", **VECTOR_LABELS}
"""The label reports and plots print for a built-in statistic (a callable's label is its name)."""


@dataclass(frozen=True)
class Grid:
    """Where the outputs lie: the property values and how the ends are treated.

    Attributes:
        values: (N,) strictly increasing float64 property values (unit steps 0..N-1 for none).
        periodic: The sequence wraps around (a full rotation; statistic "gradient").
        period: Period for ``periodic`` (None: span plus one mean step).
        edge_order: 1 (numpy.gradient's default) or 2, the one-sided end differences of "gradient".
    """

    values: torch.Tensor
    periodic: bool = False
    period: float | None = None
    edge_order: int = 1


@dataclass(frozen=True)
class Statistic:
    """A test statistic: name, label, observed value, null kernel.

    Attributes:
        name: ``"gradient"``, ``"pearson"`` or the callable's ``__name__``.
        label: What reports and plots call it (:data:`LABELS`; a callable's name).
        fn: The user callable, None for a built-in.
    """

    name: str
    label: str
    fn: StatisticFn | None = None

    def null_kernel(self, grid: Grid, k: int, c: int) -> NullStatistic:
        """The kernel computing this statistic for K shuffles of C output columns on ``grid``."""
        if self.fn is not None:
            return CallableNull(self.fn, grid.values)
        if self.name == "pearson":
            return PearsonNull(grid.values)
        if self.name in VECTOR_NORMS:  # one statistic for all C columns (propgrad.stats.vector_statistic)
            norm = VECTOR_NORMS[self.name]
            return VectorNull(grid.values, norm, periodic=grid.periodic, period=grid.period, edge_order=grid.edge_order)
        return gradient_null(grid.values, periodic=grid.periodic, period=grid.period, edge_order=grid.edge_order)

    def observed(
        self,
        scored: torch.Tensor,
        grid: Grid,
        kernel: NullStatistic | None = None,
        block: int | None = None,
        compiled: bool = True,
    ) -> torch.Tensor:
        """The statistic of the (N, C) outputs in their own order, one per column.

        Args:
            scored: (N, C) float outputs, checked (:func:`propgrad.stats.coercion.as_outputs`).
            grid: The checked grid.
            kernel: This statistic's null kernel for ``grid`` when the caller has built it already.
            block: Columns evaluated at once (default: all). The torch kernels' rounding may depend
                on how many columns they handle together, so the test evaluates the observed
                statistic in the column blocks of its null (the gradient's never depends on it).
            compiled: Evaluate "gradient" in the order of the compiled CPU kernels (default, on
                the CPU in float64 numpy) and "vector_l1"/"vector_l2" with their compiled kernel
                (default, where it can run: the CPU with numba); False: with the torch kernel, as
                the torch backends compute the null (the two may differ in the last bits).

        Returns:
            (C,) statistics on the outputs' device ((1,) for a whole-vector statistic): float64 for
            "gradient", "vector_l1" and "vector_l2" (the kernels accumulate in float64), the
            outputs' dtype otherwise.
        """
        kernel = self.null_kernel(grid, 1, scored.shape[1]) if kernel is None else kernel
        if isinstance(kernel, GradientNull) and compiled:
            return torch.from_numpy(_gradient_in_order(scored, kernel)).to(scored.device)
        if isinstance(kernel, VectorNull) and compiled and compiled_available(scored.device):
            return kernel.compiled_statistic(scored)
        n, c = scored.shape
        bound = kernel.bind(torch.arange(n, device=scored.device)[None], scored.dtype)
        step = c if block is None else block
        parts = [
            kernel.run(kernel.prepare(scored[:, c0 : c0 + step].contiguous()), bound, 0, 1)[0]
            for c0 in range(0, c, step)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _gradient_in_order(y: torch.Tensor, kernel: GradientNull) -> np.ndarray:
    """E|∇X| of ``y`` (N, C) in its own order: the compiled kernels' terms and order, in float64.

    ``acc += w0 * |y[u] - y[v]|`` for a pair row, ``acc += |w0 y[u] + w1 y[v] + w2 y[t]|`` for a
    three-point row, rows in order, then ``acc / N`` (:mod:`propgrad.stats.cpu_kernels`). Where the
    compiled kernels run, it is theirs on the identity shuffle (the same operations; a few
    microseconds instead of a numpy pass per row); elsewhere numpy does the same sums.
    """
    y_np = y.detach().cpu().numpy()
    if compiled_available(torch.device("cpu")) and y_np.dtype in (np.float32, np.float64):
        identity = np.arange(kernel.n, dtype=np.int32)[None]
        return kernel.cpu_block(np.ascontiguousarray(y_np), identity, np.empty((1, y_np.shape[1])))[0]
    u, v, t, w0, w1, w2, pair = kernel.rows
    y64 = y_np.astype(np.float64)
    acc = np.zeros(y64.shape[1])
    for r in range(u.shape[0]):
        if pair[r]:
            acc += w0[r] * np.abs(y64[u[r]] - y64[v[r]])
        else:
            acc += np.abs(w0[r] * y64[u[r]] + w1[r] * y64[v[r]] + w2[r] * y64[t[r]])
    return acc / kernel.n


def check_statistic(statistic: Any) -> Union[str, StatisticFn]:
    """Check a test statistic: one of :data:`STATISTICS` or a callable; returned unchanged.

    Raises:
        InvalidParameterError: an unknown name (the message lists the names and says what a
            statistic is, e.g. for ``"integrated_gradients"``, an attribution method, not a statistic).
        ParameterTypeError: neither a string nor a callable.
    """
    if isinstance(statistic, str):
        if statistic in STATISTICS:
            return statistic
        close = difflib.get_close_matches(statistic.lower(), STATISTICS, n=1, cutoff=0.6)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else "; a statistic summarises the outputs along the sequence (attribution methods such as "
            "Integrated Gradients are the benchmark's baselines, propgrad.get_baseline, not statistics)"
        )
        known = ", ".join(map(repr, STATISTICS))
        raise InvalidParameterError(
            f"statistic must be one of {known} or a callable f(permuted_outputs (B, N, C), values (N,)) -> (B, C), "
            f"got {statistic!r}{hint}"
        )
    if callable(statistic):
        return statistic
    raise ParameterTypeError(
        f"statistic must be a name ({', '.join(STATISTICS)}) or a callable, got {type(statistic).__name__}"
    )


def as_statistic(statistic: Union[str, StatisticFn, Statistic]) -> Statistic:
    """The :class:`Statistic` of a checked name or callable (a :class:`Statistic` is returned as is)."""
    if isinstance(statistic, Statistic):
        return statistic
    if isinstance(statistic, str):
        return Statistic(statistic, LABELS[statistic])
    name = getattr(statistic, "__name__", type(statistic).__name__)
    return Statistic(name, name, statistic)


def observed_statistic(
    outputs: Any,
    values: Any = None,
    *,
    statistic: Union[str, StatisticFn] = "gradient",
    periodic: bool = False,
    period: float | None = None,
    device: torch.device | str | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """The test statistic of outputs in their own order, without a test (the project's score).

    Equals the ``statistic`` of :func:`propgrad.stats.permutation.permutation_test` for the same
    outputs (which does not depend on the permutations), computed directly.

    Args:
        outputs: (N,) or (N, C) outputs for N >= 2 ordered steps (tensor, numpy array or list).
        values: (N,) strictly increasing property values, or None for unit steps.
        statistic: ``"gradient"``, ``"pearson"``, ``"vector_l1"``, ``"vector_l2"`` or a callable (see
            :mod:`propgrad.stats.statistic`).
        periodic: The sequence wraps around (statistics "gradient", "vector_l1", "vector_l2").
        period: Period for ``periodic`` (default: span plus one mean step).
        device: Device to compute on (default: that of ``outputs``).
        edge_order: 1 (numpy.gradient's default) or 2, the one-sided end differences of the
            derivative statistics.

    Returns:
        Shape () for 1-D outputs, (C,) otherwise ((1,) for ``"vector_l1"``/``"vector_l2"``), in the
        outputs' float dtype (float64 where the gradient of that dtype would overflow).

    Raises:
        InvalidParameterError: bad outputs or values (see :func:`propgrad.stats.gradient.property_gradient`),
            an unknown statistic, fewer than 2 steps, a bad ``edge_order``, a callable returning the wrong shape.
    """
    stat = as_statistic(check_statistic(statistic))
    y, one_d = as_outputs(outputs, device=None if device is None else check_device(device))
    n, c = y.shape
    if n < 2:
        raise InvalidParameterError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    grid = Grid(as_values(values, n, dtype=torch.float64, device=y.device), periodic, period, edge_order)
    kernel = stat.null_kernel(grid, 1, c)
    if isinstance(kernel, GradientNull):
        y = y.to(stencil_dtype(y, kernel.weights, n))
    observed = stat.observed(y, grid, kernel).to(y.dtype)
    return observed[0] if one_d else observed
