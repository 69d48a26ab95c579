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

import difflib
import math
from typing import Any, Callable, Hashable, Protocol, Union

import torch
from torch.nn.functional import embedding_bag

from propgrad.stats.gradient import finite_difference_weights, grid_scale

StatisticFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
STATISTICS = ("gradient", "pearson")
TABLE_MIN_COLUMNS = 8  # below this, gathering the permuted outputs beats the |F_u - F_v| table


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
    lo, hi = torch.aminmax(null, dim=0)  # NaN or +-inf anywhere shows in the extremes
    if bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        mean = null.mean(0)
        scale = torch.maximum(torch.maximum(observed.abs(), mean.abs()), torch.maximum(lo.abs(), hi.abs()))
        extra = 0
    else:
        finite = torch.isfinite(null)
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


def check_statistic(statistic: Any) -> Union[str, StatisticFn]:
    """Check a test statistic before any work: one of :data:`STATISTICS` or a callable.

    Raises:
        ValueError: an unknown name (the message lists the names and says what a statistic is,
            e.g. for ``"integrated_gradients"``, an attribution method, not a statistic).
        TypeError: neither a string nor a callable.
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
        raise ValueError(
            f"statistic must be one of {known} or a callable f(permuted_outputs (B, N, C), values (N,)) -> (B, C), "
            f"got {statistic!r}{hint}"
        )
    if callable(statistic):
        return statistic
    raise TypeError(f"statistic must be a name ({', '.join(STATISTICS)}) or a callable, got {type(statistic).__name__}")


def make_null_statistic(
    statistic: Union[str, StatisticFn],
    x: torch.Tensor,
    k: int,
    c: int,
    *,
    periodic: bool,
    period: float | None,
    edge_order: int,
) -> tuple[str, NullStatistic]:
    """``(name, kernel)`` for a statistic name or callable, K shuffles of C columns on the grid ``x``.

    Raises:
        ValueError: unknown statistic name (or bad ``periodic``/``period``/``edge_order``).
        TypeError: ``statistic`` neither a string nor a callable.
    """
    statistic = check_statistic(statistic)
    if statistic == "gradient":
        return statistic, GradientNull(x, k, c, periodic=periodic, period=period, edge_order=edge_order)
    if statistic == "pearson":
        return statistic, PearsonNull(x)
    return getattr(statistic, "__name__", type(statistic).__name__), CallableNull(statistic, x)


class GradientNull:
    """Expected property gradient magnitude (mean |dF/dx|, numpy.gradient's stencils) of many shuffles.

    Two strategies, chosen once per call from the number of columns C:

    - banded (few columns): gather the permuted outputs (B, N, C) and apply the stencil with
      slices (interior rows always use the neighbours i-1, i, i+1) plus a small gather for the two
      end rows. Nothing is derived from the permutations, so a first call pays only for drawing them.
    - table (many columns, two-point rows worth it): rows whose two live weights are opposite
      (unit/uniform steps, periodic uniform grids) read ``|F_u - F_v|`` from a table of all N^2
      differences per column block through ``embedding_bag`` with the memoised index
      ``P[u] * N + P[v]``; the other (three-point) rows use a weighted ``embedding_bag`` on the
      three permuted neighbours. Neither materialises the permuted outputs.
    """

    TABLE_BYTES = 2 * 2**20  # column blocks whose table fits a typical L2 cache run fastest

    def __init__(
        self, x: torch.Tensor, k: int, c: int, *, periodic: bool, period: float | None, edge_order: int
    ) -> None:
        idx, w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
        self.weights = w  # for the driver's choice of dtype (propgrad.stats.gradient.stencil_dtype)
        self.n = n = idx.shape[0]
        self.use_table = False
        if c >= TABLE_MIN_COLUMNS:  # (few columns: skip the analysis, the banded strategy is used)
            big = w.abs().amax(1, keepdim=True)
            live = w.abs() > 1e-9 * big  # weights below 1e-9 of the row's largest count as zero
            order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)  # live weights first
            w_sorted, idx_sorted = w.gather(1, order), idx.gather(1, order)
            pair = (live.sum(1) == 2) & ((w_sorted[:, 0] + w_sorted[:, 1]).abs() <= 1e-9 * big[:, 0])
            self.use_table = bool(pair.any()) and n * n <= k * int(pair.sum())
        if not self.use_table:
            self.signature = None
            self.ends = torch.stack([idx[0], idx[-1]]).reshape(-1)
            self.end_w = torch.stack([w[0], w[-1]])
            self.lo, self.mid, self.hi = w[1:-1].unbind(1)
            self.uniform = bool((self.mid == 0).all()) and bool((self.lo == -self.hi).all())
            # one weight for every interior row (uniform steps): applied once, after the sum
            self.step_w = float(self.hi[0]) if self.uniform and n > 2 and bool((self.hi == self.hi[0]).all()) else None
            self.end_pairs, self.end_scale = _opposite_pairs(self.ends.view(2, 3), self.end_w)
            return
        self.pair_u, self.pair_v = idx_sorted[pair, 0], idx_sorted[pair, 1]
        self.pair_w = (w_sorted[pair, 0].abs() + w_sorted[pair, 1].abs()) / 2
        self.tri_idx, self.tri_w = idx[~pair], w[~pair]
        self.signature = tuple(t.cpu().numpy().tobytes() for t in (self.pair_u, self.pair_v, self.pair_w, self.tri_w))

    def bind(self, perms: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        if not self.use_table:
            return (perms,)
        k, g = perms.shape[0], self.tri_idx.shape[0]
        pairs = perms.index_select(1, self.pair_u).mul_(self.n).add_(perms.index_select(1, self.pair_v))
        pair_w = self.pair_w.to(dtype).expand(pairs.shape).contiguous()
        rows = perms[:, self.tri_idx].reshape(k * g, 3)
        tri_w = self.tri_w.to(dtype).expand(k, g, 3).reshape(k * g, 3).contiguous()
        return pairs, pair_w, rows, tri_w

    def columns_per_block(self, c: int, itemsize: int) -> int:
        return max(1, self.TABLE_BYTES // (self.n * self.n * itemsize)) if self.use_table else c

    def bytes_per_permutation(self, c: int, itemsize: int) -> int:
        rows = self.tri_idx.shape[0] if self.use_table else self.n
        return (2 * rows + 1) * c * itemsize

    def prepare(self, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if not self.use_table:
            return y.t().contiguous(), tuple(t.to(y.dtype) for t in (self.end_w, self.lo, self.mid, self.hi))
        table = torch.empty(self.n, self.n, y.shape[1], dtype=y.dtype, device=y.device)
        torch.sub(y[:, None, :], y[None, :, :], out=table)
        return y, table.abs_().view(self.n * self.n, -1)

    def run(self, prepared: tuple[torch.Tensor, Any], bound: tuple[torch.Tensor, ...], s: int, e: int) -> torch.Tensor:
        y, state = prepared
        if not self.use_table:
            return self._banded(y, bound[0][s:e], state)
        pairs, pair_w, rows, tri_w = bound
        total = embedding_bag(pairs[s:e], state, per_sample_weights=pair_w[s:e], mode="sum")
        g = self.tri_idx.shape[0]
        if g:
            deriv = embedding_bag(rows[s * g : e * g], y, per_sample_weights=tri_w[s * g : e * g], mode="sum")
            total += deriv.abs_().view(e - s, g, y.shape[1]).sum(1)
        return total / self.n

    def _banded(self, yt: torch.Tensor, perms: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """(B, C) statistics from the (C, N) outputs ``yt``, laid out (C, B, N) so sums run along rows."""
        end_w, lo, mid, hi = weights
        c, b, n = yt.shape[0], perms.shape[0], self.n
        yp = yt.index_select(1, perms.reshape(-1)).view(c, b, n)
        if self.end_pairs is not None:  # (|F[u0] - F[v0]| + |F[u1] - F[v1]|) * w, fewer small ops
            e = yp.index_select(2, self.end_pairs).view(c, b, 2, 2)
            d = torch.sub(e[..., 0], e[..., 1]).abs_()
            total = torch.add(d[..., 0], d[..., 1])
            if self.end_scale != 1.0:
                total.mul_(self.end_scale)
        else:
            total = yp.index_select(2, self.ends).view(c, b, 2, 3).mul_(end_w).sum(3).abs_().sum(2)
        if n > 2:
            if self.step_w is not None:  # sum_i |F[i+1] - F[i-1]| * w, w = 1 / (2 h)
                total.add_(torch.sub(yp[..., 2:], yp[..., :-2]).abs_().sum(2), alpha=self.step_w)
            else:
                if self.uniform:  # (F[i+1] - F[i-1]) * w, w = 1 / (2 h_i)
                    deriv = torch.sub(yp[..., 2:], yp[..., :-2]).abs_().mul_(hi)
                else:
                    deriv = (yp[..., :-2] * lo).addcmul_(yp[..., 1:-1], mid).addcmul_(yp[..., 2:], hi).abs_()
                total += deriv.sum(2)
        return total.t().div(n)


def _opposite_pairs(idx: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor | None, float]:
    """``([u0, v0, u1, v1], s)`` when row j of ``w`` (2, 3) is ``s`` at ``idx[j, u]``, ``-s`` at ``v``, else 0.

    Then the two end rows' |derivatives| are ``|F[u_j] - F[v_j]| * s`` (edge order 1, or periodic,
    on a grid whose two end steps are equal); otherwise ``(None, 0.0)``.
    """
    scale = float(w.abs().amax())
    if scale == 0 or not bool(((w > 0).sum(1) == 1).all() and ((w < 0).sum(1) == 1).all()):
        return None, 0.0
    if not bool(((w == scale) | (w == -scale) | (w == 0)).all()):
        return None, 0.0
    u, v = idx[w > 0], idx[w < 0]  # one each per row, in row order
    return torch.stack([u, v], 1).reshape(-1), scale


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
            raise ValueError(
                f"statistic {getattr(self.fn, '__name__', self.fn)!r} must return a tensor of shape (B, C) = "
                f"({b}, {y.shape[1]}) for permuted outputs of shape (B, N, C) = {tuple(permuted.shape)}, got {got}"
            )
        return out.to(device=y.device, dtype=y.dtype)
