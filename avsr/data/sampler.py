"""Length-bucketed batch sampler with rank sharding and exact resume.

Every epoch the batches are rebuilt from ``(seed, epoch)`` alone: items are
shuffled, stably sorted by length (so equal lengths stay in random order),
packed greedily so that ``batch_size * longest <= max_frames_per_batch``, and
the batch order is shuffled. Batch ``k`` goes to rank ``k % world_size``; in
training (``drop_uneven=True``) the last ``len % world_size`` batches are
dropped so every rank makes the same number of steps.

Each batch is a list of ``(index, epoch)`` keys (see :class:`AVDataset`).

Resume: the DataLoader prefetches, so the sampler cannot know how many
batches the consumer has used. The consumer (the training loop) counts them
and calls ``set_epoch(epoch, position)`` (or ``load_state_dict``) before
creating the next iterator; iteration then starts at batch ``position``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


class LengthBatchSampler:
    """Batches of item keys bounded by padded length.

    Args:
        lengths: per-item length (video frames, see :class:`DataConfig`).
        max_frames_per_batch: bound on ``batch_size * max length``.
        max_batch_size: optional bound on the number of items.
        shuffle: random order (training); else items in length order, batches in order.
        seed: shuffle seed.
        rank, world_size: shard of this process.
        drop_uneven: drop the batches that do not divide evenly over ranks
            (default: ``shuffle``).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        *,
        max_frames_per_batch: int,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 1,
        rank: int = 0,
        world_size: int = 1,
        drop_uneven: bool | None = None,
    ) -> None:
        if max_frames_per_batch < 1:
            raise ValueError("max_frames_per_batch must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_frames = int(max_frames_per_batch)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_uneven = shuffle if drop_uneven is None else drop_uneven
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def _all_batches(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(n)
        else:
            rng = None
            order = np.arange(n)
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches: list[list[int]] = []
        cur: list[int] = []
        cur_max = 0
        for i in order.tolist():
            length = max(1, int(self.lengths[i]))
            new_max = max(cur_max, length)
            full = self.max_batch_size is not None and len(cur) >= self.max_batch_size
            if cur and (new_max * (len(cur) + 1) > self.max_frames or full):
                batches.append(cur)
                cur, new_max = [], length
            cur.append(i)
            cur_max = new_max
        if cur:
            batches.append(cur)
        if rng is not None:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        self._cache = (epoch, batches)
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches (item indices) of ``epoch``."""
        allb = self._all_batches(epoch)
        if self.drop_uneven:
            allb = allb[: len(allb) - len(allb) % self.world_size]
        return allb[self.rank :: self.world_size]

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        """Next iteration yields batches of ``epoch`` starting at batch ``position``."""
        self.epoch = int(epoch)
        self.position = int(position)

    def batches_per_epoch(self) -> int:
        return len(self.batches(self.epoch))

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.position)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        for b in self.batches(epoch)[self.position :]:
            yield [(i, epoch) for i in b]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(
                f"sampler state was saved with seed {state['seed']}, this run uses {self.seed}"
            )
        self.set_epoch(int(state["epoch"]), int(state["position"]))
