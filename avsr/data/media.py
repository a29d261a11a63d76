"""Decoding of the preprocessed media: 16 kHz mono wav and grayscale mouth-ROI mp4.

Also the XLS-R CNN frame-count formula that ties audio samples to 50 Hz units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsr.errors import UserError

SAMPLE_RATE = 16000
VIDEO_FPS = 25
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


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono samples in [-1, 1] at ``sample_rate`` (downmixed/resampled if needed)."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise UserError(f"{path}: cannot read audio: {exc}") from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        import math

        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_video_gray(path: str | Path) -> np.ndarray:
    """All frames of a video as grayscale uint8, shape (T, H, W) (PyAV decode)."""
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="gray"))
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
