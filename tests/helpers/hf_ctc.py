"""A project audio-only CTC model against an HF ``Wav2Vec2ForCTC`` on the same batch: a tiny
confident HF CTC directory, a padded audio batch, and the logits + greedy transcripts check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from avsr.data.batch import AVBatch
from avsr.models.finetuned import FinetunedModel
from avsr.models.xlsr import normalize_waveform
from tests.helpers.hf_models import hf, w2v2_config


def save_hf_ctc(path: Path, chars: list[str], **options: Any) -> tuple[Any, Any]:
    """A tiny confident ``Wav2Vec2ForCTC`` (seed 0; :func:`w2v2_config` with ``options``) over
    the characters ``chars`` (pad id 0), saved to ``path / "hf"`` with its tokenizer and a
    normalising feature extractor. Returns ``(model in eval mode, tokenizer)``."""
    (path / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}), encoding="utf-8")
    tok = hf().Wav2Vec2CTCTokenizer(str(path / "vocab.json"))
    cfg = w2v2_config(vocab_size=len(chars), pad_token_id=0, **options)
    torch.manual_seed(0)
    model = hf().Wav2Vec2ForCTC(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
        # a trained CTC head never emits bos/eos/unk: keep them out of the greedy path
        model.lm_head.bias[[1, 2, 3]] = -1e4
    model.save_pretrained(path / "hf")
    tok.save_pretrained(path / "hf")
    hf().Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path / "hf")
    return model, tok


def audio_batch(lens: list[int], seed: int) -> AVBatch:
    """Two audio-only clips of ``lens`` samples (``0.1 N(0, 1)``, zero-padded to the first)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lens)
    wav = torch.randn(len(lens), lens[0], generator=g) * 0.1
    for i, n in enumerate(lens):
        wav[i, n:] = 0
    return AVBatch(ids=["a", "b"][: len(lens)], indices=torch.arange(len(lens)), audio=wav,
                   audio_lens=lengths, video=None, video_lens=lengths // 640)  # fmt: skip


def hf_logits(model: torch.nn.Module, b: AVBatch) -> torch.Tensor:
    """HF CTC logits ``(B, frames, vocab)`` of ``b``'s audio, normalised per utterance."""
    mask = (torch.arange(b.audio.shape[1])[None] < b.audio_lens[:, None]).long()
    with torch.no_grad():
        return model(normalize_waveform(b.audio, b.audio_lens), attention_mask=mask).logits


def assert_matches_hf_ctc(
    model: FinetunedModel, hf_model: torch.nn.Module, tok: Any, b: AVBatch, *,
    perm: torch.Tensor | None = None, strip: bool = False,
) -> None:  # fmt: skip
    """The project logits (columns in HF's vocabulary order through ``perm``) match HF's within
    1e-4 on every clip's frames, and the greedy transcripts are equal and not all empty
    (HF's decoded with ``skip_special_tokens=False``, stripped when ``strip``)."""
    with torch.no_grad():
        enc = model.encode(b, modality="a")
        ours = model.head(enc.feats)
    theirs = hf_logits(hf_model, b)
    if perm is not None:
        ours = ours[..., perm]
    for i in range(len(b)):
        n = int(enc.lens[i])
        torch.testing.assert_close(ours[i, :n], theirs[i, :n], atol=1e-4, rtol=1e-4)
    theirs_text = [
        tok.decode(ids[: int(enc.lens[i])].tolist(), skip_special_tokens=False)
        for i, ids in enumerate(theirs.argmax(-1))
    ]
    if strip:
        theirs_text = [t.strip() for t in theirs_text]
    ours_text = model.decode(b, modality="a")
    assert any(ours_text) and ours_text == theirs_text
