"""DataLoader construction (worker processes, collation, sharded length batches)."""

from __future__ import annotations

import torch

from avsr.data.batch import collate
from avsr.data.dataset import AVDataset
from avsr.data.sampler import LengthBatchSampler


def _worker_init(worker_id: int) -> None:
    # Decoding is the work; keep each worker single-threaded on small CPUs.
    torch.set_num_threads(1)


def make_batch_sampler(
    dataset: AVDataset, *, rank: int = 0, world_size: int = 1, shuffle: bool | None = None
) -> LengthBatchSampler:
    """A :class:`LengthBatchSampler` over ``dataset`` with its config's batch limits."""
    cfg = dataset.cfg
    return LengthBatchSampler(
        dataset.lengths,
        max_frames_per_batch=cfg.max_frames_per_batch,
        max_batch_size=cfg.max_batch_size,
        shuffle=dataset.train if shuffle is None else shuffle,
        seed=cfg.seed,
        rank=rank,
        world_size=world_size,
    )


def make_dataloader(
    dataset: AVDataset,
    sampler: LengthBatchSampler | None = None,
    *,
    num_workers: int = 2,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    prefetch_factor: int = 4,
    persistent_workers: bool = False,
) -> torch.utils.data.DataLoader:
    """DataLoader yielding :class:`AVBatch` (``loader.batch_sampler`` is the sampler).

    Workers are kept alive across epochs when ``persistent_workers`` is set or the dataset
    caches decoded clips (``data.cache_mb``), so that the cache outlives an epoch; every
    item's augmentation is seeded by (seed, epoch, index), so this changes no batch."""
    if sampler is None:
        sampler = make_batch_sampler(dataset, rank=rank, world_size=world_size)
    kwargs = {}
    if num_workers > 0:
        kwargs = {
            "prefetch_factor": prefetch_factor,
            "persistent_workers": persistent_workers or dataset.cache is not None,
            "worker_init_fn": _worker_init,
        }
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **kwargs,
    )
