"""Speed perturbation of a clip: audio, video and units resampled together.

A factor ``f > 1`` plays the clip ``f`` times faster (shorter, higher pitched), as
Kaldi/ESPnet speed perturbation does by resampling: the audio is resampled to
``round(S / f)`` samples with a polyphase anti-aliasing filter, which moves the
formants like a different vocal tract; the video (25 fps) and the 50 Hz units
follow by nearest-frame index mapping, so the three stay aligned.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample_audio(audio: np.ndarray, factor: float) -> np.ndarray:
    """(S,) float -> (round(S / factor),) float32, the clip ``factor`` times faster."""
    n = audio.shape[0]
    target = max(1, round(n / factor))
    if target == n or n < 2:
        return audio.astype(np.float32, copy=False)
    ratio = Fraction(target, n).limit_denominator(100)  # new samples per old sample
    out = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    if out.shape[0] < target:  # rounding of the rational ratio: pad/trim to the exact length
        out = np.pad(out, (0, target - out.shape[0]))
    return out[:target].astype(np.float32)


def resample_frames(frames: np.ndarray, factor: float) -> np.ndarray:
    """(T, ...) -> (max(1, round(T / factor)), ...) by nearest earlier frame (video, units)."""
    t = frames.shape[0]
    if t == 0:
        return frames
    target = max(1, round(t / factor))
    idx = np.minimum((np.arange(target) * factor).astype(np.int64), t - 1)
    return frames[idx]
