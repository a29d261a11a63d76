"""Streaming preprocessing of a long video: mouth ROIs chunk by chunk, only where there is speech.

The audio is decoded whole (16 kHz mono: 115 MB of float32 for 30 minutes) and cut
into speech segments first; consecutive segments are grouped into chunks of at most
``chunk_s`` seconds, cut between segments (in non-speech). The video is then decoded
once, front to back, at 25 fps (:func:`preprocessing.video_io.iter_resampled`): the
face mesh runs only on the frames of a chunk, whose grayscale frames are kept until
the chunk ends; its landmarks are filled, smoothed and turned into 96x96 mouth ROIs
exactly as :func:`preprocessing.pipeline.process_clip` does (same functions, without
writing and re-reading an x264 ROI video), the chunk is handed over for decoding, and
its frames are dropped. Memory therefore depends on ``chunk_s`` and the frame size,
not on the length of the video. Decoding stops after the last chunk.

The face mesh follows the largest face; each chunk starts tracking afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from avsr.inference import SAMPLES_PER_FRAME, MediaInput
from preprocessing.align import fill_missing, roi_matrices, smooth, warp_roi
from preprocessing.audio import align_to_video, decode_audio
from preprocessing.clip import Clip, PreprocessConfig
from preprocessing.damage import DamageStats
from preprocessing.landmarks import LandmarkSource
from preprocessing.pipeline import default_source_factory, detect_on, upright_size
from preprocessing.video_io import (
    ResampleStats,
    fit_size,
    frame_to_array,
    iter_resampled,
    iter_source_frames,
)


def plan_chunks(bounds: list[tuple[int, int]], max_frames: int) -> list[tuple[int, int]]:
    """(first, last + 1) indices into ``bounds`` (ordered [start, end) frame ranges) of the
    chunks: consecutive segments while the chunk spans at most ``max_frames`` frames."""
    chunks: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(bounds) + 1):
        if i == len(bounds) or bounds[i][1] - bounds[first][0] > max_frames:
            chunks.append((first, i))
            first = i
    return chunks if bounds else []


@dataclass
class ChunkFrames:
    """The frames of one chunk, [start, end) output frames at 25 fps."""

    start: int
    """First output frame of the chunk."""
    end: int
    """One past the last output frame of the chunk (fewer frames when the video ends)."""
    gray: list[np.ndarray] = field(default_factory=list)
    """Grayscale frames (H, W) uint8 at ``store_max_side``."""
    track: list[np.ndarray] = field(default_factory=list)
    """(N, 2) landmarks per frame in stored-frame pixels, NaN where no face / not run."""
    evaluated: list[bool] = field(default_factory=list)
    """Whether the landmark source ran on (the source frame of) each frame."""

    def face(self) -> np.ndarray:
        """(T,) bool: a face was found on frame t (frames the source skipped take the answer
        of the last frame it ran on)."""
        found = np.array([not np.isnan(p).any() for p in self.track], dtype=bool)
        ran = np.asarray(self.evaluated, dtype=bool)
        last = np.maximum.accumulate(np.where(ran, np.arange(len(found)), 0))
        return found[last] if len(found) else found

    def rois(self, cfg: PreprocessConfig, source: LandmarkSource) -> np.ndarray | None:
        """(T, crop, crop) uint8 mouth ROIs, or None when no frame has a face."""
        track = np.stack(self.track) if self.track else np.zeros((0, source.scheme.n_points, 2))
        if not len(track) or np.isnan(track).any(axis=(1, 2)).all():
            return None
        filled, _ = fill_missing(track)
        mats = roi_matrices(smooth(filled, cfg.smooth_window), source.scheme, cfg.crop)
        return np.stack([warp_roi(g, m, cfg.crop) for g, m in zip(self.gray, mats)])


def iter_chunks(
    video: str,
    ranges: list[tuple[int, int]],
    cfg: PreprocessConfig,
    stats: ResampleStats,
) -> Iterator[tuple[ChunkFrames, np.ndarray | None]]:
    """(frames with landmarks, ROIs or None) of each [start, end) frame range of ``ranges``
    (ordered, not overlapping), decoding ``video`` once up to the end of the last range."""
    if not ranges:
        return
    source = default_source_factory(Clip(id="longform", video=video), cfg)
    stride = max(1, cfg.landmark_stride)
    with source:
        k = 0
        cur = ChunkFrames(*ranges[0])
        last_src, pts = -1, None
        for rf in iter_resampled(video, cfg.fps, stats):
            if rf.out_index < cur.start:
                continue
            sf = rf.src
            if sf.index != last_src:
                last_src, pts = sf.index, None
                full = upright_size(sf)
                store = fit_size(full[0], full[1], cfg.store_max_side)
                gray = np.ascontiguousarray(frame_to_array(sf, "gray", cfg.store_max_side))
            if pts is None and rf.out_index % stride == 0:
                found = detect_on(source, sf, None, full, store)
                pts = found if found is not None else np.full((source.scheme.n_points, 2), np.nan)
            cur.gray.append(gray)
            cur.track.append(pts if pts is not None else np.full((source.scheme.n_points, 2), np.nan))
            cur.evaluated.append(pts is not None)
            if rf.out_index + 1 >= cur.end:
                yield cur, cur.rois(cfg, source)
                k += 1
                if k == len(ranges):
                    return
                cur = ChunkFrames(*ranges[k])
        # the video ended early: the frames it had, then the chunks after its end
        yield cur, cur.rois(cfg, source)
        for r in ranges[k + 1 :]:
            yield ChunkFrames(*r), None


def first_frame_time(video: str) -> float:
    """Presentation time (s) of the first decoded video frame (0 when there is none)."""
    frames = iter_source_frames(video, threads=1)
    try:
        first = next(frames, None)
        return first.time if first is not None else 0.0
    finally:
        frames.close()


@dataclass
class StreamedAudio:
    """The audio of a video, aligned to its first frame, as 16 kHz float32."""

    samples: np.ndarray
    """(S,) float32 in [-1, 1]; sample 0 is at the first video frame."""
    damage: DamageStats
    """Audio packets the decoder rejected (skipped, filled with silence)."""


def load_aligned_audio(video: str) -> StreamedAudio:
    """Decode a video's audio stream and align it to the first video frame (MediaError when
    it cannot be read)."""
    decoded = decode_audio(video)
    samples = align_to_video(decoded.samples, decoded.start, first_frame_time(video))
    return StreamedAudio(samples.astype(np.float32) / 32768.0, decoded.damage)


def chunk_media(
    frames: ChunkFrames, rois: np.ndarray | None, audio: np.ndarray
) -> MediaInput:
    """The chunk's ROIs, face flags and audio as one decoder input. Where the video ended
    early (the audio outlasts it, often by a frame), the last ROI is held and those frames
    are marked without a face: black frames make an AV model emit spurious tokens."""
    n = frames.end - frames.start
    face = np.zeros(n, dtype=bool)
    got = frames.face()[:n]
    face[: len(got)] = got
    video = None
    if rois is not None:
        k = min(n, len(rois))
        video = np.empty((n, *rois.shape[1:]), np.uint8)
        video[:k] = rois[:k]
        video[k:] = rois[k - 1]
    a = audio[frames.start * SAMPLES_PER_FRAME : frames.end * SAMPLES_PER_FRAME]
    return MediaInput(video=video, audio=a, warnings=[], face=face)
