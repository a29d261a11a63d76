"""Offset between a video's lips and its audio: estimate it, and shift the audio to remove it.

The measure is a small one: the audio's log energy per video frame (16 kHz, 640 samples =
one 40 ms frame at 25 fps) is correlated with a mouth-opening signal taken from the mouth
ROI (how far the ROI's lower-middle area falls below the skin's brightness: the open mouth's
dark interior), both high-passed, over lags in one-frame steps; the best lag is refined
below one frame by parabolic interpolation around the peak.

Sign convention: ``offset_ms > 0`` means the audio is late relative to the video (a sound is
heard ``offset_ms`` after the lips make it); ``shift_audio(audio, offset_ms)`` removes such
an offset. Accuracy on the demo corpus: ``benchmarks/av_offset.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avsr.audio import SAMPLE_RATE, VIDEO_FPS

SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
"""Audio samples per video frame (640: 40 ms)."""
FRAME_MS = 1000.0 / VIDEO_FPS
"""One video frame in milliseconds (40)."""

NATURAL_LAG_MS = -38.0
"""Raw lag the measure finds on in-sync video, subtracted from every estimate.

Mouth opening trails the audio energy it goes with: on in-sync clips the correlation peaks
with the video about one frame behind the audio. Measured with ``benchmarks/av_offset.py
--split train --calibrate`` on the demo corpus's train split (312 unshifted clips of about
2.4 s, 96x96 ROI from ``avsr preprocess``): median sub-frame raw lag over the clips -38.0 ms
(mean -43.5; the correlation averaged over clips peaks at -1 frame; the valid split's 40
clips give a median of -34.8 ms).
"""

MIN_OVERLAP_FRAMES = 25
"""Fewest frames (1 s) the two signals must share at a lag for that lag to be scored."""

_HIGH_PASS_FRAMES = 13
"""Width of the moving average subtracted from both signals (about 0.5 s)."""
_ENERGY_FLOOR = 1e-4
"""Frame energies are floored at this fraction of the loudest frame's (-40 dB)."""

CHANCE_SCORE = 4.0
"""Peak correlation x sqrt(frames) that unrelated audio and video reach by chance.

A peak correlation means little on few frames. On the demo corpus's test split, audio
paired with the ROI of other clips scores a median of about 2.7 on this scale whatever the
length (2.4 to 15 s), 95th percentile 3.8 to 4.8; in-sync audio scores a median of 4.0 on
single 2.4 s clips (indistinguishable from chance: confidence 0), 6.3 on 7.4 s joins of 3
clips (5th percentile 4.7) and 9.2 on 15 s joins of 6 (5th percentile 8.4). Confidence is
0 at this score and rises linearly to 1 at ``SURE_SCORE``.
"""
SURE_SCORE = 8.0
"""Peak correlation x sqrt(frames) at which the confidence reaches 1."""
MIN_CONFIDENCE = 0.25
"""Below this confidence (a score of 5) an automatic correction is not applied."""


