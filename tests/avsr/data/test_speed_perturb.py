"""Speed perturbation: resampling accuracy, and audio / video / units kept aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsr.data import AVDataset, DataConfig, make_synthetic_av_data
from avsr.data.speed import resample_audio, resample_frames
from avsr.errors import UserError

SR = 16000


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[int(np.argmax(spec))])


@pytest.mark.parametrize("factor", [0.85, 0.9, 1.1, 1.15])
def test_audio_is_faster_and_higher_by_the_factor(factor: float) -> None:
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    out = resample_audio(tone, factor)
    assert out.dtype == np.float32 and out.shape == (round(SR / factor),)
    assert _peak_hz(out) == pytest.approx(1000.0 * factor, abs=3.0)
    assert np.abs(out).max() == pytest.approx(1.0, abs=0.02)  # no gain change


def test_factor_one_and_frames() -> None:
    x = np.random.default_rng(0).standard_normal(1234).astype(np.float32)
    assert np.array_equal(resample_audio(x, 1.0), x)
    frames = np.arange(20)
    assert resample_frames(frames, 1.0).tolist() == list(range(20))
    fast = resample_frames(frames, 1.25)
    assert len(fast) == 16 and fast[0] == 0 and np.all(np.diff(fast) >= 1)
    slow = resample_frames(frames, 0.8)
    assert len(slow) == 25 and slow[-1] == 19 and np.all(np.diff(slow) >= 0)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_av_data(tmp_path_factory.mktemp("speed"), n_clips=6, min_frames=20, max_frames=30, seed=5)


def test_dataset_keeps_streams_aligned(data: Path) -> None:
    cfg = DataConfig(speed_perturb=(0.8, 1.2), noise_prob=0.0, max_crop_seconds=None)
    plain = AVDataset(data, DataConfig(noise_prob=0.0, max_crop_seconds=None), train=True, labels=data.with_suffix(".km"))
    ds = AVDataset(data, cfg, train=True, labels=data.with_suffix(".km"))
    changed = 0
    for i in range(len(ds)):
        ref, s = plain[(i, 0)], ds[(i, 0)]
        assert s.audio is not None and s.video is not None and s.units is not None
        assert s.n_audio == s.audio.shape[0] and s.n_video == s.video.shape[0]
        factor = ref.n_audio / s.n_audio
        assert 0.8 - 1e-3 <= factor <= 1.2 + 1e-3
        # video, audio and units describe the same (shortened or stretched) time span
        assert abs(s.n_video - ref.n_video / factor) <= 1
        assert abs(s.n_audio / 640 - s.n_video) <= 1.5
        assert abs(len(s.units) - 2 * s.n_audio / 640) <= 2
        changed += abs(factor - 1.0) > 0.01
        again = ds[(i, 0)]  # deterministic per (seed, epoch, clip)
        assert np.array_equal(again.audio, s.audio) and np.array_equal(again.video, s.video)
    assert changed >= len(ds) - 1
    # evaluation data is never perturbed
    ev = AVDataset(data, cfg, train=False)
    assert ev[0].n_audio == AVDataset(data, DataConfig(), train=False)[0].n_audio


def test_bad_range_is_a_clear_error(data: Path) -> None:
    with pytest.raises(UserError, match="speed_perturb"):
        AVDataset(data, DataConfig(speed_perturb=(1.2, 0.9)), train=True)
