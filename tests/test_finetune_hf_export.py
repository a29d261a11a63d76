"""Audio-only CTC model -> HF Wav2Vec2ForCTC directory: same logits and transcripts in transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.data.batch import AVBatch
from avsr.errors import UserError
from avsr.models.av import AVModelConfig, build_av_encoder
from avsr.models.av.model import normalize_waveform
from avsr.models.finetuned import FinetunedConfig, FinetunedModel
from avsr.models.hf_ctc import export_hf_ctc
from avsr.models.xlsr import build_encoder
from avsr.text import train_tokenizer

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon", "set white with p four"]


def _model(modalities: list[str], head: str = "ctc") -> FinetunedModel:
    torch.manual_seed(0)
    enc = build_av_encoder(AVModelConfig(modalities=modalities), build_encoder("tiny"))  # type: ignore[arg-type]
    model = FinetunedModel(enc, train_tokenizer(TEXTS), FinetunedConfig(head=head, modality="a"))  # type: ignore[arg-type]
    if head == "ctc":
        with torch.no_grad():
            model.head.proj.weight.mul_(30.0)  # a confident head: non-empty greedy transcripts
            # a trained CTC head never emits bos/eos/unk (no target has them); HF drops them
            # before merging repeats, the project after, so keep them out of this comparison
            model.head.proj.bias[[0, 2, 3]] = -1e4
    return model.eval()


def test_export_matches_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    model = _model(["audio"])
    out = export_hf_ctc(model, tmp_path / "hf")
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(out).eval()
    tok = transformers.Wav2Vec2CTCTokenizer.from_pretrained(out)
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([16000, 11000])
    wav = torch.randn(2, 16000, generator=g) * 0.1
    wav[1, 11000:] = 0
    batch = AVBatch(ids=["a", "b"], indices=torch.arange(2), audio=wav, audio_lens=lens, video=None,
                    video_lens=lens // 640)
    with torch.no_grad():
        enc = model.encode(batch, modality="a")
        ours = model.head(enc.feats)
        norm = normalize_waveform(wav, lens)
        mask = (torch.arange(16000)[None] < lens[:, None]).long()
        theirs = hf(norm, attention_mask=mask).logits
    for b in range(2):
        n = int(enc.lens[b])
        torch.testing.assert_close(theirs[b, :n], ours[b, :n], atol=1e-4, rtol=1e-4)
    ours_text = model.decode(batch, modality="a")
    theirs_text = [
        tok.decode(ids[: int(enc.lens[b])].tolist(), skip_special_tokens=False).strip()
        for b, ids in enumerate(theirs.argmax(-1))
    ]
    assert any(ours_text) and theirs_text == ours_text


def test_export_refuses_av_and_seq2seq(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="audio-only"):
        export_hf_ctc(_model(["audio", "video"]), tmp_path / "x")
    with pytest.raises(UserError, match="CTC"):
        export_hf_ctc(_model(["audio"], head="s2s"), tmp_path / "y")


def test_hf_ctc_checkpoint_loads_as_a_project_model(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from avsr.models.hf_ctc import load_hf_ctc

    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "'", "É"]
    vocab = {c: i for i, c in enumerate(chars)}
    (tmp_path / "vocab.json").write_text(__import__("json").dumps(vocab), encoding="utf-8")
    tok = transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
    cfg = transformers.Wav2Vec2Config(
        vocab_size=len(chars), pad_token_id=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="layer",
        do_stable_layer_norm=True, conv_bias=True,
    )
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForCTC(cfg).eval()
    with torch.no_grad():
        hf.lm_head.weight.mul_(30.0)
        hf.lm_head.bias[[1, 2, 3]] = -1e4  # no bos/eos/unk in the greedy path (see the export test)
    hf_dir = tmp_path / "hf"
    hf.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(hf_dir)

    model = load_hf_ctc(hf_dir)
    g = torch.Generator().manual_seed(3)
    lens = torch.tensor([8000, 6000])
    wav = torch.randn(2, 8000, generator=g) * 0.1
    wav[1, 6000:] = 0
    batch = AVBatch(ids=["a", "b"], indices=torch.arange(2), audio=wav, audio_lens=lens, video=None,
                    video_lens=lens // 640)
    with torch.no_grad():
        enc = model.encode(batch, modality="a")
        ours = model.head(enc.feats)
        mask = (torch.arange(8000)[None] < lens[:, None]).long()
        theirs = hf(normalize_waveform(wav, lens), attention_mask=mask).logits
    perm = torch.tensor([model.hf_id_map[i] for i in range(len(chars))])
    for b in range(2):
        n = int(enc.lens[b])
        torch.testing.assert_close(ours[b, :n][:, perm], theirs[b, :n], atol=1e-4, rtol=1e-4)
    ours_text = model.decode(batch, modality="a")
    theirs_text = [tok.decode(ids[: int(enc.lens[b])].tolist(), skip_special_tokens=False)
                   for b, ids in enumerate(theirs.argmax(-1))]
    assert any(ours_text) and ours_text == theirs_text
