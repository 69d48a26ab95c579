"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (never 0; the paper's ``b / K`` without the +1 is not a valid p-value).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

Vectorised: one (K, N) matrix of permutation indices serves every output column; statistics for a
chunk of permutations are computed at once (see :mod:`propgrad.null_kernels`-style helpers
below), in chunks over permutations and columns so temporaries stay within ``memory_budget``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
import torch

from torch.nn.functional import embedding_bag

from propgrad.scoring import as_outputs, as_values, finite_difference_weights

StatisticFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

STATISTICS = ("gradient", "pearson")
KEEP_NULL_MAX_COLUMNS = 16
_CACHE: OrderedDict[tuple[int, int, int], torch.Tensor] = OrderedDict()
_CACHE_MAX_ELEMENTS = 8 * 10_000 * 100


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes:
        statistic: Observed statistic, shape () for 1-D outputs, (C,) for (N, C) outputs.
        p_value: Two-sided permutation p-values, same shape.
        significant: Bool tensor, ``p_value < alpha``.
        null_distribution: The K permuted statistics, (K,) or (K, C), kept only when there are at
            most 16 output columns (None otherwise, to bound memory).
        n_permutations: K.
        alpha: Significance level.
        statistic_name: "gradient", "pearson" or the callable's ``__name__``.
    """

    statistic: torch.Tensor
    p_value: torch.Tensor
    significant: torch.Tensor
    null_distribution: torch.Tensor | None = field(repr=False)
    n_permutations: int
    alpha: float
    statistic_name: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the null distribution is left out; it can be large)."""
        return {
            "statistic": self.statistic.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "n_permutations": self.n_permutations,
            "alpha": self.alpha,
            "statistic_name": self.statistic_name,
        }


