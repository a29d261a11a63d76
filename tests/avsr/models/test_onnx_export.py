"""ONNX export of a fine-tuned AV CTC model: onnxruntime logits and transcripts match PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.errors import UserError
from avsr.inference import MediaInput, WindowDecoder
from avsr.models.av.config import AVModelConfig, VisualSection
from avsr.models.av.model import build_av_encoder
from avsr.models.finetuned import FinetunedConfig, FinetunedModel, load_finetuned, save_finetuned
from avsr.models.heads.ctc import ctc_greedy_decode
from avsr.models.onnx_ctc import OnnxCTCModel, open_session, run_logits
from avsr.models.onnx_export import example_inputs, export_onnx, torch_logits
from avsr.text import train_tokenizer
from tests.helpers.tiny_models import WORDS, make_tiny_finetuned


@pytest.fixture(scope="module")
def exported(tiny_finetuned_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    report = export_onnx(tiny_finetuned_dir, out, seconds=1.2)
    assert report.path == out and report.max_abs_diff <= 1e-4
    return out


@pytest.mark.parametrize("seconds", [0.8, 2.0, 4.4])
@pytest.mark.parametrize("modality", ["av", "a", "v"])
def test_logits_and_transcripts_match_pytorch(
    tiny_finetuned_dir: Path, exported: Path, seconds: float, modality: str
) -> None:
    model = load_finetuned(tiny_finetuned_dir)
    session = open_session(exported)
    audio, video = example_inputs(model, seconds, seed=7)
    ref = torch_logits(model, audio, video, modality)
    got = run_logits(session, audio.numpy(), video.numpy(), modality)
    assert got.shape == tuple(ref.shape) and got.shape[1] == int(model.encoder.output_lens(torch.tensor([audio.shape[1]]))[0])
    assert np.abs(got - ref.numpy()).max() <= 1e-4
    lens = torch.tensor([ref.shape[1]])
    blank = model.head.blank_id
    want = ctc_greedy_decode(ref, lens, blank_id=blank)
    assert want[0] and ctc_greedy_decode(torch.from_numpy(got), lens, blank_id=blank) == want


def test_window_decoder_onnx_backend_gives_the_torch_texts(tiny_finetuned_dir: Path, exported: Path) -> None:
    rng = np.random.default_rng(0)
    media = MediaInput(
        video=rng.integers(0, 255, (70, 96, 96), dtype=np.uint8),
        audio=(0.1 * rng.standard_normal(70 * 640)).astype(np.float32),
        warnings=[],
    )
    torch_dec = WindowDecoder(tiny_finetuned_dir, device="cpu", batch_size=2)
    onnx_dec = WindowDecoder(tiny_finetuned_dir, backend="onnx", onnx_path=exported, batch_size=2)
    assert isinstance(onnx_dec.model, OnnxCTCModel)
    for modality in ("av", "a", "v"):
        want = torch_dec.decode_media(media, "x", window_s=1.0, modality=modality)
        got = onnx_dec.decode_media(media, "x", window_s=1.0, modality=modality)
        assert [s.text for s in got.segments] == [s.text for s in want.segments]
        assert [(s.start, s.end) for s in got.segments] == [(s.start, s.end) for s in want.segments]
    no_face = MediaInput(video=None, audio=media.audio, warnings=[])
    assert onnx_dec.decode_media(no_face, "x", window_s=1.0).modality == "a"


def test_seq2seq_and_bad_files_are_clear_errors(tmp_path: Path, tiny_finetuned_dir: Path) -> None:
    s2s = make_tiny_finetuned(tmp_path / "s2s", head="s2s")
    with pytest.raises(UserError, match="CTC models"):
        export_onnx(s2s, tmp_path / "s2s.onnx")
    with pytest.raises(UserError, match="CTC models only"):
        OnnxCTCModel(s2s, tmp_path / "s2s.onnx")
    with pytest.raises(UserError, match="not found"):
        OnnxCTCModel(tiny_finetuned_dir, tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load"):
        open_session(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="backend must be"):
        WindowDecoder(tiny_finetuned_dir, backend="tflite")


def test_onnx_backend_takes_the_ctc_prefix_beam_decoder(tiny_finetuned_dir: Path, exported: Path) -> None:
    ctc_lm = pytest.importorskip("avsr.decoding.ctc_lm")
    rng = np.random.default_rng(3)
    media = MediaInput(
        video=rng.integers(0, 255, (40, 96, 96), dtype=np.uint8),
        audio=(0.1 * rng.standard_normal(40 * 640)).astype(np.float32),
        warnings=[],
    )
    texts = {}
    for backend in ("torch", "onnx"):
        dec = WindowDecoder(tiny_finetuned_dir, device="cpu", backend=backend, onnx_path=exported)
        ctc_lm.install_ctc_decoder(dec.model, "beam", ctc_lm.CTCBeamConfig(), where=tiny_finetuned_dir)
        assert dec.model.ctc_decoder is not None
        texts[backend] = [s.text for s in dec.decode_media(media, "x", window_s=1.0).segments]
    assert texts["onnx"] == texts["torch"] and any(texts["onnx"])


def _tiny_ctc_dir(path: Path, *, family: str = "wav2vec2", **av: object) -> Path:
    """A tiny untrained AV CTC model dir of encoder ``family`` (AVModelConfig fields ``av``)."""
    cfg = AVModelConfig(visual=VisualSection(stem_channels=8, widths=[8, 8, 16, 16], blocks=[1, 1, 1, 1]), **av)  # type: ignore[arg-type]
    if family == "w2vbert":
        cfg.encoder.family, cfg.encoder.arch = "w2vbert", "w2vbert_tiny"
    else:
        cfg.encoder.overrides = {"model_dim": 32, "num_layers": 1, "num_heads": 2, "ffn_dim": 64}
    torch.manual_seed(0)
    texts = [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(3)) for i in range(20)]
    model = FinetunedModel(build_av_encoder(cfg), train_tokenizer(texts, vocab_size=40), FinetunedConfig(head="ctc"))
    return save_finetuned(model.eval(), path)


def test_filterbank_front_end_and_concat_fusion_export(tmp_path: Path) -> None:
    path = _tiny_ctc_dir(tmp_path / "fbank", audio_frontend="fbank")
    report = export_onnx(path, tmp_path / "fbank.onnx", seconds=1.0, check=(0.8, 2.6, 5.0))
    assert report.max_abs_diff <= 1e-4


def test_w2vbert_encoder_is_a_clear_error(tmp_path: Path) -> None:
    path = _tiny_ctc_dir(tmp_path / "wb", family="w2vbert")
    with pytest.raises(UserError, match="w2vbert encoder does not export to ONNX"):
        export_onnx(path, tmp_path / "wb.onnx")
    assert not (tmp_path / "wb.onnx").exists()
