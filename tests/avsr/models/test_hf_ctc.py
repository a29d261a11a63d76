"""HF CTC interop through the CLI, for both wav2vec 2.0 block types:
``avsr model export-hf`` (project CTC -> Wav2Vec2ForCTC, same logits and greedy transcripts)
and ``avsr model import-hf`` (HF CTC, e.g. wav2vec2-large-960h -> project, same logits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avsr.cli import main
from avsr.errors import UserError
from avsr.models.finetuned import FinetunedModel, load_finetuned, save_finetuned
from avsr.models.hf_ctc import export_hf_ctc
from avsr.models.w2vbert import build_w2vbert
from avsr.models.xlsr import EncoderConfig, build_encoder
from avsr.models.xlsr.config import conv_stack
from tests.helpers.hf_ctc import assert_matches_hf_ctc, audio_batch, save_hf_ctc
from tests.helpers.hf_models import POST_LN
from tests.helpers.tiny_models import audio_finetuned, confident_ctc

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
    return confident_ctc(audio_finetuned(build_encoder(tiny_encoder_config(block)), TEXTS))


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
    assert_matches_hf_ctc(model, hf, tok, audio_batch([8000, 6000], seed=1), strip=True)
    # an existing output is not overwritten silently
    assert main(["model", "export-hf", str(tmp_path / "ft"), str(tmp_path / "hf")]) != 0
    assert "--force" in capsys.readouterr().err


def test_import_hf_cli_large_960h_style(tmp_path: Path) -> None:
    """An HF CTC checkpoint shaped like wav2vec2-large-960h (post-LN, group-norm CNN, no
    conv bias, upper-case letters + '|' + apostrophe, pad id 0) -> a project CTC dir."""
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "'"]
    hf, tok = save_hf_ctc(tmp_path, chars, **POST_LN)
    assert main(["model", "import-hf", str(tmp_path / "hf"), str(tmp_path / "ft")]) == 0
    model = load_finetuned(tmp_path / "ft")
    assert model.encoder.xlsr.config.norm_order == "post"
    assert model.encoder.xlsr.config.extractor_norm == "group"
    # the project ids: bos/pad/eos/unk = 0/1/2/3, the characters after them
    piece_of = {model.tokenizer.id_to_piece(i): i for i in range(model.tokenizer.vocab_size)}
    specials = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "|": piece_of["\u2581"]}
    perm = torch.tensor([specials.get(c, piece_of.get(c, -1)) for c in chars])
    assert (perm >= 0).all()
    assert_matches_hf_ctc(model, hf, tok, audio_batch([8000, 6000], seed=1), perm=perm)


def test_export_refuses_w2vbert(tmp_path: Path) -> None:
    model = audio_finetuned(build_w2vbert("w2vbert_tiny"), TEXTS)
    with pytest.raises(UserError, match="w2vbert"):
        export_hf_ctc(model, tmp_path / "hf")
