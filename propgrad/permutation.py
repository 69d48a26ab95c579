"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (never 0; the paper's ``b / K`` without the +1 is not a valid p-value).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

Vectorised: one (K, N) matrix of permutation indices (``seeded_permutations``, memoised per
(N, K, seed)) serves every output column. The statistics of a chunk of permutations are computed
at once, in chunks over permutations and blocks of columns so temporaries stay near
``memory_budget``. For the gradient the permutations are turned once into gather indices: for
two-point stencil rows (unit or uniform steps with numpy's first-order ends, periodic uniform
grids) an index into the table of all |F_u - F_v| (N^2 per column, built per column block), summed
by ``torch.nn.functional.embedding_bag`` without materialising the permuted outputs; for
three-point rows (non-uniform grids, ``edge_order=2`` ends) the three permuted neighbours, combined
by a weighted ``embedding_bag``. Each shuffle is reduced on its own, so the permutation chunk size
never changes a result.
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
MEMO_MAX_BYTES = 128 * 2**20
_MEMO: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()


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

    The result depends only on (n, k, seed), so it is kept in a small in-process cache (see
    :func:`clear_cache`): scoring many images with the same settings draws the permutations once.
    Do not modify the returned tensor.
    """
    key = ("permutations", n, k, seed)
    return _memoised(key, lambda: (permutation_indices(n, k, torch.Generator(device="cpu").manual_seed(seed)),))[0]


def clear_cache() -> None:
    """Forget the memoised permutation matrices and the index tensors derived from them."""
    _MEMO.clear()


def _memoised(key: tuple | None, build: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """LRU memo of deterministic tensors, at most ``MEMO_MAX_BYTES`` in all (``key=None``: no memo)."""
    if key is not None and key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = build()
    if key is not None and _nbytes(value) <= MEMO_MAX_BYTES:
        _MEMO[key] = value
        while sum(_nbytes(v) for v in _MEMO.values()) > MEMO_MAX_BYTES:
            _MEMO.popitem(last=False)
    return value


def _nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def two_sided_p_values(observed: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """Two-sided p-values around the null mean, ties counted as extreme: (b + 1) / (K + 1).

    ``b = #{k : |null_k - m| >= |observed - m| - tol}`` with ``m`` the mean of the finite null
    statistics and ``tol = 1000 * eps * max(|observed|, |m|, max_k |null_k|)``; non-finite null
    statistics count as extreme.

    Args:
        observed: Observed statistics (C,).
        null: Permuted statistics (K, C).

    Returns:
        p-values (C,) in the dtype of ``null``; 1 where ``observed`` or the null mean is NaN.
    """
    k = null.shape[0]
    finite = torch.isfinite(null)
    if bool(finite.all()):
        mean = null.mean(0)
        lo, hi = torch.aminmax(null, dim=0)
        scale = torch.maximum(torch.maximum(observed.abs(), mean.abs()), torch.maximum(lo.abs(), hi.abs()))
        extra = 0
    else:
        count = finite.sum(0)
        mean = torch.where(finite, null, 0).sum(0) / count.clamp_min(1)
        mean = torch.where(count > 0, mean, torch.nan)
        scale = torch.maximum(torch.maximum(observed.abs(), mean.abs()), torch.where(finite, null.abs(), 0).amax(0))
        extra = (~finite).sum(0)
    dev = (observed - mean).abs() - 1000 * torch.finfo(null.dtype).eps * scale
    # |s - m| >= dev  <=>  s >= m + dev  or  s <= m - dev  (for dev > 0; always true otherwise)
    b = (null >= mean + dev).sum(0) + (null <= mean - dev).sum(0) + extra
    b = torch.where(dev > 0, b, k)
    p = (b.to(null.dtype) + 1) / (k + 1)
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
    key = (type(kernel).__name__, kernel.signature, n, k, int(seed), str(y.device), y.dtype)
    bound = kernel.bind(perms, y.dtype, key=key)
    bound_identity = kernel.bind(torch.arange(n, device=y.device)[None], y.dtype, key=None)
    itemsize = y.element_size()
    cols = max(1, min(c, kernel.columns_per_block(c, itemsize), memory_budget // (2 * k * itemsize)))
    stats, pvals, nulls = [], [], []
    for c0 in range(0, c, cols):
        yc = y[:, c0 : c0 + cols].contiguous()
        prepared = kernel.prepare(yc)
        b = chunk_size or max(1, memory_budget // max(1, kernel.bytes_per_permutation(yc.shape[1], itemsize)))
        observed = kernel.run(prepared, bound_identity, 0, 1)[0]
        null = torch.empty(k, yc.shape[1], dtype=y.dtype, device=y.device)
        for s in range(0, k, b):
            null[s : s + b] = kernel.run(prepared, bound, s, min(s + b, k))
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
    statistic: Union[str, StatisticFn],
    x: torch.Tensor,
    k: int,
    *,
    periodic: bool,
    period: float | None,
    edge_order: int,
) -> tuple[str, Any]:
    if isinstance(statistic, str):
        if statistic == "gradient":
            return statistic, _GradientNull(x, k, periodic=periodic, period=period, edge_order=edge_order)
        if statistic == "pearson":
            return statistic, _PearsonNull(x)
        known = ", ".join(map(repr, STATISTICS))
        raise ValueError(f"statistic must be one of {known} or a callable, got {statistic!r}")
    if callable(statistic):
        return getattr(statistic, "__name__", type(statistic).__name__), _CallableNull(statistic, x)
    raise TypeError(f"statistic must be a name ({', '.join(STATISTICS)}) or a callable, got {type(statistic).__name__}")


class _GradientNull:
    """Expected property gradient magnitude of many permutations at once (see the module doc).

    ``bind`` turns the permutations into gather indices once (memoised): for two-point stencil
    rows the index ``P[u] * N + P[v]`` into the table of |F_u - F_v|, for three-point rows the
    three permuted neighbours. ``run`` then needs one or two ``embedding_bag`` calls per chunk.
    """

    TABLE_BYTES = 2 * 2**20  # column blocks whose table fits a typical L2 cache run fastest

    def __init__(self, x: torch.Tensor, k: int, *, periodic: bool, period: float | None, edge_order: int) -> None:
        idx, w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
        self.n = n = idx.shape[0]
        big = w.abs().amax(1, keepdim=True)
        live = w.abs() > 1e-9 * big  # weights below 1e-9 of the row's largest count as zero
        order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)  # live weights first
        w_sorted, idx_sorted = w.gather(1, order), idx.gather(1, order)
        pair = (live.sum(1) == 2) & ((w_sorted[:, 0] + w_sorted[:, 1]).abs() <= 1e-9 * big[:, 0])
        if not (bool(pair.any()) and n * n <= k * int(pair.sum())):
            pair = torch.zeros_like(pair)  # building the N^2 table would cost more than it saves
        self.pair_u, self.pair_v = idx_sorted[pair, 0], idx_sorted[pair, 1]
        self.pair_w = (w_sorted[pair, 0].abs() + w_sorted[pair, 1].abs()) / 2
        self.tri_idx, self.tri_w = idx[~pair], w[~pair]
        self.signature = (
            self.pair_u.cpu().numpy().tobytes(), self.pair_v.cpu().numpy().tobytes(),
            self.pair_w.cpu().numpy().tobytes(), self.tri_idx.cpu().numpy().tobytes(),
            self.tri_w.cpu().numpy().tobytes(),
        )

    def bind(self, perms: torch.Tensor, dtype: torch.dtype, *, key: tuple | None) -> tuple[torch.Tensor, ...]:
        def build() -> tuple[torch.Tensor, ...]:
            k, g = perms.shape[0], self.tri_idx.shape[0]
            pairs = perms.index_select(1, self.pair_u) * self.n + perms.index_select(1, self.pair_v)
            pair_w = self.pair_w.to(dtype).expand(pairs.shape).contiguous()
            rows = perms[:, self.tri_idx].reshape(k * g, 3)
            tri_w = self.tri_w.to(dtype).expand(k, g, 3).reshape(k * g, 3).contiguous()
            return pairs, pair_w, rows, tri_w

        return _memoised(key, build)

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return max(1, self.TABLE_BYTES // (self.n * self.n * itemsize)) if self.pair_u.numel() else c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return 2 * self.tri_idx.shape[0] * c * itemsize + c * itemsize

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.pair_u.numel():
            return y, None
        table = torch.empty(self.n, self.n, y.shape[1], dtype=y.dtype, device=y.device)
        torch.sub(y[:, None, :], y[None, :, :], out=table)
        return y, table.abs_().view(self.n * self.n, -1)

    def run(
        self, prepared: tuple[torch.Tensor, torch.Tensor | None], bound: tuple[torch.Tensor, ...], s: int, e: int
    ) -> torch.Tensor:
        y, table = prepared
        pairs, pair_w, rows, tri_w = bound
        total = torch.zeros(e - s, y.shape[1], dtype=y.dtype, device=y.device)
        if table is not None:
            total += embedding_bag(pairs[s:e], table, per_sample_weights=pair_w[s:e], mode="sum")
        g = self.tri_idx.shape[0]
        if g:
            deriv = embedding_bag(rows[s * g : e * g], y, per_sample_weights=tri_w[s * g : e * g], mode="sum")
            total += deriv.abs_().view(e - s, g, y.shape[1]).sum(1)
        return total / self.n


class _PearsonNull:
    """|Pearson r| between the values and many permutations of the outputs.

    The numerator ``sum_i xc_i * yc[P[b, i]]`` is one weighted ``embedding_bag`` per chunk (each
    shuffle summed on its own, so chunking never changes a bit); the denominator does not depend
    on the order.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.xc = x - x.mean()
        self.xnorm = self.xc.norm()
        self.signature = self.xc.cpu().numpy().tobytes()

    def bind(self, perms: torch.Tensor, dtype: torch.dtype, *, key: tuple | None) -> tuple[torch.Tensor, ...]:
        return _memoised(key, lambda: (perms, self.xc.to(dtype).expand(perms.shape).contiguous()))

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        return 2 * c * itemsize

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yc = y - y[:1]  # exactly zero for constant columns, so their r is 0/0 = NaN
        yc = yc - yc.mean(0)
        return yc, self.xnorm.to(y.dtype) * yc.norm(dim=0)

    def run(
        self, prepared: tuple[torch.Tensor, torch.Tensor], bound: tuple[torch.Tensor, ...], s: int, e: int
    ) -> torch.Tensor:
        yc, denom = prepared
        perms, weights = bound
        return (embedding_bag(perms[s:e], yc, per_sample_weights=weights[s:e], mode="sum") / denom).abs()


class _CallableNull:
    """A user statistic f(permuted_outputs (B, N, C), values (N,)) -> (B, C)."""

    signature = None

    def __init__(self, fn: StatisticFn, x: torch.Tensor) -> None:
        self.fn, self.x = fn, x

    def bind(self, perms: torch.Tensor, dtype: torch.dtype, *, key: tuple | None) -> tuple[torch.Tensor, ...]:
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
            raise ValueError(
                f"statistic {getattr(self.fn, '__name__', self.fn)!r} must return a tensor of shape (B, C) = "
                f"({b}, {y.shape[1]}) for permuted outputs of shape (B, N, C) = {tuple(permuted.shape)}, got {got}"
            )
        return out.to(device=y.device, dtype=y.dtype)
