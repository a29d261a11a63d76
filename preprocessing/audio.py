"""Audio: a video's audio stream or a given audio file -> 16 kHz mono 16-bit PCM."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avsr.audio import SAMPLE_RATE, note_conversion
from preprocessing.damage import DamageStats, decode_packet, packet_span
from preprocessing.video_io import MediaError, open_container


@dataclass
class DecodedAudio:
    """A media file's first audio stream decoded to mono int16 at the target rate."""

    samples: np.ndarray
    """(S,) int16 mono samples at the target rate."""
    start: float
    """Time of the first sample in the file's timeline (s)."""
    source_rate: int
    """Sample rate of the stream (Hz)."""
    source_channels: int
    """Channels of the stream."""
    damage: DamageStats
    """Packets the decoder rejected; their duration is filled with silence."""


class _GapFiller:
    """Where decoded audio goes on the timeline, and the silence owed for skipped packets."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.last_dur = 0.0
        self.pending: list[tuple[float | None, float | None]] = []

    def skipped(self, packet: Any) -> None:
        """A damaged packet was dropped before the next frame."""
        self.pending.append(packet_span(packet))

    def before(self, frame: Any) -> float:
        """Seconds of silence to insert before ``frame`` (0 unless packets were skipped)."""
        t = None if frame.time is None else float(frame.time)
        gap = 0.0
        if self.pending:
            if t is not None and self.end is not None:
                gap = t - self.end
            elif t is not None and self.pending[0][0] is not None:
                gap = t - self.pending[0][0]  # damage before the first frame
                self.start = self.pending[0][0]
            else:
                gap = self.tail()
            self.pending = []
        if self.start is None and t is not None:
            self.start = t
        self.last_dur = frame.samples / frame.sample_rate if frame.sample_rate else 0.0
        base = t if t is not None else (self.end or 0.0) + max(gap, 0.0)
        self.end = base + self.last_dur
        return max(gap, 0.0)

    def tail(self) -> float:
        """Seconds of the packets skipped since the last frame (after the last one: at the end)."""
        return sum(d if d else self.last_dur for _, d in self.pending)


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> DecodedAudio:
    """First audio stream of a media file -> :class:`DecodedAudio` (mono int16 at ``sample_rate``).

    Resampled and downmixed with PyAV's AudioResampler (libswresample), with a notice
    (:func:`avsr.audio.note_conversion`). Packets the decoder rejects are skipped and
    replaced by silence of their duration (from the timestamps), as ffmpeg does.
    Raises MediaError('no_audio', ...) when the file has no audio stream or it decodes to nothing,
    MediaError('damaged', ...) when none of its packets decodes.
    """
    import av
    from av.audio.resampler import AudioResampler

    container = open_container(path)
    try:
        if not container.streams.audio:
            raise MediaError("no_audio", f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = AudioResampler(format="s16", layout="mono", rate=sample_rate)
        damage, gaps = DamageStats(), _GapFiller()
        chunks: list[np.ndarray] = []
        source: tuple[int, int] | None = None
        try:
            for packet in container.demux(stream):
                frames = decode_packet(packet, damage, "audio")
                if frames is None:
                    if packet.size:
                        gaps.skipped(packet)
                    continue
                for frame in frames:
                    source = source or (frame.sample_rate, len(frame.layout.channels))
                    _fill(chunks, gaps.before(frame), damage, sample_rate)
                    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
            _fill(chunks, gaps.tail(), damage, sample_rate)
        except av.FFmpegError as exc:
            raise MediaError("audio_decode_error", f"{path}: audio decoding failed: {exc}") from exc
    finally:
        container.close()
    if source is None and damage.damaged:
        raise MediaError("damaged", f"{path}: none of the {damage.packets} audio packets decodes")
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if samples.size == 0 or source is None:
        raise MediaError("no_audio", f"{path}: the audio stream has no samples")
    note_conversion(path, source[0], source[1], sample_rate)
    return DecodedAudio(
        samples=samples,
        start=gaps.start or 0.0,
        source_rate=source[0],
        source_channels=source[1],
        damage=damage,
    )


def _fill(chunks: list[np.ndarray], gap_s: float, damage: DamageStats, sample_rate: int) -> None:
    """Append ``gap_s`` seconds of silence (a skipped packet's duration) to ``chunks``."""
    n = int(round(gap_s * sample_rate))
    if n > 0:
        chunks.append(np.zeros(n, np.int16))
        damage.filled_s += n / sample_rate


def decode_audio_stream(
    path: str | Path, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, float]:
    """First audio stream of a media file -> (int16 mono samples at ``sample_rate``, start time in s).

    See :func:`decode_audio` (damaged packets are replaced by silence).
    """
    decoded = decode_audio(path, sample_rate)
    return decoded.samples, decoded.start


def load_audio_file(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An audio file (wav/flac/... via soundfile, else PyAV) -> int16 mono at ``sample_rate``."""
    return read_audio_file(path, sample_rate).samples


def read_audio_file(path: str | Path, sample_rate: int = SAMPLE_RATE) -> DecodedAudio:
    """An audio file (wav/flac/... via soundfile, else PyAV) -> :class:`DecodedAudio`.

    Resampled (``resample_poly``) and downmixed with a notice (:func:`avsr.audio.note_conversion`).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise MediaError("no_audio", f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):
        return decode_audio(path, sample_rate)
    note_conversion(path, sr, data.shape[1], sample_rate)
    mono = data.mean(axis=1)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    if mono.size == 0:
        raise MediaError("no_audio", f"{path}: audio file has no samples")
    return DecodedAudio(
        samples=to_int16(mono),
        start=0.0,
        source_rate=int(sr),
        source_channels=int(data.shape[1]),
        damage=DamageStats(),
    )


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
