"""The pipeline's media rates (16 kHz mono audio, 25 fps video) and its one wav reader."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from avsr.errors import UserError
from avsr.logging_utils import get_logger

log = get_logger(__name__)

SAMPLE_RATE = 16000
"""Audio sample rate of every stage (Hz)."""
VIDEO_FPS = 25
"""Frame rate of the preprocessed mouth-ROI video (frames per second)."""

NOTICE_LIMIT = 1000
"""Files named in a resampling notice per process; past it conversions are only counted."""
_noticed: set[str] = set()
_conversions: Counter[tuple[int, int]] = Counter()


def note_conversion(
    path: str | Path, source_rate: int, channels: int, sample_rate: int = SAMPLE_RATE
) -> None:
    """Say that ``path`` (``source_rate`` Hz, ``channels`` channels) is resampled/downmixed.

    Logged once per file (the first :data:`NOTICE_LIMIT` files of the process) and counted
    per (source rate, channels) in :func:`conversion_counts`; nothing when the audio is
    already ``sample_rate`` mono.
    """
    if int(source_rate) == int(sample_rate) and int(channels) == 1:
        return
    key = str(path)
    if key in _noticed:
        return
    _conversions[(int(source_rate), int(channels))] += 1
    if len(_noticed) >= NOTICE_LIMIT:
        return
    _noticed.add(key)
    done = "resampled" if int(source_rate) != int(sample_rate) else "downmixed"
    log.info(
        "%s: %d Hz, %d channel(s): %s to %d Hz mono", key, source_rate, channels, done, sample_rate
    )
    if len(_noticed) == NOTICE_LIMIT:
        log.info("further resampled audio files are counted, not named (conversion_counts())")


def conversion_counts() -> dict[tuple[int, int], int]:
    """(source rate, channels) -> audio files resampled or downmixed in this process so far."""
    return dict(_conversions)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono samples in [-1, 1] at ``sample_rate`` (downmixed/resampled if needed).

    Raises UserError when the file cannot be read.
    """
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise UserError(f"{path}: cannot read audio: {exc}") from exc
    note_conversion(path, sr, data.shape[1], sample_rate)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    return np.ascontiguousarray(mono, dtype=np.float32)
