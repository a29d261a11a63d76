"""HF CTC interop through the CLI, for both wav2vec 2.0 block types:
``avsr model export-hf`` (project CTC -> Wav2Vec2ForCTC, same logits and greedy transcripts)
and ``avsr model import-hf`` (HF CTC, e.g. wav2vec2-large-960h -> project, same logits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avsr.cli import main
from avsr.data.batch import AVBatch
from avsr.models.av import AVModelConfig, build_av_encoder
from avsr.models.finetuned import FinetunedConfig, FinetunedModel, load_finetuned, save_finetuned
from avsr.models.xlsr import EncoderConfig, build_encoder
from avsr.models.xlsr.config import conv_stack
from avsr.models.xlsr.model import normalize_waveform
from avsr.text import train_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon"]

# (norm_order, extractor_norm, conv_bias): XLS-R / XLSR-53 / MMS, and wav2vec2 base / large
BLOCKS = {"pre_ln": ("pre", "layer", True), "post_ln": ("post", "group", False)}


def tiny_encoder_config(block: str) -> EncoderConfig:
    norm, extractor, bias = BLOCKS[block]
    return EncoderConfig(
        model_dim=32, num_layers=2, num_heads=4, ffn_dim=64, conv_layers=conv_stack(16),
        conv_bias=bias, extractor_norm=extractor, norm_order=norm, pos_conv_kernel=16,
        pos_conv_groups=4, dropout=0.0, attn_dropout=0.0,
    )  # fmt: skip


def project_ctc(block: str) -> FinetunedModel:
    torch.manual_seed(0)
    enc = build_av_encoder(
        AVModelConfig(modalities=["audio"]), build_encoder(tiny_encoder_config(block))
    )
    model = FinetunedModel(enc, train_tokenizer(TEXTS), FinetunedConfig(head="ctc", modality="a"))
    with torch.no_grad():
        model.head.proj.weight.mul_(30.0)  # confident: non-empty greedy transcripts
        # a trained CTC head never emits bos/eos/unk; HF drops them before merging repeats
        model.head.proj.bias[[0, 2, 3]] = -1e4
    return model.eval()


def batch(n: int = 8000) -> AVBatch:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([n, n * 3 // 4])
    wav = torch.randn(2, n, generator=g) * 0.1
    wav[1, int(lens[1]) :] = 0
    return AVBatch(ids=["a", "b"], indices=torch.arange(2), audio=wav, audio_lens=lens, video=None,
                   video_lens=lens // 640)  # fmt: skip


def hf_logits(hf: torch.nn.Module, b: AVBatch) -> torch.Tensor:
    mask = (torch.arange(b.audio.shape[1])[None] < b.audio_lens[:, None]).long()
    with torch.no_grad():
        return hf(normalize_waveform(b.audio, b.audio_lens), attention_mask=mask).logits


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_export_hf_cli_roundtrip(
    block: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = project_ctc(block)
    save_finetuned(model, tmp_path / "ft")
    assert main(["model", "export-hf", str(tmp_path / "ft"), str(tmp_path / "hf")]) == 0
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["do_stable_layer_norm"] == (block == "pre_ln")
    assert cfg["feat_extract_norm"] == BLOCKS[block][1]
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "hf").eval()
    tok = transformers.Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "hf")
    b = batch()
    with torch.no_grad():
        enc = model.encode(b, modality="a")
        ours = model.head(enc.feats)
    theirs = hf_logits(hf, b)
    for i in range(2):
        n = int(enc.lens[i])
        torch.testing.assert_close(theirs[i, :n], ours[i, :n], atol=1e-4, rtol=1e-4)
    ours_text = model.decode(b, modality="a")
    theirs_text = [
        tok.decode(ids[: int(enc.lens[i])].tolist(), skip_special_tokens=False).strip()
        for i, ids in enumerate(theirs.argmax(-1))
    ]
    assert any(ours_text) and theirs_text == ours_text
    # an existing output is not overwritten silently
    assert main(["model", "export-hf", str(tmp_path / "ft"), str(tmp_path / "hf")]) != 0
    assert "--force" in capsys.readouterr().err


def test_import_hf_cli_large_960h_style(tmp_path: Path) -> None:
    """An HF CTC checkpoint shaped like wav2vec2-large-960h (post-LN, group-norm CNN, no
    conv bias, upper-case letters + '|' + apostrophe, pad id 0) -> a project CTC dir."""
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "'"]
    (tmp_path / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tok = transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
    cfg = transformers.Wav2Vec2Config(
        vocab_size=len(chars), pad_token_id=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, feat_extract_norm="group", do_stable_layer_norm=False,
        conv_bias=False,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForCTC(cfg).eval()
    with torch.no_grad():
        hf.lm_head.weight.mul_(30.0)
        hf.lm_head.bias[[1, 2, 3]] = -1e4
    hf.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(tmp_path / "hf")
    assert main(["model", "import-hf", str(tmp_path / "hf"), str(tmp_path / "ft")]) == 0
    model = load_finetuned(tmp_path / "ft")
    assert model.encoder.xlsr.config.norm_order == "post"
    assert model.encoder.xlsr.config.extractor_norm == "group"
    b = batch()
    with torch.no_grad():
        enc = model.encode(b, modality="a")
        ours = model.head(enc.feats)
    theirs = hf_logits(hf, b)
    # the project ids: bos/pad/eos/unk = 0/1/2/3, the characters after them
    piece_of = {model.tokenizer.id_to_piece(i): i for i in range(model.tokenizer.vocab_size)}
    specials = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "|": piece_of["\u2581"]}
    perm = torch.tensor([specials.get(c, piece_of.get(c, -1)) for c in chars])
    assert (perm >= 0).all()
    for i in range(2):
        n = int(enc.lens[i])
        torch.testing.assert_close(ours[i, :n][:, perm], theirs[i, :n], atol=1e-4, rtol=1e-4)
    theirs_text = [
        tok.decode(ids[: int(enc.lens[i])].tolist()) for i, ids in enumerate(theirs.argmax(-1))
    ]
    ours_text = model.decode(b, modality="a")
    assert any(ours_text) and ours_text == theirs_text


def test_export_refuses_w2vbert(tmp_path: Path) -> None:
    from avsr.errors import UserError
    from avsr.models.hf_ctc import export_hf_ctc
    from avsr.models.w2vbert import build_w2vbert

    enc = build_av_encoder(AVModelConfig(modalities=["audio"]), build_w2vbert("w2vbert_tiny"))  # type: ignore[arg-type]
    model = FinetunedModel(enc, train_tokenizer(TEXTS), FinetunedConfig(head="ctc", modality="a"))
    with pytest.raises(UserError, match="w2vbert"):
        export_hf_ctc(model, tmp_path / "hf")
