"""Decoding of the preprocessed grayscale mouth-ROI mp4 (the wav reader is :func:`avsr.audio.read_audio`).

Also the XLS-R CNN frame-count formula that ties audio samples to 50 Hz units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsr.audio import SAMPLE_RATE, VIDEO_FPS
from avsr.errors import UserError

SAMPLES_PER_VIDEO_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640
UNITS_PER_VIDEO_FRAME = 2  # units at 50 Hz
CNN_RECEPTIVE_FIELD = 400
CNN_STRIDE = 320


def cnn_frames(n_samples: int) -> int:
    """Number of 50 Hz frames the XLS-R CNN gives for ``n_samples`` of 16 kHz audio.

    ``floor((S - 400) / 320) + 1`` (0 when ``S < 400``).
    """
    n = int(n_samples)
    if n < CNN_RECEPTIVE_FIELD:
        return 0
    return (n - CNN_RECEPTIVE_FIELD) // CNN_STRIDE + 1


# Planar YUV formats whose first plane is the luma of the frame.
_LUMA_FORMATS = frozenset({"yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p"})
_luma_luts: dict[tuple[str, int], np.ndarray] = {}


def _luma_lut(fmt: str, color_range: int) -> np.ndarray | None:
    """256-entry table luma -> what ``to_ndarray(format="gray")`` gives, built by
    converting a synthetic frame with every luma value through libswscale itself
    (limited-range luma is stretched to 0..255). None when the conversion is not a
    function of the luma alone."""
    key = (fmt, int(color_range))
    if key not in _luma_luts:
        import av

        frame = av.VideoFrame(256, 16, fmt)
        frame.color_range = color_range
        for i, plane in enumerate(frame.planes):
            buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            buf[:] = np.arange(plane.line_size, dtype=np.uint8)[None, :] if i == 0 else 128
        gray = frame.to_ndarray(format="gray")
        lut = gray[0].copy()
        _luma_luts[key] = lut if (gray == lut[None, :]).all() else None  # type: ignore[assignment]
    return _luma_luts[key]


def _luma(frame: object) -> np.ndarray:
    plane = frame.planes[0]  # type: ignore[attr-defined]
    buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return buf[:, : plane.width]


def read_video_gray(path: str | Path) -> np.ndarray:
    """All frames of a video as grayscale uint8, shape (T, H, W) (PyAV decode).

    Planar YUV video (what preprocessing writes) is read from its luma plane through
    a lookup table identical to libswscale's gray conversion, about 4x faster than
    converting every frame (``benchmarks/step_speedups.py``); the first frame is checked against the converter and any
    other format is converted frame by frame.
    """
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: no video stream")
            stream = container.streams.video[0]
            lut: np.ndarray | None = None
            for i, frame in enumerate(container.decode(stream)):
                if i == 0 and frame.format.name in _LUMA_FORMATS:
                    lut = _luma_lut(frame.format.name, frame.color_range)
                    if lut is not None and not np.array_equal(
                        lut[_luma(frame)], frame.to_ndarray(format="gray")
                    ):
                        lut = None
                frames.append(lut[_luma(frame)] if lut is not None else frame.to_ndarray(format="gray"))
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"{path}: cannot decode video: {exc}") from exc
    if not frames:
        raise UserError(f"{path}: video has no frames")
    return np.stack(frames).astype(np.uint8, copy=False)


def write_video_gray(
    path: str | Path, frames: np.ndarray, fps: int = VIDEO_FPS, crf: int = 0
) -> None:
    """Write (T, H, W) uint8 frames as H.264 mp4 (``crf=0``: lossless luma; for tests/benchmarks)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got {frames.shape}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for f in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
