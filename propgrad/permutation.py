"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (the standard Monte-Carlo p-value, never 0; Algorithm 1 writes ``b / K``).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

Vectorised: one (K, N) matrix of permutation indices (``seeded_permutations``, memoised per
(N, K, seed)) serves every output column. The null statistics come from the kernels of
:mod:`propgrad.null_statistics`, run in chunks over permutations and blocks of columns so
temporaries stay near ``memory_budget``; the permutation chunk size never changes a result. The
first call for an (N, K, seed) whose columns fit one block does not build the matrix: it computes
each cache-sized block of permutations as it is drawn (``permutation_blocks``, the same rows), so
it never faults in a fresh (K, N) buffer; a second use memoises the matrix for the calls after it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch

from propgrad.null_statistics import StatisticFn, make_null_statistic, two_sided_p_values
from propgrad.scoring import as_outputs, as_values

__all__ = ["PermutationResult", "clear_cache", "permutation_blocks", "permutation_indices", "permutation_test",
           "seeded_permutations", "two_sided_p_values"]
KEEP_NULL_MAX_COLUMNS = 16
MEMO_MAX_BYTES = 128 * 2**20
SHUFFLE_BLOCK_BYTES = 2**20  # keys drawn and sorted in blocks: cache-sized, reused memory
CHUNK_BYTES = 4 * 2**20  # chunks whose temporaries stay cache-sized (and reuse freed memory) run faster
SEEN_MAX = 256  # (n, k, seed) keys remembered as used once
_MEMO: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()
_SEEN: OrderedDict[tuple, None] = OrderedDict()  # (n, k, seed) streamed once, memoised on the next use


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
    """K independent uniform random permutations of range(n), seeded by a torch.Generator.

    Each row sorts n random integer keys, each packed with its position in the low bits (so one
    SIMD integer sort yields the order); rows where two keys tie are drawn again, which keeps the
    permutations exactly uniform (a tie would otherwise favour the lower position). The keys come
    from numpy's SFC64 bit generator seeded with 128 bits drawn from ``generator``, about three
    times faster than torch's CPU generator. Rows are drawn in cache-sized blocks, tied rows
    redrawn before the next block, so :func:`permutation_blocks` yields exactly these rows; the same
    generator state gives the same permutations.

    Args:
        n: Length of each permutation (>= 1).
        k: Number of permutations (>= 1).
        generator: A CPU ``torch.Generator``; it is advanced.

    Returns:
        An int32 tensor (k, n) on the CPU (half the memory of int64, and faster to gather with);
        row j is the order of the j-th shuffle.
    """
    perms = np.empty((k, n), dtype=np.int32)
    for _ in permutation_blocks(n, k, generator, out=perms):
        pass
    return torch.from_numpy(perms)


