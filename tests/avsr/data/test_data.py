"""AV data pipeline on tiny synthetic wav + ROI mp4 data."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.config import load_config
from avsr.data import (
    PIXEL_MEAN,
    PIXEL_STD,
    AVDataset,
    DataConfig,
    LengthBatchSampler,
    cnn_frames,
    collate,
    make_batch_sampler,
    make_dataloader,
    make_synthetic_av_data,
    read_video_gray,
)
from avsr.data.labels import fit_units
from avsr.errors import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("avdata")
    return make_synthetic_av_data(root, n_clips=7, min_frames=8, max_frames=30, seed=3)


def test_cnn_frames() -> None:
    assert cnn_frames(399) == 0
    assert cnn_frames(400) == 1
    assert cnn_frames(719) == 1
    assert cnn_frames(720) == 2
    assert cnn_frames(16000) == 49
    # 1 video frame = 640 samples = 2 units (minus the receptive-field edge)
    assert cnn_frames(640 * 25) == 2 * 25 - 1


def test_fit_units_tolerance(caplog: pytest.LogCaptureFixture) -> None:
    u = np.arange(10)
    with caplog.at_level(logging.WARNING):
        assert fit_units(u, 9).tolist() == list(range(9))
        assert fit_units(u, 12).tolist() == [*range(10), 9, 9]
        assert not caplog.records
        fit_units(u, 14)
        assert caplog.records


def test_eval_items_full_and_aligned(data: Path) -> None:
    ds = AVDataset(
        data, DataConfig(), train=False, labels=[data.with_suffix(".km"), data.with_suffix(".wrd")]
    )
    assert len(ds) == 7
    for i in range(len(ds)):
        s = ds[i]
        assert s.audio is not None and s.video is not None and s.units is not None
        assert s.video.shape[1:] == (88, 88) and s.video.dtype == np.uint8
        assert s.audio.shape == (s.n_audio,) and s.n_audio == ds.rows[i].n_audio_samples
        assert s.video.shape[0] == s.n_video == ds.rows[i].n_video_frames
        assert len(s.units) == cnn_frames(s.n_audio)
        assert s.text and s.lang in ("en", "es")
    # centre crop of the decoded 96x96 ROI, deterministic
    full = read_video_gray(ds.manifest.resolve(ds.rows[0].video))
    np.testing.assert_array_equal(ds[0].video, full[:, 4:92, 4:92])
    np.testing.assert_array_equal(ds[0].audio, ds[0].audio)


def test_collate_padding_and_normalisation(data: Path) -> None:
    ds = AVDataset(data, DataConfig(), labels=data.with_suffix(".km"))
    samples = [ds[0], ds[1], ds[2]]
    b = collate(samples)
    assert (
        b.audio is not None
        and b.video is not None
        and b.units is not None
        and b.unit_lens is not None
    )
    assert b.audio.shape == (3, max(s.n_audio for s in samples)) and b.audio.dtype == torch.float32
    assert b.video.shape == (3, 1, max(s.n_video for s in samples), 88, 88)
    assert b.units.dtype == torch.long and b.texts is None and b.langs is not None
    for i, s in enumerate(samples):
        assert b.audio_lens[i] == s.n_audio and b.video_lens[i] == s.n_video
        assert torch.all(b.audio[i, s.n_audio :] == 0)
        assert torch.all(b.units[i, b.unit_lens[i] :] == -100)
        expected = (torch.from_numpy(s.video).float() / 255 - PIXEL_MEAN) / PIXEL_STD
        torch.testing.assert_close(b.video[i, 0, : s.n_video], expected)
        assert torch.all(b.video[i, 0, s.n_video :] == 0)
    moved = b.to("cpu")
    assert moved.ids == b.ids and moved.audio is not None


def test_training_crop_keeps_modalities_aligned(data: Path) -> None:
    cfg = DataConfig(max_crop_seconds=0.2, crop_size=44, image_size=48, noise_dir=None)
    ds = AVDataset(data, cfg, train=True, labels=data.with_suffix(".km"))
    ref = AVDataset(
        data,
        DataConfig(crop_size=96, max_crop_seconds=None),
        train=False,
        labels=data.with_suffix(".km"),
    )
    assert ds.lengths.max() == 5
    for i in range(len(ds)):
        s = ds[(i, 2)]
        assert s.video is not None and s.video.shape[1:] == (44, 44)
        assert s.n_video == 5 and s.n_audio == 5 * 640
        assert s.units is not None and len(s.units) == cnn_frames(5 * 640)
        # locate the crop in the full clip through the audio, then check units and video follow
        full = ref[i]
        assert full.audio is not None and full.units is not None and full.video is not None
        a0 = next(
            o
            for o in range(0, full.n_audio, 640)
            if np.array_equal(full.audio[o : o + 3200], s.audio)
        )
        v0 = a0 // 640
        np.testing.assert_array_equal(s.units, full.units[2 * v0 : 2 * v0 + len(s.units)])
        # video crop came from the same frames: mean brightness order is preserved after resize
        src = full.video[v0 : v0 + 5].reshape(5, -1).mean(1)
        got = s.video.reshape(5, -1).mean(1)
        assert np.ptp(src) < 1 or np.corrcoef(src, got)[0, 1] > 0.9
    # the same (index, epoch) gives the same item; another epoch a different crop somewhere
    a, b = ds[(3, 0)], ds[(3, 0)]
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.audio, b.audio)
    diffs = [not np.array_equal(ds[(3, 0)].audio, ds[(3, e)].audio) for e in range(1, 6)]
    assert any(diffs)


def test_flip_and_noise_augmentation(data: Path) -> None:
    noise_dir = str(data.parent / "noise")
    cfg = DataConfig(
        max_crop_seconds=None,
        hflip_prob=1.0,
        noise_dir=noise_dir,
        noise_prob=1.0,
        noise_snr_range=(10.0, 10.0),
        crop_size=96,
    )
    ds = AVDataset(data, cfg, train=True)
    clean = AVDataset(data, dataclasses.replace(cfg, hflip_prob=0.0, noise_dir=None), train=False)
    s, c = ds[0], clean[0]
    assert (
        s.video is not None and c.video is not None and s.audio is not None and c.audio is not None
    )
    np.testing.assert_array_equal(s.video, c.video[:, :, ::-1])
    snr = 10 * np.log10(
        np.sum(c.audio.astype(np.float64) ** 2)
        / np.sum((s.audio - c.audio).astype(np.float64) ** 2)
    )
    assert abs(snr - 10.0) < 0.1
    # evaluation noise: deterministic per clip id
    ev = AVDataset(
        data,
        dataclasses.replace(cfg, noise_categories=["babble"]),
        train=False,
        eval_noise=("babble", 5.0, 7),
    )
    x1, x2 = ev[1].audio, ev[1].audio
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, clean[1].audio)
    with pytest.raises(UserError, match="'missing'"):
        AVDataset(data, dataclasses.replace(cfg, noise_categories=["missing"]), train=True)


def test_training_noise_keeps_the_clean_audio(data: Path) -> None:
    noisy_cfg = DataConfig(max_crop_seconds=None, noise_dir=str(data.parent / "noise"), noise_prob=1.0)
    ds = AVDataset(data, noisy_cfg, train=True, keep_clean_audio=True)
    ref = AVDataset(data, dataclasses.replace(noisy_cfg, noise_dir=None), train=True, keep_clean_audio=True)
    s0, s1, r0, r1 = ds[0], ds[1], ref[0], ref[1]
    assert s0.clean_audio is not None and s0.audio is not None and r0.audio is not None
    np.testing.assert_array_equal(s0.clean_audio, r0.audio)
    assert not np.array_equal(s0.audio, r0.audio)
    batch = collate([s0, s1])
    assert batch.clean_audio is not None and batch.audio is not None
    assert batch.clean_audio.shape == batch.audio.shape
    assert torch.equal(batch.clean_audio[1, : r1.n_audio], torch.from_numpy(r1.audio))  # type: ignore[arg-type]
    # a row without noise carries its audio as the clean one; no noise at all: none
    mixed = collate([r0, s1])
    assert mixed.clean_audio is not None and torch.equal(mixed.clean_audio[0], mixed.audio[0])  # type: ignore[index]
    assert r0.clean_audio is None and collate([r0, r1]).clean_audio is None
    # evaluation noise is the input itself, not augmentation: nothing kept
    ev = AVDataset(data, noisy_cfg, train=False, eval_noise=("babble", 0.0, 1), keep_clean_audio=True)
    assert ev[0].clean_audio is None
    # not asked for (no model reads it): the same noisy rows, no copy kept
    plain = AVDataset(data, noisy_cfg, train=True)
    p0 = plain[0]
    assert p0.clean_audio is None and collate([p0, plain[1]]).clean_audio is None
    np.testing.assert_array_equal(p0.audio, s0.audio)  # type: ignore[arg-type]


def test_modalities_and_errors(data: Path, tmp_path: Path) -> None:
    a = AVDataset(data, DataConfig(modalities="a"), labels=data.with_suffix(".km"))
    b = collate([a[0], a[1]])
    assert (
        b.video is None
        and b.audio is not None
        and b.video_lens.tolist() == [a.rows[0].n_video_frames, a.rows[1].n_video_frames]
    )
    v = AVDataset(data, DataConfig(modalities="v"))
    b = collate([v[0]])
    assert b.audio is None and b.video is not None and b.audio_lens[0] == v.rows[0].n_audio_samples
    bad = tmp_path / "bad.km"
    bad.write_text("1 2\n")
    with pytest.raises(UserError, match="label lines"):
        AVDataset(data, labels=bad)
    with pytest.raises(UserError, match="crop_size"):
        AVDataset(data, DataConfig(image_size=40, crop_size=44))
    empty = tmp_path / "empty.tsv"
    empty.write_text(str(tmp_path) + "\n")
    with pytest.raises(UserError, match="no rows"):
        AVDataset(empty)


def test_config_loads_from_yaml(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("crop_size: 44\nnoise_snr_range: [-5, 5]\nmodalities: a\n")
    cfg = load_config(DataConfig, p, ["max_frames_per_batch=200"])
    assert (
        cfg.crop_size == 44
        and cfg.noise_snr_range == (-5.0, 5.0)
        and cfg.max_frames_per_batch == 200
    )


def test_sampler_bounds_determinism_sharding_resume() -> None:
    lengths = np.random.default_rng(0).integers(5, 60, size=103)
    s = LengthBatchSampler(lengths, max_frames_per_batch=200, seed=4)
    s.set_epoch(3)
    batches = [list(b) for b in s]
    for b in batches:
        assert max(lengths[i] for i, _ in b) * len(b) <= 200 and all(e == 3 for _, e in b)
    assert sorted(i for b in batches for i, _ in b) == list(range(103))  # one rank: nothing dropped
    s2 = LengthBatchSampler(lengths, max_frames_per_batch=200, seed=4)
    s2.set_epoch(3)
    assert [list(b) for b in s2] == batches
    s2.set_epoch(4)
    assert [list(b) for b in s2] != batches
    # two ranks: disjoint, equal counts, union = first 2*k batches
    r0 = LengthBatchSampler(lengths, max_frames_per_batch=200, seed=4, rank=0, world_size=2)
    r1 = LengthBatchSampler(lengths, max_frames_per_batch=200, seed=4, rank=1, world_size=2)
    r0.set_epoch(3)
    r1.set_epoch(3)
    b0, b1 = list(r0), list(r1)
    assert len(b0) == len(b1) == len(batches) // 2
    assert {i for b in b0 for i, _ in b}.isdisjoint({i for b in b1 for i, _ in b})
    # resume position: state -> new sampler continues with the same batches
    s.set_epoch(3, position=5)
    state = s.state_dict()
    s3 = LengthBatchSampler(lengths, max_frames_per_batch=200, seed=4)
    s3.load_state_dict(state)
    assert [list(b) for b in s3] == batches[5:] and len(s3) == len(batches) - 5
    with pytest.raises(ValueError, match="seed"):
        LengthBatchSampler(lengths, max_frames_per_batch=200, seed=5).load_state_dict(state)
    # max_batch_size and a clip longer than the bound
    s4 = LengthBatchSampler(
        [500, 1, 1, 1, 1], max_frames_per_batch=100, max_batch_size=2, shuffle=False
    )
    assert [[i for i, _ in b] for b in s4] == [[1, 2], [3, 4], [0]]


def test_dataloader_workers_do_not_change_results(data: Path) -> None:
    cfg = DataConfig(
        max_crop_seconds=0.6,
        crop_size=44,
        image_size=48,
        max_frames_per_batch=40,
        noise_dir=str(data.parent / "noise"),
        noise_prob=0.5,
        noise_snr_range=(-5.0, 5.0),
    )
    ds = AVDataset(data, cfg, train=True, labels=data.with_suffix(".km"))
    out = []
    for workers in (0, 2):
        sampler = make_batch_sampler(ds)
        sampler.set_epoch(1)
        out.append(list(make_dataloader(ds, sampler, num_workers=workers)))
    assert len(out[0]) == len(out[1]) >= 2
    for x, y in zip(*out):
        assert x.ids == y.ids
        torch.testing.assert_close(x.audio, y.audio, rtol=0, atol=0)
        torch.testing.assert_close(x.video, y.video, rtol=0, atol=0)
        torch.testing.assert_close(x.units, y.units, rtol=0, atol=0)


def test_unit_count_mismatch_warns_once_and_is_fitted(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = data.with_suffix(".km").read_text().splitlines()
    lines[0] = " ".join(lines[0].split()[:-5])  # 5 frames short: more than the 1-2 frame slack
    km = tmp_path / "train.km"
    km.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        ds = AVDataset(data, labels=km)
        s = ds[0]
    assert s.units is not None and len(s.units) == cnn_frames(s.n_audio)
    assert sum("off by more than 2" in r.getMessage() for r in caplog.records) == 1


def test_noise_starts_at_the_configured_epoch(data: Path) -> None:
    noisy = DataConfig(noise_dir=str(data.parent / "noise"), noise_prob=1.0, noise_start_epoch=2, max_crop_seconds=None)
    clean = DataConfig(max_crop_seconds=None, hflip_prob=0.0)
    ds = AVDataset(data, dataclasses.replace(noisy, hflip_prob=0.0), train=True)
    ref = AVDataset(data, clean, train=True)
    for epoch in (0, 1):  # clean warm-up: exactly the clean audio
        assert np.array_equal(ds[(0, epoch)].audio, ref[(0, epoch)].audio)
    for epoch in (2, 3):
        assert not np.allclose(ds[(0, epoch)].audio, ref[(0, epoch)].audio)
