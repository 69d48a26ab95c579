"""Permutation stream 2: Fisher-Yates shuffles driven by a counter-based generator (compiled, numba).

Every random number of the stream is a pure function of (key, counter), so any shuffle can be
drawn on its own, in any order, on any thread, with the same result:

- the key of a seed is ``mix64(seed + GAMMA)`` (the first output of SplitMix64 seeded with it);
- shuffle ``r`` (0-based, over all K) of N steps starts from the identity and, for ``i = N - 1``
  down to 1, swaps position ``i`` with position ``j``, a uniform integer in ``[0, i]``;
- ``j`` comes from the 32 high bits ``x`` of ``mix64(key + (r * N + i) * GAMMA)`` (SplitMix64's
  output at that counter) by Lemire's multiply-shift, ``j = floor(x * (i + 1) / 2**32)``, with his
  rejection step, so it is exactly uniform: when the low 32 bits of ``x * (i + 1)`` fall below
  ``2**32 mod (i + 1)`` (probability below ``(i + 1) / 2**32``), ``x`` is drawn again at the same
  counter from the key of attempt ``a = 1, 2, ...``, ``mix64(key + a)``.

``mix64`` is SplitMix64's finaliser (Steele, Lea & Flood 2014; constants of Stafford's
"Mix13"). :func:`fisher_yates_rows` writes shuffles as int32 index rows; :func:`null_fisher_yates`
draws them and computes the gradient's null statistics in one pass, without a (K, N) matrix (it
lives here, beside the stream, as numba's on-disk cache of a function is only invalidated by
changes to its own module). :func:`propgrad.stats.permutations.fisher_yates_numpy` is the same
stream in numpy, vectorised over shuffles, for machines without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from propgrad.stats.permutations import SPLITMIX_GAMMA, SPLITMIX_MIX1, SPLITMIX_MIX2

U64 = np.uint64
GAMMA, MIX1, MIX2 = U64(SPLITMIX_GAMMA), U64(SPLITMIX_MIX1), U64(SPLITMIX_MIX2)
LOW32 = U64(0xFFFFFFFF)
LANES = 4  # shuffled columns whose stencil sums the fused kernel computes at once


@njit(inline="always")
def mix64(z):  # pragma: no cover - compiled
    """SplitMix64's finaliser of one uint64."""
    z = (z ^ (z >> U64(30))) * MIX1
    z = (z ^ (z >> U64(27))) * MIX2
    return z ^ (z >> U64(31))


@njit(inline="always")
def _redraw(key, counter, s):  # pragma: no cover - compiled
    """The draw in ``[0, s)`` at ``counter`` after its first word was rejected: attempts 1, 2, ... until one is kept."""
    floor = (U64(1) << U64(32)) % s  # products whose low half falls below 2**32 mod s are rejected
    attempt = U64(1)
    while True:
        product = (mix64(mix64(key + attempt) + counter * GAMMA) >> U64(32)) * s
        if product & LOW32 >= floor:
            return product >> U64(32)
        attempt += U64(1)


@njit(inline="always")
def swap_targets(draws, key, row):  # pragma: no cover - compiled
    """Fill ``draws[i]`` (uint64, length N) with shuffle ``row``'s ``j`` for ``i = 1 .. N - 1``.

    The draws are computed in a loop without branches, which the compiler vectorises; the rare
    ones whose product needs Lemire's exact check are looked at afterwards.
    """
    n = draws.shape[0]
    base = U64(row) * U64(n)
    near = 0
    for i in range(1, n):
        s = U64(i + 1)
        product = (mix64(key + (base + U64(i)) * GAMMA) >> U64(32)) * s
        draws[i] = product >> U64(32)
        near += (product & LOW32) < s  # only these can be rejected (2**32 mod s < s)
    if near:
        for i in range(1, n):
            s = U64(i + 1)
            product = (mix64(key + (base + U64(i)) * GAMMA) >> U64(32)) * s
            if (product & LOW32) < (U64(1) << U64(32)) % s:
                draws[i] = _redraw(key, base + U64(i), s)


@njit(inline="always")
def shuffle_into(p, draws, key, row):  # pragma: no cover - compiled
    """Shuffle ``row`` of the stream into ``p`` (length N, any integer dtype), starting from the identity.

    ``draws`` is scratch space, a uint64 array of length N (:func:`swap_targets`).
    """
    swap_targets(draws, key, row)
    for i in range(p.shape[0]):
        p[i] = i
    _apply_swaps(p, draws)


