"""Kernels computing a statistic for many permutations of the outputs at once (the null distribution).

Used by :func:`propgrad.stats.permutation.permutation_test`, with :func:`two_sided_p_values`, the
p-values from a null distribution. Every kernel has the same small interface:

- ``signature``: hashable description of the state ``bind`` derives from the permutations (the
  driver memoises ``bind`` under it), or None when ``bind`` is too cheap to memoise;
- ``bind(perms, dtype)``: tensors derived once per call from the (K, N) permutations;
- ``columns_per_block(c, itemsize)`` and ``bytes_per_permutation(c, itemsize)``: sizes of the
  column blocks and of the temporaries per shuffle, for the driver's memory budget;
- ``prepare(y)``: per column block state; ``run(prepared, bound, s, e)``: the (e - s, C)
  statistics of shuffles ``s:e``.

Each shuffle is reduced on its own, so the driver's chunking never changes a result.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Hashable, Protocol

import numpy as np
import torch
from torch.nn.functional import embedding_bag

from propgrad.errors import InvalidParameterError
from propgrad.stats.gradient import finite_difference_weights, grid_scale

StatisticFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VECTOR_MIN_COLUMNS = 8  # from this many columns the CPU kernel vectorises over columns, below it over steps


class NullStatistic(Protocol):
    """The interface every null-statistic kernel implements (see the module docstring)."""

    signature: Hashable | None

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Tensors derived once per call from the (K, N) permutations."""
        ...

    def columns_per_block(self, c: int, itemsize: int) -> int:
        """Output columns per block."""
        ...

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        """Bytes of temporaries per shuffle for ``c`` columns."""
        ...

    def prepare(self, y: torch.Tensor) -> Any:
        """Per column block state from the (N, c) outputs."""
        ...

    def run(self, prepared: Any, bound: tuple[torch.Tensor, ...], s: int, e: int) -> torch.Tensor:
        """The (e - s, c) statistics of shuffles ``s:e``."""
        ...


