"""Audio: a video's audio stream or a given audio file -> 16 kHz mono 16-bit PCM."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from avsr.audio import SAMPLE_RATE
from preprocessing.video_io import MediaError, open_container


def decode_audio_stream(
    path: str | Path, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, float]:
    """First audio stream of a media file -> (int16 mono samples at ``sample_rate``, start time in s).

    Resampled and downmixed with PyAV's AudioResampler (libswresample).
    Raises MediaError('no_audio', ...) when the file has no audio stream or it decodes to nothing.
    """
    import av
    from av.audio.resampler import AudioResampler

    container = open_container(path)
    try:
        if not container.streams.audio:
            raise MediaError("no_audio", f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = AudioResampler(format="s16", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        try:
            for frame in container.decode(stream):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            raise MediaError("audio_decode_error", f"{path}: audio decoding failed: {exc}") from exc
    finally:
        container.close()
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if samples.size == 0:
        raise MediaError("no_audio", f"{path}: the audio stream has no samples")
    return samples, start or 0.0


def load_audio_file(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file (wav/flac/... via soundfile, else PyAV) -> int16 mono at ``sample_rate``."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise MediaError("no_audio", f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):
        samples, _ = decode_audio_stream(path, sample_rate)
        return samples
    mono = data.mean(axis=1)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    if mono.size == 0:
        raise MediaError("no_audio", f"{path}: audio file has no samples")
    return to_int16(mono)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16 (clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def align_to_video(
    samples: np.ndarray, audio_start: float, video_start: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Shift audio so that sample 0 is at the video's first frame (pad with silence or drop the head)."""
    shift = int(round((audio_start - video_start) * sample_rate))
    if shift > 0:
        return np.concatenate([np.zeros(shift, np.int16), samples])
    if shift < 0:
        return samples[-shift:]
    return samples


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """int16 mono samples -> 16-bit PCM wav (path may be a temporary name)."""
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"expected 1-D int16 samples, got {samples.shape} {samples.dtype}")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2").tobytes())