@njit(inline="always")
def _apply_swaps(values, draws):  # pragma: no cover - compiled
    """Swap ``values[i]`` with ``values[draws[i]]`` for ``i = N - 1`` down to 1 (the shuffle's definition)."""
    for i in range(values.shape[0] - 1, 0, -1):
        j = draws[i]
        tmp = values[i]
        values[i] = values[j]
        values[j] = tmp


@njit(nogil=True, cache=True, boundscheck=False)
def fisher_yates_rows(key, row0, out):  # pragma: no cover - compiled
    """Fill ``out`` (B, N) int32 with shuffles ``row0 .. row0 + B - 1`` of the stream of ``key`` (uint64)."""
    draws = np.empty(out.shape[1], dtype=np.uint64)
    for k in range(out.shape[0]):
        shuffle_into(out[k], draws, key, row0 + k)
    return out


@njit(nogil=True, cache=True, boundscheck=False)
def null_fisher_yates(yt, key, row0, stencil, out):  # pragma: no cover - compiled
    """Statistics (B, c) of stream 2's shuffles ``row0 .. row0 + B - 1`` (uint64 ``key``) of the columns ``yt`` (c, N).

    Each shuffle is drawn once (:func:`swap_targets`) and applied to a float64 copy of each column
    in turn (the swaps of the shuffle's definition, on the values instead of the indices), which
    the stencil then reads in place, without an index. Four shuffles run side by side: their
    swaps interleaved, their sums four independent chains of additions (one chain waits on the
    latency of each addition; four keep the adder busy), each still in the order of the rows. The terms are those of
    :func:`propgrad.stats.cpu_kernels.null_by_columns` on ``y[p]``, so the statistics equal that
    kernel's on the same shuffles bit for bit (float32 values convert to float64 exactly), and no
    (K, N) matrix of indices is built.
    """
    b = out.shape[0]
    c, n = yt.shape
    draws = np.empty((LANES, n), dtype=np.uint64)
    cols = np.empty((LANES, n), dtype=np.float64)
    full = b - b % LANES
    for k in range(0, full, LANES):  # four shuffles at a time: their swaps and sums interleaved
        for lane in range(LANES):
            swap_targets(draws[lane], key, row0 + k + lane)
        for j in range(c):
            for lane in range(LANES):
                for i in range(n):
                    cols[lane, i] = yt[j, i]
            for i in range(n - 1, 0, -1):
                for lane in range(LANES):
                    d = draws[lane, i]
                    tmp = cols[lane, i]
                    cols[lane, i] = cols[lane, d]
                    cols[lane, d] = tmp
            _stencil_lanes(cols, stencil, out[k : k + LANES, j], n)
    for k in range(full, b):
        swap_targets(draws[0], key, row0 + k)
        for j in range(c):
            col = cols[0]
            for i in range(n):
                col[i] = yt[j, i]
            _apply_swaps(col, draws[0])
            out[k, j] = _stencil_sum(col, stencil) / n
    return out


@njit(inline="always")
def _stencil_sum(col, stencil):  # pragma: no cover - compiled
    """The gradient's sum over the stencil's rows of one shuffled column, in the order of the rows."""
    u, v, t, w0, w1, w2, pair = stencil
    acc = 0.0
    for r in range(u.shape[0]):
        if pair[r]:
            acc += w0[r] * abs(col[u[r]] - col[v[r]])
        else:
            acc += abs(w0[r] * col[u[r]] + w1[r] * col[v[r]] + w2[r] * col[t[r]])
    return acc


@njit(inline="always")
def _stencil_lanes(cols, stencil, out, n):  # pragma: no cover - compiled
    """:func:`_stencil_sum` of four shuffled columns at once (four independent chains of additions,
    each in the order of the rows), divided by ``n`` into ``out`` (4,)."""
    u, v, t, w0, w1, w2, pair = stencil
    c0, c1, c2, c3 = cols[0], cols[1], cols[2], cols[3]
    a0 = a1 = a2 = a3 = 0.0
    for r in range(u.shape[0]):
        x, y = u[r], v[r]
        if pair[r]:
            w = w0[r]
            a0 += w * abs(c0[x] - c0[y])
            a1 += w * abs(c1[x] - c1[y])
            a2 += w * abs(c2[x] - c2[y])
            a3 += w * abs(c3[x] - c3[y])
        else:
            z, p, q, s = t[r], w0[r], w1[r], w2[r]
            a0 += abs(p * c0[x] + q * c0[y] + s * c0[z])
            a1 += abs(p * c1[x] + q * c1[y] + s * c1[z])
            a2 += abs(p * c2[x] + q * c2[y] + s * c2[z])
            a3 += abs(p * c3[x] + q * c3[y] + s * c3[z])
    out[0] = a0 / n
    out[1] = a1 / n
    out[2] = a2 / n
    out[3] = a3 / n