def two_sided_p_values(observed: torch.Tensor, null: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Two-sided p-values around the null mean, ties counted as extreme: (b + 1) / (K + 1).

    ``b = #{k : |null_k - m| >= |observed - m| - tol}`` with ``m`` the mean of the finite null
    statistics and ``tol = 1000 * eps * max(|observed|, |m|, max_k |null_k|)``; non-finite null
    statistics count as extreme.

    Args:
        observed: Observed statistics (C,).
        null: Permuted statistics (K, C).
        dtype: The outputs' dtype, whose ``eps`` sets ``tol`` and in which the p-values are
            returned (default: that of ``null``).

    Returns:
        p-values (C,) in ``dtype``; 1 where ``observed`` or the null mean is NaN. The
        comparison runs in float64, whatever the dtype (the tolerance is that dtype's).
    """
    k = null.shape[0]
    out_dtype = null.dtype if dtype is None else dtype
    null, observed = null.to(torch.float64), observed.to(torch.float64)  # the mean does not depend on blocking
    lo, hi = null.amin(0), null.amax(0)  # NaN or +-inf anywhere shows in the extremes (faster than aminmax)
    if bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        mean = null.mean(0)
        scale = torch.maximum(torch.maximum(observed.abs(), mean.abs()), torch.maximum(lo.abs(), hi.abs()))
        extra = 0
    else:
        finite = torch.isfinite(null)
        count = finite.sum(0, dtype=torch.int32)
        mean = torch.where(finite, null, 0).sum(0) / count.clamp_min(1)
        mean = torch.where(count > 0, mean, torch.nan)
        scale = torch.maximum(torch.maximum(observed.abs(), mean.abs()), torch.where(finite, null.abs(), 0).amax(0))
        extra = (~finite).sum(0, dtype=torch.int32)
        null = torch.where(finite, null, torch.nan)  # counted once, in extra (an infinity would pass a bound too)
    dev = (observed - mean).abs() - 1000 * torch.finfo(out_dtype).eps * scale
    # |s - m| >= dev  <=>  s >= m + dev  or  s <= m - dev  (for dev > 0; always true otherwise)
    b = (null >= mean + dev).sum(0, dtype=torch.int32) + (null <= mean - dev).sum(0, dtype=torch.int32) + extra
    b = torch.where(dev > 0, b, k)
    p = ((b.to(torch.float64) + 1) / (k + 1)).to(out_dtype)
    return torch.where(torch.isfinite(observed) & torch.isfinite(mean), p, torch.ones_like(p))


class GradientNull:
    """Expected property gradient magnitude (mean |dF/dx|, numpy.gradient's stencils) of many shuffles.

    The stencil's rows are classified once (:func:`stencil_rows`): a row with two opposite weights
    ``+-w`` and a zero (unit or uniform steps, periodic uniform grids, first-order ends) is a
    "pair" row, ``w * |F[u] - F[v]|``; any other row is a three-point row. Every statistic is
    accumulated in float64 in the order of the rows (:mod:`propgrad.stats.cpu_kernels` gives the
    arithmetic), so it does not depend on how the work is blocked. On the CPU the driver runs the
    compiled kernels (:meth:`cpu_block`); on other devices :meth:`run` computes the same terms
    with torch operations, in float64 on the input's device.
    """

    def __init__(self, x: torch.Tensor, *, periodic: bool, period: float | None, edge_order: int) -> None:
        idx, w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
        self.weights = w  # for the driver's choice of dtype (propgrad.stats.gradient.stencil_dtype)
        self.n = idx.shape[0]
        self.signature = None
        self.rows = stencil_rows(idx.cpu(), w.cpu())
        u, v, t, w0, w1, w2, pair = self.rows
        dev = x.device
        self._t = tuple(torch.from_numpy(a).to(dev) for a in (u, v, t))
        self._w = tuple(torch.from_numpy(a).to(dev) for a in (w0, w1, w2))
        self._pair = torch.from_numpy(pair).to(dev)

    def cpu_block(self, y: np.ndarray, perms: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (B, c) float64 with the statistics of shuffles ``perms`` (B, N) int32 of ``y`` (N, c)."""
        from propgrad.stats import cpu_kernels

        if y.shape[1] >= VECTOR_MIN_COLUMNS:
            return cpu_kernels.null_by_rows(y, perms, self.rows, out)
        return cpu_kernels.null_by_columns(np.ascontiguousarray(y.T), perms, self.rows, out)

    def cpu_stream_block(self, yt: np.ndarray, key: int, row0: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (B, c) float64 with the statistics of stream 2's shuffles ``row0 .. row0 + B - 1`` of the
        columns ``yt`` (c, N), drawn from ``key`` (:func:`propgrad.stats.permutations.stream_key`) as they are used."""
        from propgrad.stats import cpu_kernels

        return cpu_kernels.null_fisher_yates(yt, np.uint64(key), row0, self.rows, out)

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return (perms,)

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return (4 * self.n + 1) * c * 8

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y.to(torch.float64)

    def run(self, y: torch.Tensor, bound: tuple[torch.Tensor, ...], s: int, e: int) -> torch.Tensor:
        """(e - s, C) float64 statistics of shuffles ``s:e`` with torch operations (any device)."""
        perms = bound[0][s:e]
        b, n = perms.shape
        g = y.index_select(0, perms.reshape(-1).long()).view(b, n, y.shape[1])
        u, v, t = (g.index_select(1, i) for i in self._t)
        w0, w1, w2 = (w[:, None] for w in self._w)
        terms = torch.where(self._pair[:, None], w0 * (u - v).abs(), (w0 * u + w1 * v + w2 * t).abs())
        return terms.sum(1) / n


GRADIENT_NULL_MEMO = 64  # grids remembered by gradient_null


def gradient_null(x: torch.Tensor, *, periodic: bool, period: float | None, edge_order: int) -> GradientNull:
    """The :class:`GradientNull` of grid ``x``, built once per grid and reused (a small LRU memo).

    Its stencil depends only on the grid's values, device and end treatment, and the kernel holds
    no state a test changes, so the tests of a batch of images or of a track's checkpoints on one
    grid share one kernel instead of deriving its stencil each time.
    """
    if not (period is None or type(period) in (int, float)):  # the stencil's own checks name what is wrong
        return GradientNull(x, periodic=periodic, period=period, edge_order=edge_order)
    key = (x.detach().cpu().numpy().tobytes(), x.dtype, x.device, periodic, period, edge_order)
    kernel = _GRADIENT_NULLS.get(key)
    if kernel is None:
        kernel = GradientNull(x, periodic=periodic, period=period, edge_order=edge_order)
        _GRADIENT_NULLS[key] = kernel
        while len(_GRADIENT_NULLS) > GRADIENT_NULL_MEMO:
            _GRADIENT_NULLS.popitem(last=False)
    else:
        _GRADIENT_NULLS.move_to_end(key)
    return kernel


_GRADIENT_NULLS: OrderedDict[tuple[Any, ...], GradientNull] = OrderedDict()


def stencil_rows(idx: torch.Tensor, w: torch.Tensor) -> tuple[np.ndarray, ...]:
    """A stencil (N, 3) as the kernels' rows: ``(u, v, t, w0, w1, w2, pair)``, numpy arrays of length N.

    A row whose weights are two exactly opposite numbers and an exact zero becomes a pair row:
    ``w0`` the positive weight, ``u`` its index, ``v`` the negative weight's; every other row
    keeps its three indices and weights.
    """
    idx_np, w_np = idx.numpy().astype(np.int64), w.numpy().astype(np.float64)
    rows = np.arange(idx_np.shape[0])
    live = w_np != 0
    first, last = live.argmax(1), 2 - live[:, ::-1].argmax(1)  # the first and the last non-zero weight
    a, b = w_np[rows, first], w_np[rows, last]
    pair = (live.sum(1) == 2) & (a == -b)
    pos, neg = np.where(a > 0, first, last), np.where(a > 0, last, first)
    u = np.where(pair, idx_np[rows, pos], idx_np[:, 0])
    v = np.where(pair, idx_np[rows, neg], idx_np[:, 1])
    t = np.where(pair, idx_np[rows, neg], idx_np[:, 2])
    w0 = np.where(pair, w_np[rows, pos], w_np[:, 0])
    w1, w2 = np.where(pair, 0.0, w_np[:, 1]), np.where(pair, 0.0, w_np[:, 2])
    return u, v, t, w0, w1, w2, pair


class PearsonNull:
    """|Pearson r| between the values and many permutations of the outputs.

    The numerator ``sum_i xc_i * yc[P[b, i]]`` is one weighted ``embedding_bag`` per chunk; the
    denominator does not depend on the order. r does not change when the values or the outputs are
    scaled, so values of extreme spacing (1e-300 apart) and outputs so large (or small) that their
    squares would overflow (or underflow) their dtype are first scaled by a power of two, which is
    exact; ordinary ones are used as given.
    """

    def __init__(self, x: torch.Tensor) -> None:
        x = x / grid_scale(x)
        self.xc = x - x.mean()
        self.xnorm = self.xc.norm()
        self.signature = self.xc.cpu().numpy().tobytes()

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return perms, self.xc.to(dtype).expand(perms.shape).contiguous()

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return 2 * c * itemsize

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = y * _output_scale(y)
        yc = y - y[:1]  # exactly zero for constant columns, so their r is 0/0 = NaN
        yc = yc - yc.mean(0)
        return yc, self.xnorm.to(y.dtype) * yc.norm(dim=0)

    def run(
        self, prepared: tuple[torch.Tensor, torch.Tensor], bound: tuple[torch.Tensor, ...], s: int, e: int
    ) -> torch.Tensor:
        yc, denom = prepared
        perms, weights = bound
        return (embedding_bag(perms[s:e], yc, per_sample_weights=weights[s:e], mode="sum") / denom).abs()


def _output_scale(y: torch.Tensor) -> float:
    """1.0, or a power of two bringing the largest |output| near 1 when squares of the outputs would leave the dtype."""
    info = torch.finfo(y.dtype)
    magnitude = float(y.abs().max()) if y.numel() else 0.0
    limit = 2.0 ** (math.frexp(info.max)[1] // 2 - 16)  # float32: 2**48; sums of N squares stay finite
    if magnitude == 0 or 1 / limit <= magnitude <= limit:
        return 1.0
    return 2.0 ** -math.floor(math.log2(magnitude))


class CallableNull:
    """A user statistic f(permuted_outputs (B, N, C), values (N,)) -> (B, C)."""

    signature = None

    def __init__(self, fn: StatisticFn, x: torch.Tensor) -> None:
        self.fn, self.x = fn, x

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return (perms,)

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return 3 * self.x.shape[0] * c * itemsize

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def run(self, y: torch.Tensor, bound: tuple[torch.Tensor, ...], s: int, e: int) -> torch.Tensor:
        perms = bound[0][s:e]
        b, n = perms.shape
        permuted = y[perms.reshape(-1)].view(b, n, y.shape[1])
        out = self.fn(permuted, self.x.to(y.dtype))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b, y.shape[1]):
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidParameterError(
                f"statistic {getattr(self.fn, '__name__', self.fn)!r} must return a tensor of shape (B, C) = "
                f"({b}, {y.shape[1]}) for permuted outputs of shape (B, N, C) = {tuple(permuted.shape)}, got {got}"
            )
        return out.to(device=y.device, dtype=y.dtype)
