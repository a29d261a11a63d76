"""A tiny, untrained but real fine-tuned model directory for the evaluation and
transcription tests (built in about a second; weights from a fixed seed)."""

from __future__ import annotations

from pathlib import Path

WORDS = ["bin", "blue", "at", "one", "now", "lay", "red", "by", "two", "please"]


def make_tiny_finetuned(
    path: Path, *, task: str = "avsr", head: str = "ctc", modality: str = "av"
) -> Path:
    """Save a tiny AV encoder (1 Transformer layer, 32 dims, narrow ResNet) + CTC head."""
    import torch

    from avsr.models.av.config import AVModelConfig, VisualSection
    from avsr.models.av.model import build_av_encoder
    from avsr.models.finetuned import FinetunedConfig, FinetunedModel, save_finetuned
    from avsr.models.heads.decoder import DecoderConfig
    from avsr.text import train_tokenizer

    cfg = AVModelConfig(
        visual=VisualSection(stem_channels=8, widths=[8, 8, 16, 16], blocks=[1, 1, 1, 1])
    )
    cfg.encoder.overrides = {"model_dim": 32, "num_layers": 1, "num_heads": 2, "ffn_dim": 64}
    torch.manual_seed(0)
    encoder = build_av_encoder(cfg)
    texts = [" ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(4)) for i in range(20)]
    tok = train_tokenizer(texts, vocab_size=40)
    small_decoder = DecoderConfig(num_layers=1, model_dim=32, ffn_dim=64, num_heads=2, max_len_b=8)
    ft = FinetunedConfig(task=task, head=head, modality=modality, decoder=small_decoder)  # type: ignore[arg-type]
    model = FinetunedModel(encoder, tok, ft)
    return save_finetuned(model.eval(), path)
