"""Speech segments of a long recording: voice-activity detection (silero-vad), padding and
a maximum length.

:func:`speech_segments` turns 16 kHz mono audio into ``[start, end)`` sample ranges:

1. silero-vad (its model ships in the ``silero-vad`` wheel: no download) finds the speech
   regions; a pause of at least ``min_pause_s`` ends a region;
2. each region is padded by ``pad_s`` on both sides (so no word is lost at a cut), and
   regions that then overlap are merged;
3. a region longer than ``max_s`` is split at its quietest 40 ms frame (lowest RMS energy)
   in the window that keeps both parts at least ``max_s / 4`` long, recursively.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from avsr.audio import SAMPLE_RATE, VIDEO_FPS
from avsr.errors import UserError

SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
_ENERGY_HOP = SAMPLES_PER_FRAME  # 40 ms: one video frame
_VAD_MODEL: Any = None


@dataclass(frozen=True)
class SegmentingConfig:
    """How :func:`speech_segments` cuts audio into speech segments."""

    max_s: float = 20.0  # Longest segment (s); longer speech is split at its quietest point.
    pad_s: float = 0.2  # Silence kept on each side of a speech region (s), so no word is cut.
    min_pause_s: float = 0.3  # Shortest pause that ends a speech region (s).
    min_speech_s: float = 0.25  # Shorter speech regions are dropped (s).
    threshold: float = 0.5  # silero-vad speech probability threshold.


Detector = Callable[[np.ndarray, SegmentingConfig], list[tuple[int, int]]]


def silero_regions(audio: np.ndarray, cfg: SegmentingConfig) -> list[tuple[int, int]]:
    """[start, end) sample ranges of speech in 16 kHz mono ``audio`` (S,) by silero-vad."""
    global _VAD_MODEL
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    if _VAD_MODEL is None:
        _VAD_MODEL = load_silero_vad()
    with torch.no_grad():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            _VAD_MODEL,
            sampling_rate=SAMPLE_RATE,
            threshold=cfg.threshold,
            min_speech_duration_ms=int(cfg.min_speech_s * 1000),
            min_silence_duration_ms=int(cfg.min_pause_s * 1000),
            speech_pad_ms=0,
        )
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def pad_and_merge(
    regions: list[tuple[int, int]], pad: int, n_samples: int
) -> list[tuple[int, int]]:
    """Regions widened by ``pad`` samples each side (clipped to the audio), overlaps merged."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(regions):
        s, e = max(0, s - pad), min(n_samples, e + pad)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        elif e > s:
            out.append((s, e))
    return out


def split_long(
    audio: np.ndarray, region: tuple[int, int], max_len: int
) -> list[tuple[int, int]]:
    """``region`` cut at its quietest 40 ms frames until no part is longer than ``max_len``."""
    s, e = region
    if e - s <= max_len:
        return [region]
    lo, hi = s + max_len // 4, min(e - max_len // 4, s + max_len)
    if hi - lo < _ENERGY_HOP:
        cut = s + max_len
    else:
        n = (hi - lo) // _ENERGY_HOP
        frames = audio[lo : lo + n * _ENERGY_HOP].reshape(n, _ENERGY_HOP).astype(np.float64)
        cut = lo + int(np.argmin((frames**2).mean(axis=1))) * _ENERGY_HOP + _ENERGY_HOP // 2
    return [*split_long(audio, (s, cut), max_len), *split_long(audio, (cut, e), max_len)]


def speech_segments(
    audio: np.ndarray, cfg: SegmentingConfig | None = None, detector: Detector | None = None
) -> list[tuple[int, int]]:
    """[start, end) sample ranges of padded speech segments of 16 kHz ``audio`` (S,), in order,
    none longer than ``cfg.max_s`` (``detector``: the VAD, default :func:`silero_regions`).
    Media no longer than ``cfg.max_s`` with one speech region is one segment, the whole of it."""
    cfg = cfg or SegmentingConfig()
    if not cfg.max_s > 0 or not np.isfinite(cfg.max_s):
        raise UserError(f"maximum segment length must be a positive number of seconds, got {cfg.max_s}")
    regions = (detector or silero_regions)(audio, cfg)
    max_len = max(_ENERGY_HOP, int(cfg.max_s * SAMPLE_RATE))
    if len(regions) == 1 and len(audio) <= max_len:
        return [(0, len(audio))]  # one utterance in short media: nothing to cut, trimming could clip words
    padded = pad_and_merge(regions, int(cfg.pad_s * SAMPLE_RATE), len(audio))
    return [part for r in padded for part in split_long(audio, r, max_len)]


MIN_FACE_SHARE = 0.5
"""A segment whose face was found on fewer of its frames than this is decoded audio-only."""


def frame_ranges(ranges: list[tuple[int, int]], n_frames: int) -> list[tuple[int, int]]:
    """[start, end) video-frame ranges (25 fps) covering sample ranges, within ``n_frames``."""
    out = []
    for s, e in ranges:
        f0, f1 = s // SAMPLES_PER_FRAME, min(n_frames, -(-e // SAMPLES_PER_FRAME))
        if f1 > f0:
            out.append((f0, f1))
    return out


def segment_modalities(
    bounds: list[tuple[int, int]], face: np.ndarray | None, modality: str
) -> list[str]:
    """Modality per segment: ``a`` for an ``av`` segment whose face (``face`` (T,) bool per
    frame) is found on fewer than :data:`MIN_FACE_SHARE` of its frames, else ``modality``."""
    if modality != "av" or face is None:
        return [modality] * len(bounds)
    return [
        "a" if f1 > f0 and float(face[f0:f1].mean()) < MIN_FACE_SHARE else modality
        for f0, f1 in bounds
    ]