def permutation_indices(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """K independent uniform random permutations of range(n): argsort of uniform float64 noise.

    Args:
        n: Length of each permutation.
        k: Number of permutations.
        generator: A CPU ``torch.Generator``; it is advanced.

    Returns:
        A long tensor (k, n) on the CPU; row j is the order of the j-th shuffle.
    """
    noise = torch.rand(k, n, generator=generator, dtype=torch.float64)
    return torch.from_numpy(np.argsort(noise.numpy(), axis=1))  # numpy's row sort is ~4x torch's on CPU


def seeded_permutations(n: int, k: int, seed: int) -> torch.Tensor:
    """:func:`permutation_indices` with ``torch.Generator().manual_seed(seed)``, memoised.

    The result depends only on (n, k, seed), so the last few matrices are cached (up to 8 M
    indices in all): scoring many images with the same settings draws the permutations once.
    Do not modify the returned tensor.
    """
    key = (n, k, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    perms = permutation_indices(n, k, torch.Generator(device="cpu").manual_seed(seed))
    if perms.numel() <= _CACHE_MAX_ELEMENTS:
        _CACHE[key] = perms
        while sum(p.numel() for p in _CACHE.values()) > _CACHE_MAX_ELEMENTS:
            _CACHE.popitem(last=False)
    return perms


def two_sided_p_values(observed: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """Two-sided p-values around the null mean, ties counted as extreme: (b + 1) / (K + 1).

    Args:
        observed: Observed statistics (C,).
        null: Permuted statistics (K, C).

    Returns:
        p-values (C,) in the dtype of ``null``; 1 where ``observed`` or the null mean is NaN.
    """
    k = null.shape[0]
    finite = torch.isfinite(null)
    count = finite.sum(0)
    mean = torch.where(finite, null, 0).sum(0) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, torch.nan)
    rtol = 1000 * torch.finfo(null.dtype).eps
    scale = torch.maximum(observed.abs(), mean.abs())
    scale = torch.maximum(scale, torch.where(finite, null.abs(), 0).amax(0))
    dev_obs = (observed - mean).abs() - rtol * scale
    extreme = ((null - mean).abs() >= dev_obs) | ~finite
    p = (extreme.sum(0).to(null.dtype) + 1) / (k + 1)
    return torch.where(torch.isfinite(observed) & torch.isfinite(mean), p, torch.ones_like(p))


def permutation_test(
    outputs: Any,
    values: Any = None,
    *,
    n_permutations: int = 10_000,
    alpha: float = 0.01,
    statistic: Union[str, StatisticFn] = "gradient",
    seed: int = 0,
    device: torch.device | str | None = None,
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
    chunk_size: int | None = None,
    memory_budget: int = 128 * 2**20,
) -> PermutationResult:
    """Is the change of the outputs along the property systematic? (Algorithm 1, vectorised).

    Args:
        outputs: (N,) or (N, C) outputs for N ordered steps (tensor, numpy array or list; integers
            become float). Computation runs in the outputs' float dtype on their device.
        values: (N,) strictly increasing property values, or None for unit steps.
        n_permutations: K >= 1, the number of shuffles.
        alpha: Significance level in (0, 1).
        statistic: "gradient" (the expected property gradient magnitude, as
            :func:`propgrad.scoring.property_gradient`), "pearson" (|Pearson r| between values and
            outputs; ``periodic``/``period``/``edge_order`` do not apply), or a callable
            ``f(permuted_outputs, values) -> Tensor`` taking (B, N, C) outputs (B shuffles at once;
            columns may arrive in chunks, so treat them independently) and the (N,) values (unit
            steps 0..N-1 when ``values`` is None), returning (B, C), one statistic per shuffle and
            column; the observed statistic comes from the same call with the identity order.
        seed: Seed of the CPU ``torch.Generator`` drawing the permutations (same seed, same
            permutations, same p-values); indices are then moved to ``device``.
        device: Device to compute on (default: that of ``outputs``; CPU for arrays and lists).
        periodic: Wrap-around differences for a full rotation (statistic "gradient").
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 (numpy.gradient's default) or 2 (statistic "gradient").
        chunk_size: Permutations per chunk (default: as many as fit ``memory_budget``). Results
            do not depend on it.
        memory_budget: Rough bound in bytes on the temporaries of one chunk.

    Returns:
        A :class:`PermutationResult`; fields have shape () for 1-D outputs, (C,) otherwise.

    Raises:
        TypeError: unsupported ``outputs``/``values`` types or ``statistic``.
        ValueError: bad ``outputs``/``values`` (see :func:`propgrad.scoring.property_gradient`),
            ``n_permutations`` < 1, ``alpha`` outside (0, 1), unknown statistic name, a callable
            returning the wrong shape.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1, got {n_permutations!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")
    y, one_d = as_outputs(outputs, device=device)
    n, c = y.shape
    if n < 2:
        raise ValueError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    x = as_values(values, n, dtype=torch.float64, device=y.device)
    k = int(n_permutations)
    name, kernel = _make_kernel(statistic, x, k, periodic=periodic, period=period, edge_order=edge_order)
    perms = seeded_permutations(n, k, int(seed)).to(y.device)
    identity = torch.arange(n, device=y.device)[None]
    itemsize = y.element_size()
    cols = max(1, min(c, memory_budget // (2 * max(k, n * n) * itemsize)))
    stats, pvals, nulls = [], [], []
    for c0 in range(0, c, cols):
        yc = y[:, c0 : c0 + cols]
        prepared = kernel.prepare(yc)
        b = chunk_size or max(1, memory_budget // max(1, kernel.bytes_per_permutation(yc)))
        observed = kernel.run(prepared, identity)[0]
        null = torch.cat([kernel.run(prepared, perms[s : s + b]) for s in range(0, k, b)])
        p = two_sided_p_values(observed, null)
        constant = (yc == yc[:1]).all(0)
        stats.append(observed)
        pvals.append(torch.where(constant, torch.ones_like(p), p))
        nulls.append(null if c <= KEEP_NULL_MAX_COLUMNS else None)
    statistic_t, p_value = torch.cat(stats), torch.cat(pvals)
    null_t = torch.cat(nulls, 1) if c <= KEEP_NULL_MAX_COLUMNS else None
    if one_d:
        statistic_t, p_value = statistic_t[0], p_value[0]
        null_t = null_t[:, 0] if null_t is not None else None
    return PermutationResult(
        statistic=statistic_t,
        p_value=p_value,
        significant=p_value < alpha,
        null_distribution=null_t,
        n_permutations=k,
        alpha=float(alpha),
        statistic_name=name,
    )


def _make_kernel(
    statistic: Union[str, StatisticFn], x: torch.Tensor, k: int, *, periodic: bool, period: float | None, edge_order: int
) -> tuple[str, Any]:
    if isinstance(statistic, str):
        if statistic == "gradient":
            return statistic, _GradientNull(x, k, periodic=periodic, period=period, edge_order=edge_order)
        if statistic == "pearson":
            return statistic, _PearsonNull(x)
        raise ValueError(f"statistic must be one of {', '.join(map(repr, STATISTICS))} or a callable, got {statistic!r}")
    if callable(statistic):
        return getattr(statistic, "__name__", type(statistic).__name__), _CallableNull(statistic, x)
    raise TypeError(f"statistic must be a name ({', '.join(STATISTICS)}) or a callable, got {type(statistic).__name__}")


class _GradientNull:
    """Expected property gradient magnitude of many permutations at once (see the module doc).

    Two layouts: with few columns the permuted outputs are gathered step-major, (N, B, C), and
    the stencil is applied by gathering whole (B, C) slabs ("direct"); with many columns and
    two-point stencil rows, a table of |F_u - F_v| is summed by ``embedding_bag`` ("table").
    """

    TABLE_MIN_COLUMNS = 8

    def __init__(self, x: torch.Tensor, k: int, *, periodic: bool, period: float | None, edge_order: int) -> None:
        self.idx, self.w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
        self.n = n = self.idx.shape[0]
        big = self.w.abs().amax(1, keepdim=True)
        live = self.w.abs() > 1e-9 * big  # weights below 1e-9 of the row's largest count as zero
        order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)  # live weights first
        w_sorted, idx_sorted = self.w.gather(1, order), self.idx.gather(1, order)
        pair = (live.sum(1) == 2) & ((w_sorted[:, 0] + w_sorted[:, 1]).abs() <= 1e-9 * big[:, 0])
        self.table_possible = bool(pair.any()) and n * n <= k * int(pair.sum())
        self.pair_u, self.pair_v = idx_sorted[pair, 0], idx_sorted[pair, 1]
        self.pair_w = (w_sorted[pair, 0].abs() + w_sorted[pair, 1].abs()) / 2
        self.tri_idx, self.tri_w = self.idx[~pair], self.w[~pair]

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not (self.table_possible and y.shape[1] >= self.TABLE_MIN_COLUMNS):
            return y, None
        table = torch.empty(self.n, self.n, y.shape[1], dtype=y.dtype, device=y.device)
        torch.sub(y[:, None, :], y[None, :, :], out=table)
        return y, table.abs_().view(self.n * self.n, -1)

    def bytes_per_permutation(self, y: torch.Tensor) -> int:
        c, item = y.shape[1], y.element_size()
        if not (self.table_possible and c >= self.TABLE_MIN_COLUMNS):
            return 4 * self.n * c * item + 16 * self.n
        return 2 * self.tri_idx.shape[0] * (c * item + 3 * 16) + 3 * 8 * self.pair_u.shape[0] + c * item

    def run(self, prepared: tuple[torch.Tensor, torch.Tensor | None], perms: torch.Tensor) -> torch.Tensor:
        y, table = prepared
        if table is None:
            return self._run_direct(y, perms)
        b, c, dt = perms.shape[0], y.shape[1], y.dtype
        pairs = perms.index_select(1, self.pair_u) * self.n + perms.index_select(1, self.pair_v)
        weights = self.pair_w.to(dt).expand(pairs.shape).contiguous()
        total = embedding_bag(pairs, table, per_sample_weights=weights, mode="sum")
        g = self.tri_idx.shape[0]
        if g:
            rows = perms[:, self.tri_idx].reshape(b * g, 3)
            weights = self.tri_w.to(dt).expand(b, g, 3).reshape(b * g, 3)
            deriv = embedding_bag(rows, y, per_sample_weights=weights, mode="sum")
            total += deriv.abs_().view(b, g, c).sum(1)
        return total / self.n

    def _run_direct(self, y: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
        permuted = y[perms.t()]  # (N, B, C), step-major so stencil gathers copy whole slabs
        w = self.w.to(y.dtype)[:, :, None, None]
        deriv = w[:, 0] * permuted[self.idx[:, 0]]
        deriv.addcmul_(w[:, 1], permuted[self.idx[:, 1]]).addcmul_(w[:, 2], permuted[self.idx[:, 2]])
        return deriv.abs_().sum(0) / self.n


class _PearsonNull:
    """|Pearson r| between the values and many permutations of the outputs, by one matmul."""

    def __init__(self, x: torch.Tensor) -> None:
        self.xc = x - x.mean()
        self.xnorm = self.xc.norm()

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yc = y - y[:1]  # exactly zero for constant columns, so their r is 0/0 = NaN
        yc = yc - yc.mean(0)
        return yc, self.xnorm.to(y.dtype) * yc.norm(dim=0)

    def bytes_per_permutation(self, y: torch.Tensor) -> int:
        return (y.shape[0] + 2 * y.shape[1]) * y.element_size() + 8 * y.shape[0]

    def run(self, prepared: tuple[torch.Tensor, torch.Tensor], perms: torch.Tensor) -> torch.Tensor:
        yc, denom = prepared
        xs = torch.zeros(perms.shape, dtype=yc.dtype, device=yc.device)
        xs.scatter_(1, perms, self.xc.to(yc.dtype).expand(perms.shape))  # xs[b, P[b, i]] = xc[i]
        return (xs @ yc / denom).abs()


class _CallableNull:
    """A user statistic f(permuted_outputs (B, N, C), values (N,)) -> (B, C)."""

    def __init__(self, fn: StatisticFn, x: torch.Tensor) -> None:
        self.fn, self.x = fn, x

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def bytes_per_permutation(self, y: torch.Tensor) -> int:
        return 3 * y.numel() * y.element_size()

    def run(self, y: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
        b, n = perms.shape
        permuted = y[perms.reshape(-1)].view(b, n, y.shape[1])
        out = self.fn(permuted, self.x.to(y.dtype))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b, y.shape[1]):
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"statistic {getattr(self.fn, '__name__', self.fn)!r} must return a tensor of shape (B, C) = "
                f"({b}, {y.shape[1]}) for permuted outputs of shape (B, N, C) = {tuple(permuted.shape)}, got {got}"
            )
        return out.to(device=y.device, dtype=y.dtype)
