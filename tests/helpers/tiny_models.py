"""Tiny, untrained but real project models built from a fixed seed: the XLS-R ``tiny`` encoder,
the AV encoder with a narrow lip ResNet, audio-only fine-tuned models, and a saved fine-tuned AV
model directory (each built in about a second)."""

from __future__ import annotations

from pathlib import Path

import torch

from avsr.models.av.config import AVModelConfig, VisualSection
from avsr.models.av.io import save_av_model
from avsr.models.av.model import AVEncoder, build_av_encoder
from avsr.models.encoders import save_encoder
from avsr.models.finetuned import FinetunedConfig, FinetunedModel, save_finetuned
from avsr.models.heads.decoder import DecoderConfig
from avsr.models.xlsr import XlsrEncoder, build_encoder
from avsr.text import train_tokenizer

WORDS = ["bin", "blue", "at", "one", "now", "lay", "red", "by", "two", "please"]


def tiny_xlsr(seed: int = 0) -> XlsrEncoder:
    """The XLS-R ``tiny`` arch (seed ``seed``), in eval mode."""
    torch.manual_seed(seed)
    return build_encoder("tiny").eval()


def save_tiny_xlsr(path: Path) -> Path:
    """Save :func:`tiny_xlsr` as a project encoder dir."""
    save_encoder(tiny_xlsr(), path)
    return path


def tiny_visual() -> VisualSection:
    """A narrow ResNet-18 lip encoder (stem 4 channels, widths 4/8/8/16)."""
    return VisualSection(stem_channels=4, widths=[4, 8, 8, 16])


def tiny_av_config(**kw: object) -> AVModelConfig:
    """``AVModelConfig(**kw)`` with :func:`tiny_visual` unless ``visual`` is given."""
    kw.setdefault("visual", tiny_visual())
    return AVModelConfig(**kw)  # type: ignore[arg-type]


def tiny_av_encoder(seed: int = 0, **kw: object) -> AVEncoder:
    """An AV encoder (seed ``seed``): XLS-R ``tiny`` + the lip encoder of :func:`tiny_av_config`."""
    torch.manual_seed(seed)
    return build_av_encoder(tiny_av_config(**kw), build_encoder("tiny"))


def save_tiny_av_init(path: Path) -> Path:
    """Save :func:`tiny_av_encoder` as an AV model dir (an ``--init`` for fine-tuning)."""
    return save_av_model(tiny_av_encoder(), path)


def audio_finetuned(
    xlsr: torch.nn.Module, texts: list[str], *, head: str = "ctc", modalities: tuple[str, ...] = ("audio",)
) -> FinetunedModel:
    """A fine-tuned model on ``xlsr`` (fusion built for ``modalities``) decoding audio only,
    with a tokenizer trained on ``texts``."""
    enc = build_av_encoder(AVModelConfig(modalities=list(modalities)), xlsr)  # type: ignore[arg-type]
    return FinetunedModel(enc, train_tokenizer(texts), FinetunedConfig(head=head, modality="a"))  # type: ignore[arg-type]


def confident_ctc(model: FinetunedModel) -> FinetunedModel:
    """Scale the CTC head up (non-empty greedy transcripts) and bar bos/eos/unk from it, in eval
    mode: a trained CTC head never emits them (no target has them), and HF drops them before
    merging repeats where the project drops them after."""
    with torch.no_grad():
        model.head.proj.weight.mul_(30.0)
        model.head.proj.bias[[0, 2, 3]] = -1e4
    return model.eval()


def make_tiny_finetuned(
    path: Path, *, task: str = "avsr", head: str = "ctc", modality: str = "av", ctc_weight: float = 0.0
) -> Path:
    """Save a tiny AV encoder (1 Transformer layer, 32 dims, narrow ResNet) + CTC head (or
    ``head="s2s"``: a 1-layer decoder, with a CTC branch when ``ctc_weight`` > 0)."""
    cfg = AVModelConfig(
        visual=VisualSection(stem_channels=8, widths=[8, 8, 16, 16], blocks=[1, 1, 1, 1])
    )
    cfg.encoder.overrides = {"model_dim": 32, "num_layers": 1, "num_heads": 2, "ffn_dim": 64}
    torch.manual_seed(0)
    encoder = build_av_encoder(cfg)
    texts = [" ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(4)) for i in range(20)]
    tok = train_tokenizer(texts, vocab_size=40)
    small_decoder = DecoderConfig(num_layers=1, model_dim=32, ffn_dim=64, num_heads=2, max_len_b=8)
    ft = FinetunedConfig(task=task, head=head, modality=modality, decoder=small_decoder, ctc_weight=ctc_weight)  # type: ignore[arg-type]
    model = FinetunedModel(encoder, tok, ft)
    return save_finetuned(model.eval(), path)
