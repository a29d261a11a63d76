"""On-the-fly preprocessing, windows and output formats of transcription (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsr.errors import UserError
from avsr.inference import Segment, Transcript, to_srt, to_text, window_bounds
from avsr.runtime import resolve_model_dir
from preprocessing.synthetic import write_face_video, write_video
from tasks.transcriber import preprocess_video


def test_window_bounds_cover_and_merge_short_tail() -> None:
    assert window_bounds(100, 2.0) == [(0, 50), (50, 100)]
    assert window_bounds(110, 2.0) == [(0, 50), (50, 110)]  # 10-frame tail merged
    assert window_bounds(140, 2.0) == [(0, 50), (50, 100), (100, 140)]
    assert window_bounds(10, 20.0) == [(0, 10)]
    b = window_bounds(12345, 3.3)
    assert b[0][0] == 0 and b[-1][1] == 12345 and all(x[1] == y[0] for x, y in zip(b, b[1:]))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(UserError, match="window"):
            window_bounds(10, bad)


def test_output_formats() -> None:
    segs = [
        Segment(0.0, 10.0, "hola que tal"),
        Segment(10.0, 12.48, ""),
        Segment(12.48, 3725.5, "adiós"),
    ]
    srt = to_srt(segs)
    assert srt == (
        "1\n00:00:00,000 --> 00:00:10,000\nhola que tal\n\n"
        "2\n00:00:12,480 --> 01:02:05,500\nadiós\n"
    )
    tr = Transcript(video="v.mp4", segments=segs, modality="av", task="avsr", duration=3725.5)
    assert tr.text == "hola que tal adiós"
    assert to_text(tr).splitlines()[0] == "[00:00.00 - 00:10.00] hola que tal"
    assert to_text(tr, timestamps=False) == "hola que tal adiós\n"
    d = tr.to_dict()
    assert d["segments"][2] == {
        "start": 12.48,
        "end": 3725.5,
        "text": "adiós",
        "modality": "av",
        "words": [],
    }
    assert d["modality"] == "av" and d["face"] == "largest"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {}
    write_face_video(root / "face_noaudio.mp4", n_frames=30, audio_rate=None)
    out["face_noaudio"] = root / "face_noaudio.mp4"
    blank = np.full((30, 120, 160, 3), 110, np.uint8)
    blank[:, 40:80, 60:100] = 30  # a dark box, no face
    write_video(root / "noface.mp4", blank, 25)
    out["noface"] = root / "noface.mp4"
    write_video(root / "noface_noaudio.mp4", blank, 25, audio_rate=None)
    out["noface_noaudio"] = root / "noface_noaudio.mp4"
    return out


def test_preprocess_face_without_audio_is_video_only(videos: dict[str, Path]) -> None:
    m = preprocess_video(videos["face_noaudio"])
    assert m.audio is None and m.video is not None
    assert m.video.shape == (30, 96, 96) and m.video.dtype == np.uint8
    assert any("no audio" in w for w in m.warnings)
    assert m.duration == pytest.approx(30 / 25)


def test_preprocess_no_face_falls_back_to_audio(videos: dict[str, Path]) -> None:
    m = preprocess_video(videos["noface"])
    assert m.video is None and m.audio is not None
    assert m.audio.dtype == np.float32 and abs(m.audio.shape[0] / 16000 - 30 / 25) < 0.1
    assert float(np.abs(m.audio).max()) > 0.1  # the tone is there
    assert any("no face" in w and "audio-only" in w for w in m.warnings)


def test_preprocess_no_face_no_audio_fails_clearly(videos: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="no face found .* no audio"):
        preprocess_video(videos["noface_noaudio"])
    with pytest.raises(UserError, match="not found"):
        preprocess_video(videos["noface"].parent / "missing.mp4")


def test_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(UserError, match="not a fine-tuned model"):
        resolve_model_dir(tmp_path)