@dataclass(frozen=True)
class OffsetEstimate:
    """An estimated A/V offset; positive ``offset_ms`` = audio late relative to the video."""

    offset_ms: float
    """Estimated offset in milliseconds (0 when nothing could be measured)."""
    confidence: float
    """0..1: how far the peak stands above chance for this length (``CHANCE_SCORE``); 0 when
    the inputs were too short, silent or still, halved when the peak is at the range's edge."""
    curve: np.ndarray = field(repr=False)
    """(2L+1,) correlation at each one-frame lag from -L to +L frames, before calibration."""
    correlation: float = 0.0
    """Correlation at the best lag (-1..1)."""
    frames: int = 0
    """Video frames measured (audio and ROI overlap, face frames only)."""
    reason: str = ""
    """Why nothing was measured ("" when an estimate was made)."""

    @property
    def correction_ms(self) -> float:
        """The offset to correct automatically: ``offset_ms`` when ``confidence`` reaches
        ``MIN_CONFIDENCE``, else 0."""
        return self.offset_ms if self.confidence >= MIN_CONFIDENCE else 0.0

    def summary(self) -> str:
        """One line for a log: the estimate and whether it is corrected."""
        if self.reason:
            return f"not measured ({self.reason}): not corrected"
        confident = self.confidence >= MIN_CONFIDENCE
        verdict = "corrected" if confident else f"confidence below {MIN_CONFIDENCE}: not corrected"
        return f"estimated {self.offset_ms:+.0f} ms (confidence {self.confidence:.2f}): {verdict}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (offset and confidence rounded; no curve)."""
        out: dict[str, object] = {
            "offset_ms": round(self.offset_ms, 1),
            "confidence": round(self.confidence, 3),
            "correlation": round(self.correlation, 3),
            "frames": self.frames,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def audio_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n,) log energy of 16 kHz ``audio`` per 40 ms video frame, n <= ``n_frames``."""
    n = min(n_frames, len(audio) // SAMPLES_PER_FRAME)
    frames = np.asarray(audio[: n * SAMPLES_PER_FRAME], dtype=np.float32)
    frames = frames.reshape(n, SAMPLES_PER_FRAME)
    energy = np.einsum("ij,ij->i", frames, frames).astype(np.float64) / SAMPLES_PER_FRAME
    if n == 0 or energy.max() <= 0.0:
        return np.zeros(n)
    return np.log(np.maximum(energy, energy.max() * _ENERGY_FLOOR))


def mouth_opening(roi: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """(T,) mouth opening of (T, H, W) uint8 ``roi``: mean darkness of its lower-middle area.

    Darkness is how far a pixel is below the area's median brightness over all frames (the
    skin), so the open mouth's dark interior raises it whatever its size. Works through
    ``chunk`` frames at a time (a histogram for the median, a lookup table for the darkness),
    so memory stays small on long videos.
    """
    _, h, w = roi.shape
    area = roi[:, h // 3 :, w // 5 : w - w // 5]
    if area.size == 0:
        return np.zeros(len(roi))
    hist = np.zeros(256, np.int64)
    for i in range(0, len(area), chunk):
        hist += np.bincount(area[i : i + chunk].reshape(-1), minlength=256)
    median = int(np.searchsorted(np.cumsum(hist), (hist.sum() + 1) // 2))
    darkness = np.maximum(median - np.arange(256, dtype=np.float32), 0.0)
    return np.concatenate(
        [
            darkness[area[i : i + chunk]].mean(axis=(1, 2), dtype=np.float64)
            for i in range(0, len(area), chunk)
        ]
    )


def _high_pass(x: np.ndarray, width: int = _HIGH_PASS_FRAMES) -> np.ndarray:
    """``x`` minus its centred moving average (edges padded with the edge value)."""
    padded = np.pad(x, (width // 2, width // 2), mode="edge")
    return x - np.convolve(padded, np.ones(width) / width, mode="valid")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denom) if denom > 0 else 0.0


def lag_curve(
    video_sig: np.ndarray, audio_sig: np.ndarray, max_lag: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """(2L+1,) correlation of ``video_sig[t]`` with ``audio_sig[t+d]``, d = -L..L (``max_lag``).

    ``valid`` (T,) bool: video frames to use (None: all). Lags where fewer than
    ``MIN_OVERLAP_FRAMES`` usable frames overlap score NaN.
    """
    ok = np.ones(len(video_sig), bool) if valid is None else valid
    out = np.full(2 * max_lag + 1, np.nan)
    for i, d in enumerate(range(-max_lag, max_lag + 1)):
        x = video_sig[max(0, -d) :]
        y = audio_sig[max(0, d) :]
        n = min(len(x), len(y))
        keep = ok[max(0, -d) :][:n]
        if keep.sum() >= MIN_OVERLAP_FRAMES:
            out[i] = _pearson(x[:n][keep], y[:n][keep])
    return out


def _at_edge(curve: np.ndarray, i: int) -> bool:
    """Whether ``curve[i]`` lacks a scored neighbour on either side."""
    return i == 0 or i == len(curve) - 1 or bool(np.isnan(curve[i - 1]) or np.isnan(curve[i + 1]))


def _refine(curve: np.ndarray, i: int) -> float:
    """Sub-frame offset (-0.5..0.5) of the peak at ``curve[i]`` by a parabola through 3 points."""
    if _at_edge(curve, i):
        return 0.0
    a, b, c = curve[i - 1], curve[i], curve[i + 1]
    denom = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0


def _unmeasured(max_lag: int, reason: str) -> OffsetEstimate:
    return OffsetEstimate(0.0, 0.0, np.full(2 * max_lag + 1, np.nan), reason=reason)


def _confidence(peak: float, frames: int, at_edge: bool) -> float:
    """0..1 from the peak correlation's standing above chance for ``frames`` frames."""
    score = peak * np.sqrt(frames)
    conf = float(np.clip((score - CHANCE_SCORE) / (SURE_SCORE - CHANCE_SCORE), 0.0, 1.0))
    return conf * 0.5 if at_edge else conf


