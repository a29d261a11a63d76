"""The in-memory cache of decoded clips: bounded, least recently used out, copies out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.data import (
    AVDataset,
    DataConfig,
    make_batch_sampler,
    make_dataloader,
    make_synthetic_av_data,
)
from avsr.data.cache import ClipCache
from avsr.errors import UserError

MiB = 1 << 20


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cachedata")
    return make_synthetic_av_data(root, n_clips=6, min_frames=8, max_frames=30, seed=5)


def _item(n_bytes: int, fill: int) -> np.ndarray:
    return np.full(n_bytes, fill, dtype=np.uint8)


def test_cache_keeps_copies_and_drops_the_least_recently_used() -> None:
    cache = ClipCache(1)  # 1 MiB
    audio, video = np.arange(4, dtype=np.float32), _item(MiB // 2 - 16, 1)
    cache.put(0, audio, video)
    audio[:] = -1  # the caller's arrays may change afterwards
    got = cache.get(0)
    assert got is not None and got[0] is not None and got[1] is not None
    np.testing.assert_array_equal(got[0], [0, 1, 2, 3])
    got[1][:] = 9  # so may the copies handed out
    again = cache.get(0)
    assert again is not None and again[1] is not None and int(again[1].max()) == 1
    cache.put(1, None, _item(MiB // 2 - 16, 2))
    cache.get(0)  # 0 used last: 1 is the one to go
    cache.put(2, None, _item(MiB // 2 - 16, 3))
    assert cache.get(1) is None and cache.get(0) is not None and cache.get(2) is not None
    assert cache.bytes <= cache.max_bytes and len(cache) == 2
    cache.put(3, None, _item(2 * MiB, 4))  # larger than the whole budget: not kept, nothing dropped
    assert cache.get(3) is None and len(cache) == 2
    assert (cache.hits, cache.misses) == (5, 2)


def test_cached_dataset_gives_the_same_items_and_skips_decoding(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DataConfig(
        max_crop_seconds=0.6, crop_size=44, image_size=48, speed_perturb=(0.9, 1.1),
        noise_dir=str(data.parent / "noise"), noise_prob=0.5, noise_snr_range=(-5.0, 5.0),
    )
    plain = AVDataset(data, cfg, train=True, labels=data.with_suffix(".km"))
    cached = AVDataset(data, dataclasses.replace(cfg, cache_mb=64), train=True, labels=data.with_suffix(".km"))
    keys = [(i, e) for e in (0, 1, 2) for i in range(len(plain))]
    first = [cached[k] for k in keys[: len(plain)]]
    import avsr.data.dataset as dataset_module

    def no_decoding(path: object) -> np.ndarray:
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(dataset_module, "read_video_gray", no_decoding)
    monkeypatch.setattr(dataset_module, "read_audio", no_decoding)
    later = [cached[k] for k in keys[len(plain) :]]
    monkeypatch.undo()
    for k, got in zip(keys, first + later):
        want = plain[k]
        assert (got.n_audio, got.n_video) == (want.n_audio, want.n_video)
        np.testing.assert_array_equal(got.audio, want.audio)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got.video, want.video)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got.units, want.units)  # type: ignore[arg-type]
    assert cached.cache is not None and cached.cache.hits == len(later)


def test_cached_dataset_with_workers_keeps_them_and_the_batches(data: Path) -> None:
    cfg = DataConfig(max_crop_seconds=0.6, crop_size=44, image_size=48, max_frames_per_batch=40, cache_mb=64)
    ds = AVDataset(data, cfg, train=True, labels=data.with_suffix(".km"))
    ref = AVDataset(data, dataclasses.replace(cfg, cache_mb=0), train=True, labels=data.with_suffix(".km"))
    loader = make_dataloader(ds, make_batch_sampler(ds), num_workers=1)
    assert loader.persistent_workers and not make_dataloader(ref, make_batch_sampler(ref), num_workers=1).persistent_workers
    for epoch in (0, 1):
        loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        sampler = make_batch_sampler(ref)
        sampler.set_epoch(epoch)
        for x, y in zip(loader, make_dataloader(ref, sampler, num_workers=0), strict=True):
            assert x.ids == y.ids
            torch.testing.assert_close(x.video, y.video, rtol=0, atol=0)


def test_negative_cache_size_is_refused(data: Path) -> None:
    with pytest.raises(UserError, match="cache_mb"):
        AVDataset(data, DataConfig(cache_mb=-1))
