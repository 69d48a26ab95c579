"""The compiled CPU kernel that matches placebo steps (numba; one pass over the pixels per candidate).

:func:`match_steps` draws whole placebo sequences along given directions: for every placebo and every
step it finds the step size ``s_i`` at which ``mean |R(I_0 + s_i D) - X_(i-1)|`` equals the real step's
change, by the search of :func:`propgrad.sources.placebo_sequences._match_step` (the same first guess
from the previous step's slope, the same widening of the bracket, false position with a bisection
every third iteration, the same tolerance ``rtol * d_i + eps``). It is that function's CPU path for
float32 and float64 images: the torch version runs about ten tensor passes per candidate (the
reflection's remainder, a ``where``, the difference, its mean, the masked copies of matched
placebos), this one three passes of vector lanes and an in-order sum
(:func:`_change`), placebo by placebo.

Arithmetic. The candidate pixels are computed as torch computes them: ``t`` rounded to the pixels'
dtype, ``start + t * D`` rounded once (torch's ``addcmul`` is a fused multiply-add; here the
product and sum are formed in float64 and rounded to the pixel dtype, which is the same for float32
pixels and one rounding apart for float64), then the reflection ``R`` (an exact ``fmod`` and the
same two branches as :func:`propgrad.sources.placebo_sequences.reflect_unit`). So a float32
candidate at a given ``t`` is bit-identical to the torch path's. The mean change is accumulated in float64 (torch
sums float32 differences in float32, in its own order), so the search may end at another ``t``
within the tolerance, and the placebo images differ from the torch path's by at most about
``rtol`` of a step: both meet the contract that every step's change matches within
``rtol * d_i + eps`` on the returned images. Placebos stay independent of each other, so the
images do not depend on how many are drawn at once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from propgrad.sources.placebo_sequences import MAX_DOUBLINGS, MAX_ITERATIONS

#: Status codes of :func:`match_steps` per placebo.
MATCHED, UNREACHABLE, NOT_CONVERGED = 0, 1, 2


@njit(nogil=True, cache=True, boundscheck=False)
def _change(start, direction, prev, t, candidate, scratch):  # pragma: no cover - compiled
    """Write the candidate ``R(start + t * direction)`` into ``candidate``; return its mean |change| from ``prev``.

    Four loops, each simple enough for the compiler to put on vector lanes but the last: the
    candidate's pixels (``start + t * D``, rounded to the pixel dtype on the store), their reflection
    (no branches: both sides are computed and one is kept), their |change| (float64, into
    ``scratch``), and the sum of the changes in a fixed order, the even pixels in one sum and the
    odd in another (two chains the processor overlaps), which lanes could not keep. One loop for the
    first three made the same numbers, and the kernel took 1.2 times as long on the fur suite's placebos."""
    typed = np.empty(3, dtype=start.dtype)  # the constants in the pixels' dtype, so float32 stays float32
    typed[0] = t
    typed[1] = 1.0
    typed[2] = 2.0
    tp, one, two = typed[0], typed[1], typed[2]
    t64 = np.float64(tp)
    n = start.shape[0]
    for p in range(n):
        # start + t * D rounded once to the pixel dtype, as torch.addcmul's fused multiply-add does
        candidate[p] = np.float64(start[p]) + t64 * np.float64(direction[p])
    for p in range(n):
        # reflected back into [0, 1] (fmod(y, 2) is exact, since the remainder is representable);
        # inside it, R is the identity. Both are computed and one is kept: a select, not a branch.
        y = candidate[p]
        r = y - two * np.trunc(y / two)
        r = r + two if r < 0 else r
        r = two - r if r > one else r
        candidate[p] = r if (y < 0) | (y > one) else y
    for p in range(n):
        scratch[p] = abs(np.float64(candidate[p] - prev[p]))
    acc0 = acc1 = 0.0
    for p in range(0, n - 1, 2):
        acc0 += scratch[p]
        acc1 += scratch[p + 1]
    if n & 1:
        acc0 += scratch[n - 1]
    return (acc0 + acc1) / n


@njit(nogil=True, cache=True, boundscheck=False)
def match_steps(start, directions, targets, rtol, eps, out, status):  # pragma: no cover - compiled
    """Draw placebo sequences along ``directions``, every step's change matched.

    Args:
        start: The first image, flattened (P,), in the pixel dtype (float32 or float64).
        directions: The directions (M, P), same dtype, each with mean |D| = 1.
        targets: The real steps' changes (N - 1,), float64.
        rtol: Relative tolerance of a step's change.
        eps: The pixel dtype's machine epsilon (the tolerance's absolute part).
        out: Output (M, N - 1, P) in the pixel dtype: each placebo's steps after the first (the first
            is ``start``), so the steps of consecutive placebos lie in one block the model can read.
        status: Output (M, 2) int64: the code (:data:`MATCHED`, :data:`UNREACHABLE`,
            :data:`NOT_CONVERGED`) and the step that failed (0 when matched).
    """
    m_count = directions.shape[0]
    n_steps = out.shape[1] + 1
    p_count = start.shape[0]
    candidate = np.empty(p_count, dtype=start.dtype)
    scratch = np.empty(p_count, dtype=np.float64)
    for m in range(m_count):
        direction = directions[m]
        status[m, 0] = MATCHED
        status[m, 1] = 0
        s = 0.0
        slope = 1.0
        for i in range(1, n_steps):
            target = targets[i - 1]
            prev = start if i == 1 else out[m, i - 2]
            if target == 0:
                for p in range(p_count):
                    out[m, i - 1, p] = prev[p]
                continue
            tol = rtol * target + eps
            lo = s
            g_lo = -target
            hi = s + slope * target
            g_hi = _change(start, direction, prev, hi, candidate, scratch) - target
            done = abs(g_hi) <= tol
            t_out = hi
            j = 0
            while not done and g_hi < 0 and j < MAX_DOUBLINGS:
                reached = g_hi + target
                factor = target / max(reached, 1e-300) * (1 + 10 * rtol) if reached > 0 else 2.0
                factor = min(max(factor, min(2.0, 1.001 * 1.2**j)), 2.0)
                lo = hi
                g_lo = g_hi
                hi = s + factor * (hi - s)
                g_hi = _change(start, direction, prev, hi, candidate, scratch) - target
                if abs(g_hi) <= tol:
                    done = True
                    t_out = hi
                j += 1
            if not done and g_hi < 0:
                status[m, 0] = UNREACHABLE
                status[m, 1] = i
                break
            iteration = 0
            while not done and iteration < MAX_ITERATIONS:
                if iteration % 3 == 2:
                    t = (lo + hi) / 2
                else:
                    t = hi - g_hi * (hi - lo) / (g_hi - g_lo)
                    if not (t > lo and t < hi):
                        t = (lo + hi) / 2
                g = _change(start, direction, prev, t, candidate, scratch) - target
                if abs(g) <= tol:
                    done = True
                    t_out = t
                elif g < 0:
                    lo = t
                    g_lo = g
                else:
                    hi = t
                    g_hi = g
                iteration += 1
            if not done:
                status[m, 0] = NOT_CONVERGED
                status[m, 1] = i
                break
            for p in range(p_count):
                out[m, i - 1, p] = candidate[p]
            slope = max((t_out - s) / target, 1.0)
            s = t_out
    return out
