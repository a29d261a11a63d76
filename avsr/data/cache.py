"""An in-memory cache of decoded clips, bounded in bytes (least recently used out first).

Decoding the lip video is the largest data cost of an AV training step on a small CPU
(``docs/results/2026-12-06-data-loading-threads.md``); on a corpus that fits in memory every epoch after the
first can skip it. The cache lives in the process that reads the dataset: the main
process with ``train.num_workers: 0``, else each (persistent) loader worker.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

_MiB = 1 << 20


def _nbytes(arrays: tuple[np.ndarray | None, ...]) -> int:
    return sum(a.nbytes for a in arrays if a is not None)


class ClipCache:
    """Decoded ``(audio, video)`` arrays of dataset items, at most ``max_mb`` MiB in all.

    :meth:`get` hands out copies, so whatever the caller does to them leaves the cache as
    it was; an item larger than the whole budget is not kept.
    """

    def __init__(self, max_mb: float) -> None:
        if max_mb < 0:
            raise ValueError(f"cache size must be >= 0 MiB, got {max_mb}")
        self.max_bytes = int(max_mb * _MiB)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[int, tuple[np.ndarray | None, np.ndarray | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int) -> tuple[np.ndarray | None, np.ndarray | None] | None:
        """Copies of item ``index``'s ``(audio, video)``, or None when it is not cached."""
        item = self._items.get(index)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(index)
        return tuple(None if a is None else a.copy() for a in item)  # type: ignore[return-value]

    def put(self, index: int, audio: np.ndarray | None, video: np.ndarray | None) -> None:
        """Keep copies of item ``index``'s arrays, dropping the least recently used to fit."""
        size = _nbytes((audio, video))
        if size > self.max_bytes:
            return
        old = self._items.pop(index, None)
        if old is not None:
            self.bytes -= _nbytes(old)
        while self._items and self.bytes + size > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= _nbytes(dropped)
        self._items[index] = (
            None if audio is None else audio.copy(),
            None if video is None else video.copy(),
        )
        self.bytes += size
