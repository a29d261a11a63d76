"""Noise mixing: SNR accuracy, tiling/cutting, clipping, silence, determinism, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.errors import UserError
from avsr.noise import (
    NoiseBank,
    fit_length,
    measure_snr,
    mix_at_snr,
    mix_components,
    parse_categories,
    parse_snrs,
    rms,
    stable_hash,
)


def _speech(n: int, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (amp * env * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n)).astype(
        np.float32
    )


@pytest.mark.parametrize("noise_len", [3000, 16000, 50000])  # tiled, equal, cut
@pytest.mark.parametrize("snr", [-10.0, -5.0, 0.0, 5.0, 10.0])
def test_measured_snr_matches_target(noise_len: int, snr: float) -> None:
    clean = _speech(16000)
    noise = np.random.default_rng(1).standard_normal(noise_len).astype(np.float32) * 0.3
    mixed = mix_at_snr(clean, noise, snr, offset=123)
    assert mixed.shape == clean.shape and mixed.dtype == np.float32
    speech_part, noise_part = mix_components(clean, noise, snr, offset=123)
    np.testing.assert_allclose(speech_part + noise_part, mixed, atol=1e-7)
    assert abs(measure_snr(speech_part, noise_part) - snr) < 0.1
    if np.max(np.abs(clean + noise_part)) <= 1.0:  # no clip rescale: the speech is untouched
        assert abs(measure_snr(clean, mixed - clean) - snr) < 0.1


def test_tiling_and_cut_from_offset() -> None:
    noise = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(
        fit_length(noise, 25, 0)[:12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    )
    np.testing.assert_array_equal(fit_length(noise, 4, 3), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(noise, 4, 8), [8, 9, 0, 1])


def test_clipping_rescales_mix_and_keeps_snr() -> None:
    clean = _speech(8000, amp=0.9)
    noise = np.random.default_rng(2).standard_normal(8000).astype(np.float32)
    mixed = mix_at_snr(clean, noise, -5.0)
    assert np.max(np.abs(mixed)) <= 1.0
    s, n = mix_components(clean, noise, -5.0)
    assert abs(measure_snr(s, n) - (-5.0)) < 0.1


def test_silence_gives_no_nan() -> None:
    zeros = np.zeros(1000, dtype=np.float32)
    noise = np.ones(500, dtype=np.float32)
    out = mix_at_snr(zeros, noise, 0.0)
    assert np.all(np.isfinite(out)) and np.all(out == 0)
    clean = _speech(1000)
    out = mix_at_snr(clean, np.zeros(10, dtype=np.float32), 0.0)
    np.testing.assert_array_equal(out, clean)
    assert mix_at_snr(np.zeros(0, dtype=np.float32), noise, 0.0).size == 0
    assert rms(np.zeros(0)) == 0.0
    assert measure_snr(clean, zeros) == math.inf


def test_int16_input() -> None:
    clean = (_speech(4000) * 32767).astype(np.int16)
    noise = (np.random.default_rng(0).standard_normal(4000) * 3000).astype(np.int16)
    mixed = mix_at_snr(clean, noise, 0.0)
    assert mixed.dtype == np.float32 and np.max(np.abs(mixed)) <= 1.0


def test_parse_snrs() -> None:
    assert parse_snrs("clean,-10,-5,0") == [None, -10.0, -5.0, 0.0]
    assert parse_snrs(" 5 , 7.5") == [5.0, 7.5]
    for bad in ["", "clean,,0", "clean,abc", "0,0", "nan"]:
        with pytest.raises(UserError):
            parse_snrs(bad)
    assert parse_categories("babble,music") == ["babble", "music"]
    with pytest.raises(UserError, match="unknown noise type 'jazz'"):
        parse_categories("babble,jazz")


def _bank(tmp_path: Path) -> Path:
    root = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for cat, n_files in [("babble", 2), ("music", 3)]:
        (root / cat).mkdir(parents=True)
        for i in range(n_files):
            sf.write(
                root / cat / f"{cat}{i}.wav", rng.standard_normal(4000 + 1000 * i) * 0.1, 16000
            )
    (root / "noise").mkdir()  # present but empty
    # 8 kHz stereo file: resampled + downmixed on load
    (root / "speech").mkdir()
    sf.write(root / "speech" / "s0.wav", rng.standard_normal((800, 2)) * 0.1, 8000)
    (root / "music" / "train.tsv").write_text(
        "music/music0.wav\n" + str(root / "music" / "music2.wav") + "\n"
    )
    return root


def test_noise_bank_deterministic_and_errors(tmp_path: Path) -> None:
    root = _bank(tmp_path)
    bank = NoiseBank(root)
    assert bank.categories == ["babble", "music", "speech"]
    a = bank.for_clip("clip_001", "music", 6000, seed=0)
    b = NoiseBank(root).for_clip("clip_001", "music", 6000, seed=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6000,)
    # different clip ids / seeds choose differently (at least one differs among several)
    others = [bank.for_clip(f"clip_{i:03d}", "music", 6000, seed=0) for i in range(2, 8)]
    assert any(not np.array_equal(a, o) for o in others)
    seeds = [bank.for_clip("clip_001", "music", 2000, seed=s) for s in range(6)]
    assert any(not np.array_equal(seeds[0], o) for o in seeds[1:])
    assert stable_hash("x", 1) == stable_hash("x", 1) != stable_hash("x", 2)
    # resample + downmix
    assert bank.load(bank.files("speech")[0]).shape == (1600,)
    # training draws follow the generator
    x1 = bank.augment(_speech(3000), np.random.default_rng(5), snr_range=(0.0, 5.0))
    x2 = bank.augment(_speech(3000), np.random.default_rng(5), snr_range=(0.0, 5.0))
    np.testing.assert_array_equal(x1, x2)
    with pytest.raises(UserError, match="'noise'") as err:
        bank.for_clip("c", "noise", 100, seed=0)
    assert str(root / "noise") in str(err.value)
    with pytest.raises(UserError, match="'missing'"):
        bank.files("missing")
    # split list restricts the files
    assert [p.name for p in NoiseBank(root, split="train").files("music")] == [
        "music0.wav",
        "music2.wav",
    ]
    mixed = bank.mix_for_clip(_speech(5000), "clip_9", "babble", 0.0, seed=3)
    noise = bank.for_clip("clip_9", "babble", 5000, seed=3)
    assert abs(measure_snr(_speech(5000), mixed - _speech(5000)) - 0.0) < 0.1
    np.testing.assert_allclose(mixed, mix_at_snr(_speech(5000), noise, 0.0))
    np.testing.assert_array_equal(
        bank.mix_for_clip(_speech(100), "c", "babble", None, 0), _speech(100)
    )


def test_noise_bank_bad_list(tmp_path: Path) -> None:
    root = _bank(tmp_path)
    (root / "babble" / "valid.tsv").write_text("does/not/exist.wav\n")
    with pytest.raises(UserError, match="valid.tsv:1"):
        NoiseBank(root, split="valid")
    with pytest.raises(UserError, match="not found"):
        NoiseBank(tmp_path / "nope")