def permutation_blocks(
    n: int, k: int, generator: torch.Generator, *, out: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """The rows of :func:`permutation_indices` block by block: ``(start, rows)`` pairs.

    Args:
        n: Length of each permutation (>= 1).
        k: Number of permutations (>= 1).
        generator: A CPU ``torch.Generator``; it is advanced when iteration starts.
        out: Optional int32 array (k, n) to fill; each yielded block is then a view of it.
            Without it, one cache-sized buffer is reused: consume each block before the next.

    Yields:
        ``(s, block)``: an int32 array (b, n) holding permutations ``s:s + b``.
    """
    words = torch.randint(0, 2**62, (2,), generator=generator, dtype=torch.int64).tolist()
    bits = np.random.SFC64(np.random.SeedSequence(words))
    shift = max(1, (n - 1).bit_length())
    dtype = np.int32 if 100 * n * n <= 2 ** (32 - shift) else np.int64  # <= ~0.5 % of rows redrawn
    rows = min(k, max(1, SHUFFLE_BLOCK_BYTES // (n * 8)))
    buffer = np.empty((rows, n), dtype=np.int32) if out is None else None
    for s in range(0, k, rows):
        block = buffer[: min(rows, k - s)] if out is None else out[s : s + rows]
        redo = _sort_positions(bits, block, shift, dtype)
        while redo.size:
            again = np.empty((redo.size, n), dtype=np.int32)
            tied_again = _sort_positions(bits, again, shift, dtype)
            block[redo] = again
            redo = redo[tied_again]
        yield s, block


def _sort_positions(bits: np.random.BitGenerator, out: np.ndarray, shift: int, dtype: type) -> np.ndarray:
    """Fill ``out`` (rows, n) with positions ordered by random keys; return the rows whose keys tied."""
    k, n = out.shape
    words = bits.random_raw((k * n * np.dtype(dtype).itemsize + 7) // 8)
    keys = words.view(dtype)[: k * n].reshape(k, n)  # every key uniform on all its bits
    low = dtype((1 << shift) - 1)
    keys &= ~low
    keys |= np.arange(n, dtype=dtype)
    keys.sort(axis=1)
    tied = _tied_rows(keys, low)
    np.bitwise_and(keys, low, out=out, casting="unsafe")
    return tied


def _tied_rows(keys: np.ndarray, low: np.integer) -> np.ndarray:
    """Rows of the row-sorted ``keys`` (k, n) where two keys agree above the ``low`` position bits."""
    n = keys.shape[1]
    flat = keys.reshape(-1)  # compare neighbours over the flat array, then drop pairs across rows
    near = np.bitwise_xor(flat[1:], flat[:-1]).view(f"u{keys.itemsize}") <= int(low)
    if not near.any():  # the usual case: skip locating them
        return np.empty(0, dtype=np.intp)
    close = np.flatnonzero(near)
    return np.unique(close[(close + 1) % n != 0] // n)


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
    _SEEN.clear()


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
        chunk_size: Permutations per chunk (default: as many as keep one chunk's temporaries
            within 4 MB (cache-sized), or ``memory_budget`` if smaller). Results do not depend on it.
        memory_budget: Rough bound in bytes on the temporaries, including the (K, columns) null
            statistics of one block of columns (columns are processed in blocks to respect it).

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
    name, kernel = make_null_statistic(statistic, x, k, c, periodic=periodic, period=period, edge_order=edge_order)
    itemsize = y.element_size()
    cols = max(1, min(c, kernel.columns_per_block(c, itemsize), memory_budget // (2 * k * itemsize)))
    stream = cols >= c and _first_use(n, k, int(seed))
    if not stream:
        perms = seeded_permutations(n, k, int(seed)).to(y.device)
        signature = kernel.signature
        key = None if signature is None else (type(kernel).__name__, signature, n, k, int(seed), str(y.device), y.dtype)
        bound = _memoised(key, lambda: kernel.bind(perms, y.dtype))
    bound_identity = kernel.bind(torch.arange(n, device=y.device)[None], y.dtype)
    stats, pvals, nulls = [], [], []
    for c0 in range(0, c, cols):
        yc = y[:, c0 : c0 + cols].contiguous()
        prepared = kernel.prepare(yc)
        per_permutation = max(1, kernel.bytes_per_permutation(yc.shape[1], itemsize))
        b = chunk_size or max(1, min(memory_budget, CHUNK_BYTES) // per_permutation)
        observed = kernel.run(prepared, bound_identity, 0, 1)[0]
        null = torch.empty(k, yc.shape[1], dtype=y.dtype, device=y.device)
        if stream:
            _run_streamed(kernel, prepared, null, n, int(seed), b)
        else:
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


def _first_use(n: int, k: int, seed: int) -> bool:
    """True (and remember it) the first time (n, k, seed) is asked for while not memoised.

    A first call streams its permutations block by block (no (K, N) matrix to fault in); only a
    second use draws and memoises the matrix, as when many images are scored with one setting.
    """
    key = ("permutations", n, k, seed)
    if key in _MEMO or key in _SEEN:
        return False
    _SEEN[key] = None
    while len(_SEEN) > SEEN_MAX:
        _SEEN.popitem(last=False)
    return True


def _run_streamed(kernel: Any, prepared: Any, null: torch.Tensor, n: int, seed: int, chunk: int) -> None:
    """Fill ``null`` (K, C) with the kernel's statistics while drawing the seeded permutations by block."""
    k = null.shape[0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for s, block in permutation_blocks(n, k, generator):
        bound = kernel.bind(torch.from_numpy(block).to(null.device), null.dtype)
        rows = block.shape[0]
        for j in range(0, rows, chunk):
            null[s + j : s + min(j + chunk, rows)] = kernel.run(prepared, bound, j, min(j + chunk, rows))
