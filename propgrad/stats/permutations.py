"""Seeded uniform random permutations for the permutation test, their versioned streams, and their memo.

A seed and a stream version give the permutations, hence the p-values (results files record both):

- **stream 1** (every result written before 2026-12-07): :func:`permutation_indices` sorts random keys
  drawn from a ``torch.Generator`` seeded with the seed;
- **stream 2** (the default, :data:`DEFAULT_STREAM`): Fisher-Yates shuffles driven by a
  counter-based generator (:mod:`propgrad.stats.fisher_yates`), so any shuffle can be drawn on
  its own; the gradient's compiled kernel draws them and computes the statistics in one pass.

:func:`permutation_blocks` yields a stream's rows block by block (a first call streams them
instead of faulting in a (K, N) buffer); :func:`seeded_permutations` draws the whole (K, N)
matrix. A :class:`PermutationMemo` (held by the test's backends, :mod:`propgrad.stats.backends`)
keeps the matrix per (N, K, seed, stream) and the index tensors the kernels derive from it in a
small LRU memo.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np
import torch

from propgrad.stats.defaults import DEFAULT_STREAM, STREAMS  # noqa: F401  (re-exported)
from propgrad.stats.kernels import compiled_kernels

MEMO_MAX_BYTES = 128 * 2**20
SHUFFLE_BLOCK_BYTES = 2**20  # keys drawn and sorted in blocks: cache-sized, reused memory
SEEN_MAX = 256  # (n, k, seed, stream) keys remembered as used once


def permutation_indices(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Stream 1: K independent uniform random permutations of range(n), seeded by a torch.Generator.

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
    for _ in _sorted_key_blocks(n, k, generator, perms):
        pass
    return torch.from_numpy(perms)


def permutation_blocks(
    n: int, k: int, seed: int, stream: int = DEFAULT_STREAM, *, out: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """The rows of :func:`seeded_permutations` block by block: ``(start, rows)`` pairs.

    Args:
        n: Length of each permutation (>= 1).
        k: Number of permutations (>= 1).
        seed: The seed, in [0, 2**63 - 1].
        stream: The stream version, one of :data:`STREAMS`.
        out: Optional int32 array (k, n) to fill; each yielded block is then a view of it.
            Without it, one cache-sized buffer is reused: consume each block before the next.

    Yields:
        ``(s, block)``: an int32 array (b, n) holding permutations ``s:s + b``.
    """
    if stream == 1:
        yield from _sorted_key_blocks(n, k, torch.Generator(device="cpu").manual_seed(seed), out)
        return
    key = stream_key(seed)
    rows = min(k, max(1, SHUFFLE_BLOCK_BYTES // (n * 4)))
    buffer = np.empty((rows, n), dtype=np.int32) if out is None else None
    kernels = compiled_kernels()
    for s in range(0, k, rows):
        block = buffer[: min(rows, k - s)] if out is None else out[s : s + rows]
        if kernels is not None:
            kernels.fisher_yates_rows(np.uint64(key), s, block)
        else:
            block[:] = fisher_yates_numpy(key, s, block.shape[0], n)
        yield s, block


def _sorted_key_blocks(
    n: int, k: int, generator: torch.Generator, out: np.ndarray | None
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream 1's rows (:func:`permutation_indices`) block by block, as :func:`permutation_blocks` yields them."""
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
    kernels = compiled_kernels()
    if kernels is not None and out.flags.c_contiguous:  # the same steps, fused into one pass before and after
        kernels.place_positions(keys, low)
        keys.sort(axis=1)
        tied = np.empty(k, dtype=np.bool_)
        count = kernels.read_positions(keys, low, out, tied)
        return np.flatnonzero(tied) if count else np.empty(0, dtype=np.intp)
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


_MASK = 2**64 - 1
SPLITMIX_GAMMA, SPLITMIX_MIX1, SPLITMIX_MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
"""SplitMix64's increment and finaliser multipliers: stream 2's constants (:mod:`propgrad.stats.fisher_yates`)."""


def stream_key(seed: int) -> int:
    """Stream 2's key of ``seed``: SplitMix64's first output, ``mix64(seed + GAMMA)``, a Python int."""
    return int(_mix64_numpy(np.array([(seed + SPLITMIX_GAMMA) & _MASK], dtype=np.uint64))[0])


