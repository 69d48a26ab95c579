"""A byte-bounded LRU memo of attribution maps: the runner's maps of each block's original images.

The maps of an original image do not depend on the intervention, so a suite with several
interventions would attribute them once per intervention; the memo keeps them for the next one,
up to :data:`MAP_CACHE_BYTES`, forgetting the least recently used first. A forgotten entry is
recomputed in the same block, bit for bit, so the bound changes the time a run takes, never its
results.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence

import torch

MAP_CACHE_BYTES = 256 * 2**20


class MapCache:
    """LRU memo ``key -> maps`` holding at most ``max_bytes`` of tensors (entries larger are not kept)."""

    def __init__(self, max_bytes: int = MAP_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], Sequence[Any]]) -> Sequence[Any]:
        """The memoised maps of ``key``, or ``compute()``'s (then remembered while they fit)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key][0]
        value = compute()
        size = sum(m.numel() * m.element_size() for m in value if isinstance(m, torch.Tensor))
        if size <= self.max_bytes:
            self._entries[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._entries)
