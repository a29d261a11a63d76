"""Decoding at 25 fps by timestamp, rotation, ROI video writing and audio extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from preprocessing.audio import align_to_video, decode_audio_stream, load_audio_file, write_wav
from preprocessing.synthetic import write_video
from preprocessing.video_io import (
    MediaError,
    ResampleStats,
    frame_to_array,
    iter_resampled,
    probe,
    read_gray_video,
    rotate_display,
    write_gray_video,
)


def _numbered_frames(n: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Frame i has brightness 5 * i (to tell frames apart after decoding) and a white top-left corner."""
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = 5 * i
        frames[i, :8, :8] = 255
    return frames


def _brightness_ids(path: Path) -> list[int]:
    out = []
    for rf in iter_resampled(path):
        g = frame_to_array(rf.src, "gray")
        out.append(int(round(float(np.median(g)) / 5)))
    return out


@pytest.mark.parametrize("fps", [25, 29.97, 30, 50, 10])
def test_resample_counts_by_timestamp(tmp_path: Path, fps: float) -> None:
    n = 30
    p = tmp_path / "v.mp4"
    dur = write_video(p, _numbered_frames(n), fps, audio_rate=None)
    st = ResampleStats()
    ids = []
    for rf in iter_resampled(p, 25, st):
        ids.append(rf.src.index)
    assert len(ids) == round(dur * 25)
    assert st.n_out_frames == len(ids) and st.n_source_frames == n
    # output frame k shows the source frame on screen at k/25 s
    expected = [min(n - 1, int(np.floor(k / 25 * fps + 1e-6))) for k in range(len(ids))]
    assert ids == expected


def test_variable_frame_rate(tmp_path: Path) -> None:
    times = np.array([0.0, 0.04, 0.2, 0.22, 0.5, 0.53])  # seconds; the last frame lasts 0.03 s
    p = tmp_path / "vfr.mp4"
    write_video(p, _numbered_frames(len(times)), 25, audio_rate=None, times=times)
    ids = [rf.src.index for rf in iter_resampled(p)]
    assert len(ids) == round(0.56 * 25)
    for k, i in enumerate(ids):
        assert times[i] <= k / 25 + 1e-6 and (i == len(times) - 1 or times[i + 1] > k / 25 + 1e-6)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_honoured(tmp_path: Path, rotation: int) -> None:
    frames = _numbered_frames(3, w=64, h=48)
    p = tmp_path / "rot.mp4"
    write_video(p, frames, 25, audio_rate=None, rotation=rotation)
    rf = next(iter(iter_resampled(p)))
    assert rf.src.rotation == rotation
    img = frame_to_array(rf.src, "gray")
    assert img.shape == frames.shape[1:3]  # upright again: 48 x 64
    assert img[:6, :6].mean() > 200 and img[-6:, -6:].mean() < 100  # white corner top-left


def test_rotate_display_direction() -> None:
    img = np.zeros((2, 3), np.uint8)
    img[0, 2] = 1  # top-right
    # 90 degrees counter-clockwise: top-right goes to top-left
    assert rotate_display(img, 90)[0, 0] == 1
    assert rotate_display(img, -90)[2, 1] == 1  # == 270: top-right goes to bottom-right
    assert rotate_display(img, 0) is img


def test_gray_video_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = np.repeat(np.linspace(20, 230, 96, dtype=np.uint8)[None, None, :], 96, axis=1)
    frames = np.stack([np.roll(frames[0], i, axis=1) for i in range(12)])
    frames = np.clip(frames.astype(int) + rng.integers(-3, 4, frames.shape), 0, 255).astype(
        np.uint8
    )
    p = tmp_path / "roi.mp4"
    write_gray_video(p, frames)
    back, rate = read_gray_video(p)
    assert back.shape == frames.shape and rate == 25
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3
    info = probe(p)
    assert info.codec == "h264" and (info.width, info.height) == (96, 96) and not info.has_audio
    # deterministic bytes (resumed runs give the same outputs)
    p2 = tmp_path / "roi2.mp4"
    write_gray_video(p2, frames)
    assert p.read_bytes() == p2.read_bytes()


def test_unreadable_inputs(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError) as ei:
        probe(text)
    assert ei.value.reason == "unreadable"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        probe(empty)
    with pytest.raises(MediaError) as ei:
        probe(tmp_path / "missing.mp4")
    assert ei.value.reason == "missing"
    wav = tmp_path / "a.mkv"
    write_wav(wav.with_suffix(".wav"), np.zeros(1600, np.int16))
    wav.write_bytes(wav.with_suffix(".wav").read_bytes())
    with pytest.raises(MediaError) as ei:
        probe(wav)
    assert ei.value.reason == "no_video_stream"


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_audio_stream_to_16k(tmp_path: Path, rate: int) -> None:
    p = tmp_path / "av.mp4"
    dur = write_video(p, _numbered_frames(25), 25, audio_rate=rate)
    samples, start = decode_audio_stream(p)
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert abs(len(samples) / 16000 - dur) < 0.07  # AAC pads up to one frame
    assert abs(start) < 0.05
    # a 220 Hz tone survives resampling
    spec = np.abs(np.fft.rfft(samples[2000:10000].astype(float)))
    assert abs(np.argmax(spec) * 16000 / 8000 - 220) < 4


def test_audio_files(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="PCM_16")
    x = load_audio_file(tmp_path / "s.wav")
    assert x.dtype == np.int16 and abs(len(x) - 16000) <= 1
    assert 0.45 < np.abs(x).max() / 32767 < 0.55
    write_wav(tmp_path / "o.wav", x)
    info = sf.info(str(tmp_path / "o.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    with pytest.raises(MediaError):
        load_audio_file(tmp_path / "none.wav")


def test_align_to_video() -> None:
    x = np.arange(1, 101, dtype=np.int16)
    assert len(align_to_video(x, 0.001, 0.0)) == 116 and align_to_video(x, 0.001, 0.0)[15] == 0
    assert align_to_video(x, 0.0, 0.001)[0] == 17
    assert align_to_video(x, 0.0, 0.0) is x
