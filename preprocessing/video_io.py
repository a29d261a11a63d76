"""Video decoding at a fixed output rate (by timestamp), rotation, and ROI video writing (PyAV).

Output frame ``k`` shows the source frame on screen at time ``t0 + k / fps``
(the last frame whose timestamp is <= that time), where ``t0`` is the first
frame's timestamp. The clip lasts from ``t0`` to the end of the last source frame
(its duration, else the median frame interval), so the output has
``round(duration * fps)`` frames whatever the source rate, constant or variable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from avsr.audio import VIDEO_FPS
from preprocessing.damage import DamageStats, decode_packet, packet_span


class MediaError(Exception):
    """A clip cannot be processed; ``reason`` is a short code for the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """What the container says about a video (before decoding).

    width/height are the coded size; rotation is the counter-clockwise angle in
    degrees (multiple of 90) that turns coded frames upright for display.
    """

    width: int
    """Coded width in pixels."""
    height: int
    """Coded height in pixels."""
    rotation: int
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270)."""
    fps: float | None
    """Declared average frame rate (None: unknown)."""
    n_frames: int | None
    """Declared frame count (None: unknown)."""
    duration: float | None
    """Declared duration in seconds (None: unknown)."""
    has_audio: bool
    """Whether the container has an audio stream."""
    codec: str
    """Video codec name."""


def open_container(path: str | Path) -> Any:
    """av.open with every failure mapped to MediaError('unreadable', ...)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError("missing", f"{path}: file not found")
    if path.stat().st_size == 0:
        raise MediaError("unreadable", f"{path}: empty file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError("unreadable", f"{path}: not a readable media file ({exc})") from exc


def _rotation_of_stream(stream: Any) -> int:
    """Rotation from the stream's 'rotate' tag (old muxers); 0 if none."""
    tag = stream.metadata.get("rotate") if stream.metadata else None
    if tag is None:
        return 0
    try:
        # the legacy tag is the clockwise angle; convert to counter-clockwise
        return normalise_rotation(-int(float(tag)))
    except ValueError:
        return 0


def normalise_rotation(deg: float) -> int:
    """Round to a multiple of 90 in {0, 90, 180, 270}."""
    return int(round(deg / 90.0)) % 4 * 90


def probe(path: str | Path) -> VideoInfo:
    container = open_container(path)
    try:
        if not container.streams.video:
            raise MediaError("no_video_stream", f"{path}: no video stream")
        v = container.streams.video[0]
        rate = v.average_rate or v.guessed_rate or v.base_rate
        duration = None  # the video stream's own duration (not the container's, which covers audio)
        if v.duration is not None and v.time_base is not None:
            duration = float(v.duration * v.time_base)
        return VideoInfo(
            width=v.codec_context.width,
            height=v.codec_context.height,
            rotation=_rotation_of_stream(v),
            fps=float(rate) if rate else None,
            n_frames=v.frames or None,
            duration=duration,
            has_audio=bool(container.streams.audio),
            codec=v.codec_context.name,
        )
    finally:
        container.close()


def rotate_display(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a coded frame (H, W[, C]) upright: rotate counter-clockwise by ``rotation`` degrees."""
    k = normalise_rotation(rotation) // 90
    return np.rot90(img, k=k) if k else img


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) scaled down (never up) so that max(w, h) <= max_side; even sizes not required."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    f = max_side / max(width, height)
    return max(1, round(width * f)), max(1, round(height * f))


@dataclass
class SourceFrame:
    """One decoded source frame: its index in decode order, timestamp and the av.VideoFrame."""

    index: int
    """Index in decode order (0-based)."""
    time: float
    """Presentation time in seconds."""
    frame: Any
    """The av.VideoFrame."""
    rotation: int
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270)."""


def iter_source_frames(
    path: str | Path, threads: int = 0, damage: DamageStats | None = None
) -> Iterator[SourceFrame]:
    """Decode the first video stream; raise MediaError when the file cannot be read.

    threads: decoder threads (0: FFmpeg's choice; 1 is best when several worker
    processes already share the cores). Packets the decoder rejects are skipped and
    counted in ``damage`` (their duration in ``damage.filled_s``): the previous frame
    stays on screen until the next one, as in ffmpeg.
    """
    import av

    damage = damage if damage is not None else DamageStats()
    container = open_container(path)
    try:
        if not container.streams.video:
            raise MediaError("no_video_stream", f"{path}: no video stream")
        stream = container.streams.video[0]
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        tag_rotation = _rotation_of_stream(stream)
        rate = stream.average_rate or stream.guessed_rate
        fallback_dt = 1.0 / float(rate) if rate else 1.0 / VIDEO_FPS
        index = 0
        try:
            for packet in container.demux(stream):
                start, dur = packet_span(packet) if packet.size else (None, None)
                if start is not None:
                    damage.end = max(damage.end or 0.0, start + (dur or fallback_dt))
                frames = decode_packet(packet, damage, "video")
                if frames is None:
                    damage.filled_s += dur or fallback_dt
                    continue
                for frame in frames:
                    t = frame.time
                    if t is None:
                        t = index * fallback_dt
                    rot = frame.rotation if frame.rotation else tag_rotation
                    yield SourceFrame(
                        index=index, time=float(t), frame=frame, rotation=normalise_rotation(rot)
                    )
                    index += 1
            _count_lost_frames(damage, index, fallback_dt)
        except av.FFmpegError as exc:
            raise MediaError(
                "decode_error",
                f"{path}: decoding failed after {index} frames (truncated or corrupt?): {exc}",
            ) from exc
    finally:
        container.close()


def _count_lost_frames(damage: DamageStats, n_frames: int, frame_dt: float) -> None:
    """With frame threads an error can surface late or not at all: once damage was seen,
    every packet that gave no frame counts as damaged (one frame per packet)."""
    lost = damage.packets - n_frames
    if damage.damaged and lost > damage.damaged:
        damage.filled_s += (lost - damage.damaged) * frame_dt
        damage.damaged = lost


@dataclass
class ResampledFrame:
    """Output frame ``out_index`` (at ``out_index / fps`` s) shows source frame ``src``."""

    out_index: int
    """Index of the output frame."""
    src: SourceFrame
    """The source frame it shows."""


@dataclass
class ResampleStats:
    """What decoding at a fixed output rate found (filled in while iterating)."""

    n_source_frames: int = 0  # Source frames decoded.
    start: float = 0.0  # Timestamp of the first source frame (s).
    duration: float = 0.0  # Clip duration: first frame to the end of the last one (s).
    n_out_frames: int = 0  # Output frames produced.
    rotation: int = 0  # Rotation of the source frames (counter-clockwise degrees).
    damage: DamageStats = field(default_factory=DamageStats)
    """Video packets the decoder rejected (skipped; the previous frame is held)."""


def iter_resampled(
    path: str | Path, fps: float = VIDEO_FPS, stats: ResampleStats | None = None, threads: int = 0
) -> Iterator[ResampledFrame]:
    """Frames at a constant ``fps``, chosen by timestamp (sample and hold); see module docstring.

    Source frames that fall between two output times are skipped; a source frame
    shown at several output times is yielded several times (same ``src`` object).
    ``stats`` (if given) is filled in as decoding proceeds and final at the end.
    """
    stats = stats if stats is not None else ResampleStats()
    prev: SourceFrame | None = None
    t0 = 0.0
    k = 0
    intervals: list[float] = []
    eps = 1e-6
    for sf in iter_source_frames(path, threads, stats.damage):
        if prev is None:
            t0 = sf.time
            stats.rotation = sf.rotation
        else:
            dt = sf.time - prev.time
            if dt > 0:
                intervals.append(dt)
            if dt <= 0:  # duplicate or out-of-order timestamp: keep the later frame only
                prev = sf
                stats.n_source_frames += 1
                continue
            rel = sf.time - t0
            while k / fps < rel - eps:
                yield ResampledFrame(out_index=k, src=prev)
                k += 1
        prev = sf
        stats.n_source_frames += 1
    if prev is None:
        stats.start, stats.duration, stats.n_out_frames = 0.0, 0.0, 0
        return
    last_dur = None
    fr = prev.frame
    if fr.duration and fr.time_base is not None:
        last_dur = float(fr.duration * fr.time_base)
    if not last_dur or last_dur <= 0:
        last_dur = float(np.median(intervals)) if intervals else 1.0 / fps
    duration = (prev.time - t0) + last_dur
    if stats.damage.damaged and stats.damage.end is not None:
        duration = max(duration, stats.damage.end - t0)  # hold the last frame over lost ones
    n_total = int(round(duration * fps))
    stats.start, stats.duration = t0, duration
    # frames already yielded can exceed n_total by one when the last frame is very short
    while k < n_total:
        yield ResampledFrame(out_index=k, src=prev)
        k += 1
    stats.n_out_frames = max(k, n_total)


_LUMA_FORMATS = {
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "nv21",
}
# limited-range luma (16..235) <-> full-range gray (0..255), as swscale converts them
_LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * (255.0 / 219.0)), 0, 255).astype(
    np.uint8
)
_FULL_TO_LIMITED = np.round(16 + np.arange(256) * (219.0 / 255.0)).astype(np.uint8)


