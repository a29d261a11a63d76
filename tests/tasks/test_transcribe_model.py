"""Transcription with a real (tiny) fine-tuned model: the Python API and ``avsr transcribe``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsr.cli import main
from avsr.errors import UserError
from avsr.media import media_path
from preprocessing.synthetic import write_face_video, write_video
from tasks.transcriber import Transcriber

pytestmark = pytest.mark.slow  # face mesh on ~200 frames + a real model


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_finetuned_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("transcribe")
    write_face_video(root / "face.mp4", n_frames=40)  # face + a tone
    blank = np.full((20, 120, 160, 3), 110, np.uint8)
    write_video(root / "noface.mp4", blank, 25)  # audio, no face
    return {
        "model": tiny_finetuned_dir,
        "face": root / "face.mp4",
        "noface": root / "noface.mp4",
        "carphone": media_path("carphone_pristine.mp4"),
    }


@pytest.fixture(scope="module")
def transcriber(env: dict[str, Path]) -> Transcriber:
    return Transcriber(env["model"], device="cpu", batch_size=2)


def test_api_windows_and_modalities(transcriber: Transcriber, env: dict[str, Path]) -> None:
    det = transcriber.transcribe_detailed(env["face"], window_s=0.6, segment="fixed")
    assert det.modality == "av" and det.warnings == []
    assert [(s.start, s.end) for s in det.segments] == [(0.0, 0.6), (0.6, 1.2), (1.2, 1.6)]
    assert all(isinstance(s.text, str) for s in det.segments)
    # the same call gives the same text
    alone = transcriber.transcribe(env["face"], window_s=0.6, segment="fixed")
    assert [s.text for s in alone] == [s.text for s in det.segments]
    a_only = transcriber.transcribe_detailed(
        env["face"], window_s=0.6, modality="a", segment="fixed"
    )
    assert a_only.modality == "a" and len(a_only.segments) == 3

    car = transcriber.transcribe_detailed(env["carphone"], window_s=2.0)
    assert car.modality == "v" and any("no audio" in w for w in car.warnings)
    assert car.segments[-1].end == pytest.approx(car.duration) and car.duration == pytest.approx(
        4.0, abs=0.1
    )

    nf = transcriber.transcribe_detailed(env["noface"])
    assert nf.modality == "a" and any("no face" in w for w in nf.warnings)
    with pytest.raises(UserError, match="needs the face video"):
        transcriber.transcribe(env["noface"], modality="av")
    with pytest.raises(UserError, match="needs audio"):
        transcriber.transcribe(env["carphone"], modality="a")
    with pytest.raises(UserError, match="cannot translate"):
        transcriber.transcribe(env["face"], task="translate")


def test_cli_prints_text_for_the_carphone_clip(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = ["--model", str(env["model"])]
    assert main(["transcribe", str(env["carphone"]), *model, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines and lines[0].startswith("[00:00.00 - ")
    argv = ["transcribe", str(env["carphone"]), str(env["face"]), *model]
    assert main([*argv, "--format", "json", "--out", str(tmp_path / "t.json")]) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert [d["modality"] for d in data] == ["v", "av"]
    srt_argv = ["--format", "srt", "--segment", "fixed", "--window", "0.6"]
    assert main(["transcribe", str(env["face"]), *model, *srt_argv]) == 0
    srt = capsys.readouterr().out
    assert "00:00:00,000 --> 00:00:00,600" in srt or srt.strip() == ""
    assert main(["transcribe", str(tmp_path / "missing.mp4"), *model]) == 2
    assert "not found" in capsys.readouterr().err
