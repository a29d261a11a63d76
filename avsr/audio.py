"""The pipeline's media rates (16 kHz mono audio, 25 fps video) and its one wav reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from avsr.errors import UserError

SAMPLE_RATE = 16000
"""Audio sample rate of every stage (Hz)."""
VIDEO_FPS = 25
"""Frame rate of the preprocessed mouth-ROI video (frames per second)."""


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono samples in [-1, 1] at ``sample_rate`` (downmixed/resampled if needed).

    Raises UserError when the file cannot be read.
    """
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise UserError(f"{path}: cannot read audio: {exc}") from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    return np.ascontiguousarray(mono, dtype=np.float32)
