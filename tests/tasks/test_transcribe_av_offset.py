"""``--av-offset auto|MS``: parsing; the automatic estimate applied and reported by the decoder."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from avsr.audio import SAMPLE_RATE
from avsr.av_offset import SAMPLES_PER_FRAME
from avsr.inference import MediaInput, WindowDecoder
from tasks.transcribe import add_arguments


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["v.mp4", *argv])


def test_av_offset_option_takes_auto_or_milliseconds() -> None:
    assert _parse().av_offset == 0.0
    assert _parse("--av-offset", "auto").av_offset == "auto"
    assert _parse("--av-offset", "-120").av_offset == -120.0
    with pytest.raises(SystemExit):
        _parse("--av-offset", "soon")


def _talking(n: int, late_frames: int) -> MediaInput:
    """(n,) frames of a mouth opening and closing at random, audio energy following it late."""
    rng = np.random.default_rng(0)
    opening = np.convolve(rng.random(n + 4), np.ones(3) / 3, mode="valid")[:n]
    opening = (opening - opening.min()) / np.ptp(opening)
    yy, xx = np.mgrid[:96, :96]
    roi = np.full((n, 96, 96), 160, np.uint8)
    for t, o in enumerate(opening):
        roi[t][((yy - 62) / (1 + 12 * o)) ** 2 + ((xx - 48) / 22) ** 2 <= 1] = 30
    gain = np.repeat(0.02 + np.roll(opening, late_frames), SAMPLES_PER_FRAME)
    audio = (0.3 * rng.standard_normal(n * SAMPLES_PER_FRAME) * gain).astype(np.float32)
    return MediaInput(video=roi, audio=audio, warnings=[], face=np.ones(n, bool))


def test_auto_offset_is_estimated_corrected_and_reported(tiny_finetuned_dir: Path) -> None:
    decoder = WindowDecoder(tiny_finetuned_dir, device="cpu")
    media = _talking(200, 5)
    auto = decoder.decode_media(media, "talk", segment="fixed", av_offset_ms="auto")
    est = auto.to_dict()["av_offset_estimate"]
    assert est is not None and est["confidence"] > 0.25 and est["frames"] == 200
    assert auto.av_offset_ms == est["offset_ms"]
    assert 120 <= auto.av_offset_ms <= 280  # 5 frames = 200 ms, calibrated for real lips
    given = decoder.decode_media(media, "talk", segment="fixed", av_offset_ms=120.0)
    assert given.av_offset_ms == 120.0 and given.to_dict()["av_offset_estimate"] is None
    silent = MediaInput(video=media.video, audio=np.zeros(4 * SAMPLE_RATE, np.float32), warnings=[])
    quiet = decoder.decode_media(silent, "quiet", segment="fixed", av_offset_ms="auto")
    assert quiet.av_offset_ms == 0.0
    assert quiet.av_offset_estimate == {
        "offset_ms": 0.0,
        "confidence": 0.0,
        "correlation": 0.0,
        "frames": 0,
        "reason": "silent audio",
    }
