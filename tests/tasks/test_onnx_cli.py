"""``avsr export onnx`` and ``avsr transcribe --backend onnx`` (preprocessing stubbed out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsr.cli import main
from avsr.inference import MediaInput
from tests.helpers.tiny_models import make_tiny_finetuned


def _media(path: object, cfg: object = None) -> MediaInput:
    rng = np.random.default_rng(1)
    return MediaInput(
        video=rng.integers(0, 255, (50, 96, 96), dtype=np.uint8),
        audio=(0.1 * rng.standard_normal(50 * 640)).astype(np.float32),
        warnings=[],
    )


def test_export_then_transcribe_with_onnxruntime(
    tmp_path: Path, tiny_finetuned_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--model", str(tiny_finetuned_dir), "--out", str(onnx), "--seconds", "1"]) == 0
    assert "max |logit diff| vs PyTorch" in capsys.readouterr().out and onnx.is_file()
    monkeypatch.setattr("tasks.transcriber.preprocess_video", _media)
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"stub")  # the preprocessing is stubbed: only its existence is checked
    texts = {}
    for backend in ("torch", "onnx"):
        argv = ["transcribe", str(video), "--model", str(tiny_finetuned_dir), "--window", "0.8",
                "--segment", "fixed", "--format", "json", "--backend", backend, "--onnx", str(onnx)]
        assert main(argv) == 0
        texts[backend] = [s["text"] for s in json.loads(capsys.readouterr().out)["segments"]]
    assert texts["onnx"] == texts["torch"] and len(texts["onnx"]) == 3
    missing = ["transcribe", str(video), "--model", str(tiny_finetuned_dir), "--backend", "onnx"]
    assert main(missing) == 2
    assert "avsr export onnx" in capsys.readouterr().err  # no MODEL/model.onnx yet


def test_export_refuses_seq2seq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s2s = make_tiny_finetuned(tmp_path / "s2s", head="s2s")
    assert main(["export", "onnx", "--model", str(s2s), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "CTC models" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
