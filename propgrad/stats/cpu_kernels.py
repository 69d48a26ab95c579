"""Compiled CPU kernels of the null statistics and of their p-values (numba, no Python per value).

The null statistic of one shuffle ``p`` and one output column ``y`` is

    s = (sum over stencil rows r of term_r) / N,
    term_r = w_r * |y[p[u_r]] - y[p[v_r]]|                          (a "pair" row: two opposite weights)
    term_r = |w0_r * y[p[u_r]] + w1_r * y[p[v_r]] + w2_r * y[p[t_r]]|  (a three-point row),

accumulated in float64 in the order of the rows, whatever the outputs' dtype. The kernels take the
stencil as one tuple ``stencil = (u, v, t, w0, w1, w2, pair)`` of length-N arrays (int64 indices,
float64 weights, bool pair flags; :func:`propgrad.stats.null_statistics.stencil_rows`). Both kernels (one
vectorises over columns, one loops over steps per column) evaluate exactly these operations in
exactly this order for every (shuffle, column), so a statistic does not depend on the kernel, on
how the columns or the shuffles are blocked, or on which thread computed it: the null
distributions, and hence the p-values, are bit-identical across strategies.

The whole-vector statistics (:mod:`propgrad.stats.vector_statistic`) take the same stencil tuple:
:func:`vector_null` gathers whole rows of the (N, C) outputs, sums ``|d_j|`` (L1) or ``d_j**2``
(L2) of each row's derivative ``d`` over the C columns, in four interleaved partial sums added as
``(s0 + s1) + (s2 + s3)`` (independent chains the processor overlaps; the order is fixed, so a
statistic again does not depend on blocking or threads), takes the square root for L2 and
accumulates the rows in their order: ``s = (sum_r w_r * norm(y[p[u_r]] - y[p[v_r]]) + sum_r
norm(w0 y[p[u_r]] + w1 y[p[v_r]] + w2 y[p[t_r]])) / N``. It agrees with the torch kernel
(:class:`propgrad.stats.vector_statistic.VectorNull`) to float64 rounding, not bit for bit.

Every function releases the GIL (``nogil``), so blocks run in parallel on Python threads, and is
compiled once per machine (``cache=True``) on first use.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from propgrad.stats.fisher_yates import fisher_yates_rows, null_fisher_yates  # noqa: F401  (the kernels in one place)


@njit(nogil=True, cache=True, boundscheck=False)
def null_by_rows(y, perms, stencil, out):  # pragma: no cover - compiled
    """Statistics (B, c) of shuffles ``perms`` (B, N) of ``y`` (N, c), vectorised over the columns.

    Four pair rows in a row are added to a column's sum in one pass over the columns (in their
    order, so the sums are the same as one row at a time): a quarter of the loads and stores of
    the sums, and rows shared by neighbouring terms are read from the L1 cache.
    """
    u, v, t, w0, w1, w2, pair = stencil
    b, n = perms.shape
    c = y.shape[1]
    rows = u.shape[0]
    acc = np.empty(c, dtype=np.float64)
    for k in range(b):
        p = perms[k]
        for j in range(c):
            acc[j] = 0.0
        r = 0
        while r < rows:
            if r + 3 < rows and pair[r] and pair[r + 1] and pair[r + 2] and pair[r + 3]:
                a0, b0 = y[p[u[r]]], y[p[v[r]]]
                a1, b1 = y[p[u[r + 1]]], y[p[v[r + 1]]]
                a2, b2 = y[p[u[r + 2]]], y[p[v[r + 2]]]
                a3, b3 = y[p[u[r + 3]]], y[p[v[r + 3]]]
                s0, s1, s2, s3 = w0[r], w0[r + 1], w0[r + 2], w0[r + 3]
                for j in range(c):
                    x = acc[j]
                    x += s0 * abs(np.float64(a0[j]) - np.float64(b0[j]))
                    x += s1 * abs(np.float64(a1[j]) - np.float64(b1[j]))
                    x += s2 * abs(np.float64(a2[j]) - np.float64(b2[j]))
                    x += s3 * abs(np.float64(a3[j]) - np.float64(b3[j]))
                    acc[j] = x
                r += 4
                continue
            ra = y[p[u[r]]]
            rb = y[p[v[r]]]
            if pair[r]:
                s = w0[r]
                for j in range(c):
                    acc[j] += s * abs(np.float64(ra[j]) - np.float64(rb[j]))
            else:
                rc = y[p[t[r]]]
                a0, a1, a2 = w0[r], w1[r], w2[r]
                for j in range(c):
                    acc[j] += abs(a0 * np.float64(ra[j]) + a1 * np.float64(rb[j]) + a2 * np.float64(rc[j]))
            r += 1
        for j in range(c):
            out[k, j] = acc[j] / n
    return out


@njit(nogil=True, cache=True, boundscheck=False)
def null_by_columns(yt, perms, stencil, out):  # pragma: no cover - compiled
    """Statistics (B, c) of shuffles ``perms`` (B, N) of the columns ``yt`` (c, N), one column at a time."""
    u, v, t, w0, w1, w2, pair = stencil
    b, n = perms.shape
    c = yt.shape[0]
    rows = u.shape[0]
    for k in range(b):
        p = perms[k]
        for j in range(c):
            col = yt[j]
            acc = 0.0
            for r in range(rows):
                if pair[r]:
                    acc += w0[r] * abs(np.float64(col[p[u[r]]]) - np.float64(col[p[v[r]]]))
                else:
                    acc += abs(
                        w0[r] * np.float64(col[p[u[r]]])
                        + w1[r] * np.float64(col[p[v[r]]])
                        + w2[r] * np.float64(col[p[t[r]]])
                    )
            out[k, j] = acc / n
    return out


@njit(nogil=True, cache=True, boundscheck=False)
def _pair_sum(ra, rb, square):  # pragma: no cover - compiled
    """``sum_j (ra[j] - rb[j])**2`` (``square``) or ``sum_j |ra[j] - rb[j]|``, in four partial sums."""
    c = ra.shape[0]
    c4 = c - c % 4
    s0 = s1 = s2 = s3 = 0.0
    if square:
        for j in range(0, c4, 4):
            d0, d1 = ra[j] - rb[j], ra[j + 1] - rb[j + 1]
            d2, d3 = ra[j + 2] - rb[j + 2], ra[j + 3] - rb[j + 3]
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
        for j in range(c4, c):
            d = ra[j] - rb[j]
            s0 += d * d
    else:
        for j in range(0, c4, 4):
            s0 += abs(ra[j] - rb[j])
            s1 += abs(ra[j + 1] - rb[j + 1])
            s2 += abs(ra[j + 2] - rb[j + 2])
            s3 += abs(ra[j + 3] - rb[j + 3])
        for j in range(c4, c):
            s0 += abs(ra[j] - rb[j])
    return (s0 + s1) + (s2 + s3)


@njit(nogil=True, cache=True, boundscheck=False)
def _triple_sum(ra, rb, rc, a0, a1, a2, square):  # pragma: no cover - compiled
    """``sum_j d_j**2`` (``square``) or ``sum_j |d_j|`` of ``d = a0 ra + a1 rb + a2 rc``, in four partial sums."""
    c = ra.shape[0]
    c4 = c - c % 4
    s0 = s1 = s2 = s3 = 0.0
    if square:
        for j in range(0, c4, 4):
            d0 = a0 * ra[j] + a1 * rb[j] + a2 * rc[j]
            d1 = a0 * ra[j + 1] + a1 * rb[j + 1] + a2 * rc[j + 1]
            d2 = a0 * ra[j + 2] + a1 * rb[j + 2] + a2 * rc[j + 2]
            d3 = a0 * ra[j + 3] + a1 * rb[j + 3] + a2 * rc[j + 3]
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
        for j in range(c4, c):
            d = a0 * ra[j] + a1 * rb[j] + a2 * rc[j]
            s0 += d * d
    else:
        for j in range(0, c4, 4):
            s0 += abs(a0 * ra[j] + a1 * rb[j] + a2 * rc[j])
            s1 += abs(a0 * ra[j + 1] + a1 * rb[j + 1] + a2 * rc[j + 1])
            s2 += abs(a0 * ra[j + 2] + a1 * rb[j + 2] + a2 * rc[j + 2])
            s3 += abs(a0 * ra[j + 3] + a1 * rb[j + 3] + a2 * rc[j + 3])
        for j in range(c4, c):
            s0 += abs(a0 * ra[j] + a1 * rb[j] + a2 * rc[j])
    return (s0 + s1) + (s2 + s3)


@njit(nogil=True, cache=True, boundscheck=False)
def vector_null(y, perms, stencil, norm, out):  # pragma: no cover - compiled
    """Whole-vector statistics (B, 1) of shuffles ``perms`` (B, N) of the float64 rows of ``y`` (N, C).

    ``norm`` is 1 (mean L1 norm of the derivative) or 2 (mean L2 norm); see the module docstring.
    """
    u, v, t, w0, w1, w2, pair = stencil
    b, n = perms.shape
    rows = u.shape[0]
    square = norm == 2
    for k in range(b):
        p = perms[k]
        acc = 0.0
        for r in range(rows):
            if pair[r]:
                s = _pair_sum(y[p[u[r]]], y[p[v[r]]], square)
                acc += w0[r] * (np.sqrt(s) if square else s)
            else:
                s = _triple_sum(y[p[u[r]]], y[p[v[r]]], y[p[t[r]]], w0[r], w1[r], w2[r], square)
                acc += np.sqrt(s) if square else s
        out[k, 0] = acc / n
    return out


@njit(nogil=True, cache=True, boundscheck=False)
def two_sided_p_values(observed, null, rel_tol, out):  # pragma: no cover - compiled
    """p-values (c,) of :func:`propgrad.stats.null_statistics.two_sided_p_values` of a row-major null (K, c).

    Two passes over the shuffles, each reading the null row by row (its memory order): the sums,
    counts and largest magnitudes of the finite statistics, then the extreme ones. Each column's
    null mean is summed in the order of the shuffles, so it too is independent of blocking.
    """
    k, c = null.shape
    total = np.zeros(c)
    count = np.zeros(c, dtype=np.int64)
    big = np.zeros(c)
    for i in range(k):
        row = null[i]
        for j in range(c):
            s = row[j]
            if np.isfinite(s):
                total[j] += s
                count[j] += 1
                big[j] = max(big[j], abs(s))
    hi = np.empty(c)
    lo = np.empty(c)
    extreme = k - count
    tested = np.zeros(c, dtype=np.bool_)
    for j in range(c):
        obs = observed[j]
        if count[j] == 0 or not np.isfinite(obs):
            continue
        mean = total[j] / count[j]
        scale = max(max(abs(obs), abs(mean)), big[j])
        dev = abs(obs - mean) - rel_tol * scale
        if dev > 0:
            hi[j], lo[j] = mean + dev, mean - dev
            tested[j] = True
    for i in range(k):
        row = null[i]
        for j in range(c):
            s = row[j]
            extreme[j] += np.isfinite(s) and (s >= hi[j] or s <= lo[j])  # a non-finite one is counted once, above
    for j in range(c):
        out[j] = (extreme[j] + 1.0) / (k + 1.0) if tested[j] else 1.0
    return out


@njit(nogil=True, cache=True, boundscheck=False)
def extreme_counts(null, centre, threshold, counts, first_hit, limit, offset):  # pragma: no cover - compiled
    """Count, per column, shuffles with ``|s - centre| >= threshold``; note where the ``limit``-th one fell.

    ``counts`` (c,) int64 are updated in place; ``first_hit[j]`` (the 1-based number of shuffles
    drawn when column j reached ``limit``, counting ``offset`` earlier ones) is set once, when the
    count reaches ``limit`` inside this block.
    """
    b, c = null.shape
    for j in range(c):
        for i in range(b):
            s = null[i, j]
            if not np.isfinite(s) or abs(s - centre[j]) >= threshold[j]:
                counts[j] += 1
                if counts[j] == limit and first_hit[j] == 0:
                    first_hit[j] = offset + i + 1
    return counts


@njit(nogil=True, cache=True, boundscheck=False)
def place_positions(keys, low):  # pragma: no cover - compiled
    """``keys[i, j] = (keys[i, j] & ~low) | j`` in place: random keys carrying their position in the low bits."""
    k, n = keys.shape
    high = ~low
    for i in range(k):
        for j in range(n):
            keys[i, j] = (keys[i, j] & high) | j
    return keys


@njit(nogil=True, cache=True, boundscheck=False)
def read_positions(keys, low, out, tied):  # pragma: no cover - compiled
    """Positions ``keys & low`` of row-sorted keys into ``out``; ``tied[i]`` when two keys of row i agree above ``low``.

    Returns the number of tied rows.
    """
    k, n = keys.shape
    count = 0
    for i in range(k):
        row = keys[i]
        tie = False
        out[i, 0] = row[0] & low
        for j in range(1, n):
            out[i, j] = row[j] & low
            if (row[j] ^ row[j - 1]) & ~low == 0:
                tie = True
        tied[i] = tie
        count += tie
    return count

