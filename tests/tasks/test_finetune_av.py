"""FinetunedModel on the real (tiny) AV encoder: save/load, input modes, live video path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.data.batch import AVBatch
from avsr.errors import UserError
from avsr.models.finetuned import FinetunedConfig, FinetunedModel, load_finetuned, save_finetuned
from avsr.models.heads.decoder import DecoderConfig
from avsr.text import train_tokenizer
from tests.helpers.tiny_models import tiny_av_encoder

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon"]


def _batch(seed: int = 0) -> AVBatch:
    g = torch.Generator().manual_seed(seed)
    vlen = torch.tensor([20, 14, 17])
    audio_lens = vlen * 640
    audio = torch.randn(3, int(audio_lens.max()), generator=g) * 0.1
    video = torch.randn(3, 1, int(vlen.max()), 24, 24, generator=g)
    for i in range(3):
        audio[i, int(audio_lens[i]) :] = 0
        video[i, :, int(vlen[i]) :] = 0
    return AVBatch(
        ids=["a", "b", "c"], indices=torch.arange(3), audio=audio, audio_lens=audio_lens,
        video=video, video_lens=vlen, texts=TEXTS, langs=["en"] * 3,
    )


def _model(head: str, modality: str = "a", ctc_weight: float = 0.0) -> FinetunedModel:
    enc = tiny_av_encoder()
    cfg = FinetunedConfig(
        head=head,  # type: ignore[arg-type]
        modality=modality,  # type: ignore[arg-type]
        decoder=DecoderConfig(num_layers=1, model_dim=32, ffn_dim=64, num_heads=2, max_len_b=12),
        ctc_weight=ctc_weight,
    )
    return FinetunedModel(enc, train_tokenizer(TEXTS), cfg, data_config={"crop_size": 24, "image_size": None})


def _train_a_little(model: FinetunedModel, batch: AVBatch, steps: int = 3) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        loss, n, _ = model.compute_loss(batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize(("head", "ctc_weight"), [("ctc", 0.0), ("s2s", 0.0), ("s2s", 0.3)])
def test_save_load_round_trip(head: str, ctc_weight: float, tmp_path: Path) -> None:
    model = _model(head, "av", ctc_weight)
    batch = _batch()
    _train_a_little(model, batch)
    model.eval()
    out = save_finetuned(model, tmp_path / "ft")
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.yaml", "tokenizer.model"}
    again = load_finetuned(out)
    assert not again.training
    with torch.no_grad():
        e1 = model.encode(batch, modality="av").feats
        e2 = again.encode(batch, modality="av").feats
    torch.testing.assert_close(e1, e2)
    assert again.decode(batch, beam=3) == model.decode(batch, beam=3)
    with torch.no_grad():
        assert again.compute_loss(batch)[0].item() == pytest.approx(model.compute_loss(batch)[0].item(), rel=1e-5)
    if head == "s2s":  # tied embeddings stay tied after loading
        assert again.head.output_proj.weight is again.head.embed_tokens.weight
    assert (again.ctc_aux is not None) == (ctc_weight > 0)  # the auxiliary CTC branch round-trips
    assert again.data_config["crop_size"] == 24


def test_audio_only_model_accepts_av_input_and_video_is_live() -> None:
    model = _model("ctc", "a")
    batch = _batch()
    a_batch = AVBatch(**{**batch.__dict__, "video": None})  # what audio-only training loads
    _train_a_little(model, a_batch)
    model.eval()
    with torch.no_grad():
        fa = model.encode(batch, modality="a").feats
        fa_none = model.encode(a_batch, modality="a").feats
        fav = model.encode(batch, modality="av").feats
        logits_a = model.head(fa)
        logits_av = model.head(fav)
    torch.testing.assert_close(fa, fa_none)  # A-only input == zero video, with or without a video tensor
    assert (fav - fa).abs().max() > 1e-4  # the video path is live
    assert (logits_av - logits_a).abs().max() > 1e-4
    hyps = model.decode(batch, modality="av")
    assert len(hyps) == 3 and all(isinstance(h, str) for h in hyps)


def test_load_errors(tmp_path: Path) -> None:
    model = _model("s2s", "av")
    out = save_finetuned(model, tmp_path / "ft")
    (out / "tokenizer.model").unlink()
    with pytest.raises(UserError, match="tokenizer.model"):
        load_finetuned(out)
    with pytest.raises(UserError, match="config"):
        load_finetuned(tmp_path / "nowhere")
