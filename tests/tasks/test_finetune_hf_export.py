"""Audio-only CTC model -> HF Wav2Vec2ForCTC directory: same logits and transcripts in transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.errors import UserError
from avsr.models.finetuned import FinetunedModel
from avsr.models.hf_ctc import export_hf_ctc, load_hf_ctc
from avsr.models.xlsr import build_encoder
from tests.helpers.hf_ctc import assert_matches_hf_ctc, audio_batch, save_hf_ctc
from tests.helpers.hf_models import PRE_LN
from tests.helpers.tiny_models import audio_finetuned, confident_ctc

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon", "set white with p four"]


def _model(modalities: tuple[str, ...], head: str = "ctc") -> FinetunedModel:
    torch.manual_seed(0)
    model = audio_finetuned(build_encoder("tiny"), TEXTS, head=head, modalities=modalities)
    return confident_ctc(model) if head == "ctc" else model.eval()


def test_export_matches_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    model = _model(("audio",))
    out = export_hf_ctc(model, tmp_path / "hf")
    hf = transformers.Wav2Vec2ForCTC.from_pretrained(out).eval()
    tok = transformers.Wav2Vec2CTCTokenizer.from_pretrained(out)
    assert_matches_hf_ctc(model, hf, tok, audio_batch([16000, 11000], seed=1), strip=True)


def test_export_refuses_av_and_seq2seq(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="audio-only"):
        export_hf_ctc(_model(("audio", "video")), tmp_path / "x")
    with pytest.raises(UserError, match="CTC"):
        export_hf_ctc(_model(("audio",), head="s2s"), tmp_path / "y")


def test_hf_ctc_checkpoint_loads_as_a_project_model(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "'", "É"]
    hf, tok = save_hf_ctc(tmp_path, chars, num_attention_heads=2, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3),
                          conv_stride=(5, 2, 2), **PRE_LN)  # fmt: skip
    model = load_hf_ctc(tmp_path / "hf")
    perm = torch.tensor([model.hf_id_map[i] for i in range(len(chars))])
    assert_matches_hf_ctc(model, hf, tok, audio_batch([8000, 6000], seed=3), perm=perm)