def _luma(fr: Any) -> np.ndarray | None:
    """The Y plane of an 8-bit YUV frame as full-range gray (no colour conversion), or None."""
    if fr.format.name not in _LUMA_FORMATS:
        return None
    plane = fr.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : fr.width]
    full = fr.format.name.startswith("yuvj") or fr.color_range == 2  # 2 = AVCOL_RANGE_JPEG
    if full:
        return np.ascontiguousarray(y)
    import cv2

    return cv2.LUT(np.ascontiguousarray(y), _LIMITED_TO_FULL)


def frame_to_array(
    sf: SourceFrame, fmt: str, max_side: int | None = None, reformatter: Any = None
) -> np.ndarray:
    """Source frame -> upright array in ``fmt`` ('rgb24' (H, W, 3) or 'gray' (H, W)), downscaled to max_side.

    reformatter: an ``av.video.reformatter.VideoReformatter`` to reuse (keeps one
    swscale context across the frames of a clip).
    """
    fr = sf.frame
    w, h = fit_size(fr.width, fr.height, max_side)
    arr = None
    if (w, h) == (fr.width, fr.height):
        if fr.format.name == fmt:
            arr = fr.to_ndarray()
        elif fmt == "gray":
            arr = _luma(fr)
        if arr is None:
            arr = _reformat(fr, reformatter, format=fmt).to_ndarray()
    else:
        arr = _reformat(
            fr, reformatter, width=w, height=h, format=fmt, interpolation="AREA"
        ).to_ndarray()
    return rotate_display(arr, sf.rotation)