def fisher_yates_numpy(key: int, row0: int, k: int, n: int) -> np.ndarray:
    """Stream 2's shuffles ``row0 .. row0 + k - 1`` of ``n`` steps with numpy, vectorised over shuffles.

    The arithmetic of :func:`propgrad.stats.fisher_yates.fisher_yates_rows` (which is about forty
    times faster), for machines where numba's kernels are unavailable.

    Returns:
        An int32 array (k, n).
    """
    u64 = np.uint64
    out = np.tile(np.arange(n, dtype=np.int32), (k, 1))
    rows = np.arange(k)
    base = np.arange(row0, row0 + k, dtype=u64) * u64(n)
    for i in range(n - 1, 0, -1):
        s = u64(i + 1)
        counter = base + u64(i)
        product = (_mix64_numpy(u64(key) + counter * u64(SPLITMIX_GAMMA)) >> u64(32)) * s
        floor = u64(2**32 % (i + 1))
        retry = np.flatnonzero(product & u64(0xFFFFFFFF) < floor)
        attempt = 1
        while retry.size:  # Lemire's rejection (probability below (i + 1) / 2**32 per draw)
            start = _mix64_numpy(np.full(retry.size, (key + attempt) & _MASK, dtype=u64))
            product[retry] = (_mix64_numpy(start + counter[retry] * u64(SPLITMIX_GAMMA)) >> u64(32)) * s
            retry = retry[product[retry] & u64(0xFFFFFFFF) < floor]
            attempt += 1
        j = (product >> u64(32)).astype(np.intp)
        held = out[rows, i].copy()
        out[rows, i] = out[rows, j]
        out[rows, j] = held
    return out


def _mix64_numpy(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of a uint64 array (wrapping arithmetic)."""
    u64 = np.uint64
    z = (z ^ (z >> u64(30))) * u64(SPLITMIX_MIX1)
    z = (z ^ (z >> u64(27))) * u64(SPLITMIX_MIX2)
    return z ^ (z >> u64(31))


def seeded_permutations(n: int, k: int, seed: int, stream: int = DEFAULT_STREAM) -> torch.Tensor:
    """The K permutations of ``(n, seed)`` in ``stream`` as an int32 tensor (k, n); they depend only on these four.

    Stream 1 is :func:`permutation_indices` with ``torch.Generator().manual_seed(seed)``; stream 2
    the counter-based Fisher-Yates shuffles of :mod:`propgrad.stats.fisher_yates`.
    """
    perms = np.empty((k, n), dtype=np.int32)
    for _ in permutation_blocks(n, k, seed, stream, out=perms):
        pass
    return torch.from_numpy(perms)


class PermutationMemo:
    """An LRU memo of seeded permutation matrices and of tensors derived from them, in-process.

    The permutations depend only on (n, k, seed, stream), so scoring many images with the same
    settings draws them once. A first request for an (n, k, seed, stream) is only remembered (:meth:`first_use`):
    that call streams its permutations block by block, and a second use memoises the matrix.

    Attributes:
        max_bytes: Most bytes of tensors kept (least recently used ones are dropped first).
    """

    def __init__(self, max_bytes: int = MEMO_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._memo: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()
        self._seen: OrderedDict[tuple, None] = OrderedDict()  # (n, k, seed, stream) streamed once

    def __len__(self) -> int:
        """Entries memoised."""
        return len(self._memo)

    def permutations(self, n: int, k: int, seed: int, stream: int) -> torch.Tensor:
        """:func:`seeded_permutations`, memoised. Do not modify the returned tensor."""
        key = ("permutations", n, k, seed, stream)
        return self.memoised(key, lambda: (seeded_permutations(n, k, seed, stream),))[0]

    def memoised(self, key: tuple | None, build: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``build()``'s deterministic tensors under ``key``, built once (``key=None``: not memoised)."""
        if key is not None and key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = build()
        if key is not None and _nbytes(value) <= self.max_bytes:
            self._memo[key] = value
            while sum(_nbytes(v) for v in self._memo.values()) > self.max_bytes:
                self._memo.popitem(last=False)
        return value

    def first_use(self, n: int, k: int, seed: int, stream: int) -> bool:
        """True (and remember it) the first time (n, k, seed, stream) is asked for while not memoised."""
        key = ("permutations", n, k, seed, stream)
        if key in self._memo or key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        """Forget the memoised matrices, the tensors derived from them and the first uses."""
        self._memo.clear()
        self._seen.clear()


def _nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
