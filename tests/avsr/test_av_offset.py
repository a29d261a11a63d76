"""A/V offset: synthetic lips and audio with a known lag, shift_audio, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.av_offset import (
    FRAME_MS,
    MIN_CONFIDENCE,
    NATURAL_LAG_MS,
    SAMPLES_PER_FRAME,
    OffsetEstimate,
    estimate_av_offset,
    parse_av_offset,
    resolve_av_offset,
    shift_audio,
)


def _envelope(n: int, seed: int = 0) -> np.ndarray:
    """(n,) smooth syllable-like opening in [0, 1]."""
    rng = np.random.default_rng(seed)
    raw = np.convolve(rng.random(n + 4), np.ones(3) / 3, mode="valid")[:n]
    return np.clip((raw - raw.min()) / np.ptp(raw), 0.0, 1.0)


def _mouth_roi(opening: np.ndarray, size: int = 96) -> np.ndarray:
    """(T, size, size) uint8 face-grey frames with a dark mouth whose height follows ``opening``."""
    yy, xx = np.mgrid[:size, :size]
    frames = np.full((len(opening), size, size), 160, np.uint8)
    for t, o in enumerate(opening):
        half_h = 1 + 12 * o
        inside = ((yy - 0.65 * size) / half_h) ** 2 + ((xx - size / 2) / 22) ** 2 <= 1
        frames[t][inside] = 30
    return frames


def _audio(opening: np.ndarray, late_frames: int, seed: int = 1) -> np.ndarray:
    """16 kHz noise whose frame energy follows ``opening`` delayed by ``late_frames``."""
    gain = np.roll(opening, late_frames)
    noise = np.random.default_rng(seed).standard_normal(len(opening) * SAMPLES_PER_FRAME)
    return (0.3 * noise * np.repeat(0.02 + gain, SAMPLES_PER_FRAME)).astype(np.float32)


@pytest.mark.parametrize("k", [5, -3, 0])
def test_synthetic_lag_found_within_one_frame(k: int) -> None:
    opening = _envelope(200)
    est = estimate_av_offset(_audio(opening, k), _mouth_roi(opening), calibration_ms=0.0)
    assert abs(est.offset_ms - k * FRAME_MS) <= FRAME_MS
    assert est.confidence > 0.5
    assert est.curve.shape == (21,)


def test_calibration_is_subtracted() -> None:
    opening = _envelope(200)
    audio, roi = _audio(opening, 2), _mouth_roi(opening)
    raw = estimate_av_offset(audio, roi, calibration_ms=0.0)
    calibrated = estimate_av_offset(audio, roi)
    assert calibrated.offset_ms == pytest.approx(raw.offset_ms - NATURAL_LAG_MS)


def test_shift_audio_round_trip() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    late = shift_audio(audio, -200.0)
    assert late.dtype == audio.dtype and len(late) == len(audio)
    assert np.all(late[:3200] == 0) and np.array_equal(late[3200:], audio[:-3200])
    back = shift_audio(late, 200.0)
    assert np.array_equal(back[:-3200], audio[:-3200]) and np.all(back[-3200:] == 0)
    assert np.array_equal(shift_audio(audio, 0.0), audio)
    assert not shift_audio(audio, 5000.0).any()


def test_shifted_audio_is_estimated_back() -> None:
    opening = _envelope(200)
    audio, roi = _audio(opening, 0), _mouth_roi(opening)
    est = estimate_av_offset(shift_audio(audio, -120.0), roi, calibration_ms=0.0)
    assert abs(est.offset_ms - 120.0) <= FRAME_MS
    fixed = shift_audio(shift_audio(audio, -120.0), est.offset_ms)
    assert abs(estimate_av_offset(fixed, roi, calibration_ms=0.0).offset_ms) <= FRAME_MS


@pytest.mark.parametrize(
    ("audio", "roi", "reason"),
    [
        (np.zeros(16000, np.float32), _mouth_roi(_envelope(25)), "too short"),
        (np.zeros(16000 * 4, np.float32), _mouth_roi(_envelope(100)), "silent"),
        (_audio(_envelope(100), 0), np.full((100, 96, 96), 128, np.uint8), "no mouth movement"),
        (_audio(_envelope(100), 0), np.zeros((0, 96, 96), np.uint8), "no video frames"),
        (np.zeros(0, np.float32), _mouth_roi(_envelope(100)), "too short"),
    ],
)
def test_degenerate_inputs_give_zero_confidence(
    audio: np.ndarray, roi: np.ndarray, reason: str
) -> None:
    est = estimate_av_offset(audio, roi)
    assert isinstance(est, OffsetEstimate)
    assert est.offset_ms == 0.0 and est.confidence == 0.0
    assert reason in est.reason
    assert est.to_dict()["reason"] == est.reason


def test_unrelated_audio_is_not_corrected() -> None:
    roi = _mouth_roi(_envelope(200, seed=0))
    est = estimate_av_offset(_audio(_envelope(200, seed=5), 0), roi)
    assert est.confidence < MIN_CONFIDENCE
    assert est.correction_ms == 0.0


def test_confident_estimate_is_corrected_and_reported() -> None:
    opening = _envelope(200)
    est = estimate_av_offset(_audio(opening, 4), _mouth_roi(opening))
    assert est.confidence >= MIN_CONFIDENCE and est.correction_ms == est.offset_ms
    summary = est.to_dict()
    assert summary["frames"] == 200 and "reason" not in summary
    assert summary["offset_ms"] == round(est.offset_ms, 1)


def test_frames_without_a_face_are_left_out() -> None:
    opening = _envelope(250)
    roi = _mouth_roi(opening)
    face = np.ones(250, bool)
    face[100:175] = False  # a 3 s cutaway: noise instead of a mouth
    roi[~face] = np.random.default_rng(3).integers(0, 256, (75, 96, 96), dtype=np.uint8)
    est = estimate_av_offset(_audio(opening, -3), roi, calibration_ms=0.0, face=face)
    assert est.frames == 175
    assert abs(est.offset_ms + 3 * FRAME_MS) <= FRAME_MS
    assert est.confidence >= MIN_CONFIDENCE


def test_parse_and_resolve_the_av_offset_option() -> None:
    assert parse_av_offset("auto") == "auto" and parse_av_offset("-120") == -120.0
    for bad in ("soon", "nan"):
        with pytest.raises(ValueError, match="milliseconds"):
            parse_av_offset(bad)
    opening = _envelope(200)
    audio, roi = _audio(opening, 4), _mouth_roi(opening)
    assert resolve_av_offset(120.0, audio, roi) == (120.0, None)
    offset, est = resolve_av_offset("auto", audio, roi)
    assert est is not None and est.confidence >= MIN_CONFIDENCE
    assert offset == round(est.offset_ms, 1)
    assert "corrected" in est.summary() and "not" not in est.summary()
    offset, est = resolve_av_offset("auto", audio, None)
    assert offset == 0.0 and est is not None and est.reason == "no video: nothing to align"
    assert est.summary() == "not measured (no video: nothing to align): not corrected"