def _reformat(fr: Any, reformatter: Any, **kwargs: Any) -> Any:
    return reformatter.reformat(fr, **kwargs) if reformatter is not None else fr.reformat(**kwargs)


def write_gray_video(
    path: str | Path, frames: np.ndarray, fps: int = VIDEO_FPS, crf: int = 18
) -> None:
    """Write (T, H, W) uint8 grayscale frames as H.264 (yuv420p) mp4 at ``fps``.

    The container format is set explicitly, so ``path`` may be a temporary name.
    One encoder thread and no lookahead, so the same frames give the same bytes.
    """
    import av

    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W) uint8 frames, got {frames.shape} {frames.dtype}")
    _, h, w = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {w}x{h}")
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = w
        stream.height = h
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        # no rc lookahead / mb-tree: with them x264 output varied between identical runs here
        stream.options = {
            "crf": str(crf),
            "preset": "medium",
            "x264-params": "rc-lookahead=0:mbtree=0:sync-lookahead=0",
        }
        # yuv420p built directly: limited-range luma from the gray values, neutral chroma
        chroma = np.full(2 * (h // 2) * (w // 2), 128, np.uint8)
        for i, img in enumerate(frames):
            luma = _FULL_TO_LIMITED[img]
            planar = np.concatenate([luma.reshape(-1), chroma]).reshape(h * 3 // 2, w)
            vf = av.VideoFrame.from_ndarray(planar, format="yuv420p")
            vf.color_range = 1  # AVCOL_RANGE_MPEG (limited)
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def read_gray_video(path: str | Path) -> tuple[np.ndarray, float]:
    """(T, H, W) uint8 frames and the stream's average rate (for tests and checks)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="gray") for f in c.decode(s)]
        rate = float(s.average_rate) if s.average_rate else 0.0
    if not frames:
        return np.zeros((0, 0, 0), np.uint8), rate
    return np.stack(frames), rate