def estimate_av_offset(
    audio: np.ndarray,
    roi: np.ndarray,
    *,
    max_offset_ms: float = 400.0,
    calibration_ms: float = NATURAL_LAG_MS,
    face: np.ndarray | None = None,
) -> OffsetEstimate:
    """Estimate how late 16 kHz mono ``audio`` is against (T, H, W) uint8 mouth ``roi`` at 25 fps.

    Searches lags up to ``max_offset_ms`` either way; ``calibration_ms`` (the raw lag found on
    in-sync video) is subtracted. ``face`` (T,) bool: frames whose ROI shows a real mouth
    (None: all); the others (cutaways, interpolated frames) are left out. A peak at the edge
    of the search range is not refined. Too short, silent or motionless inputs give offset 0
    with confidence 0 and a ``reason``, never an exception.
    """
    max_lag = max(1, int(round(max_offset_ms / FRAME_MS)))
    if roi.ndim != 3 or len(roi) == 0:
        return _unmeasured(max_lag, "no video frames")
    env = audio_envelope(np.asarray(audio).reshape(-1), len(roi))
    n = len(env)
    valid = np.ones(n, bool) if face is None else np.asarray(face[:n], bool)
    frames = int(valid.sum())
    if frames < MIN_OVERLAP_FRAMES + 1:
        return _unmeasured(max_lag, f"too short ({frames} frames; need {MIN_OVERLAP_FRAMES + 1})")
    if np.ptp(env) == 0.0:
        return _unmeasured(max_lag, "silent audio")
    mouth = mouth_opening(roi[:n][valid])
    if np.ptp(mouth) == 0.0:
        return _unmeasured(max_lag, "no mouth movement")
    curve = lag_curve(_high_pass(_spread(mouth, valid)), _high_pass(env), max_lag, valid)
    if np.all(np.isnan(curve)):
        return _unmeasured(max_lag, "too short for the lag range")
    i = int(np.nanargmax(curve))
    lag = i - max_lag + _refine(curve, i)
    peak = float(curve[i])
    return OffsetEstimate(
        offset_ms=lag * FRAME_MS - calibration_ms,
        confidence=_confidence(peak, frames, _at_edge(curve, i)),
        curve=curve,
        correlation=peak,
        frames=frames,
    )


def _spread(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T,) ``values`` of the valid frames put back in place; the others get their mean."""
    out = np.full(len(valid), values.mean())
    out[valid] = values
    return out


def shift_audio(audio: np.ndarray, offset_ms: float) -> np.ndarray:
    """Remove an offset of ``offset_ms`` from 16 kHz ``audio``; same length and dtype.

    Positive (audio late): the first ``offset_ms`` are dropped and silence is appended at
    the end. Negative (audio early): silence is prepended and the end trimmed. So
    ``shift_audio(a, -d)`` makes ``a`` ``d`` ms late, and ``shift_audio(a, e.offset_ms)``
    with ``e = estimate_av_offset(a, roi)`` gives audio in sync with ``roi``.
    """
    k = int(round(offset_ms * SAMPLE_RATE / 1000.0))
    out = np.zeros_like(audio)
    if abs(k) >= len(audio):
        return out
    if k >= 0:
        out[: len(audio) - k] = audio[k:]
    else:
        out[-k:] = audio[: len(audio) + k]
    return out


def parse_av_offset(text: str) -> float | str:
    """``auto`` or a number of milliseconds (``--av-offset``); ValueError otherwise."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected 'auto' or milliseconds, got {text!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"expected a finite number of milliseconds, got {text!r}")
    return value


def resolve_av_offset(
    spec: float | str,
    audio: np.ndarray | None,
    roi: np.ndarray | None,
    face: np.ndarray | None = None,
) -> tuple[float, OffsetEstimate | None]:
    """(offset in ms to correct, to 0.1 ms; the estimate or None) for ``spec``: ms, or ``auto``.

    ``auto``: estimated from ``audio`` and ``roi`` (frames outside ``face`` left out) and
    corrected only when confident (:attr:`OffsetEstimate.correction_ms`); without audio or
    video nothing is corrected and the estimate says why.
    """
    if spec != "auto":
        return float(spec), None
    if audio is None or roi is None:
        missing = "audio" if audio is None else "video"
        return 0.0, _unmeasured(1, f"no {missing}: nothing to align")
    est = estimate_av_offset(audio, roi, face=face)
    return round(est.correction_ms, 1), est
