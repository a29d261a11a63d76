"""Tiny random HF ``transformers`` models (wav2vec 2.0, w2v-BERT 2.0) for the parity tests.

``transformers`` is an optional, heavy test dependency: it is imported on first use, and the
test modules that need it skip themselves with ``pytest.importorskip("transformers")``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch

W2V2_TINY: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)  # fmt: skip
"""The shape of the tiny wav2vec 2.0 models (``Wav2Vec2Config`` keywords; HF's 7-layer CNN)."""

PRE_LN: dict[str, Any] = dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
"""Pre-LN blocks, LayerNorm CNN with bias: wav2vec2 large-lv60, XLSR-53, XLS-R, MMS."""

POST_LN: dict[str, Any] = dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)
"""Post-LN blocks, GroupNorm on the first conv only, no conv bias: wav2vec2 base / large."""

NO_DROPOUT: dict[str, Any] = dict(
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0
)  # fmt: skip
"""Every dropout and the layer drop of a ``Wav2Vec2Config`` off."""

W2VBERT_TINY: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_depthwise_kernel_size=5
)  # fmt: skip
"""The shape of the tiny w2v-BERT 2.0 models (``Wav2Vec2BertConfig`` keywords)."""


def hf() -> ModuleType:
    """The ``transformers`` module (imported here, on first use)."""
    import transformers

    return transformers


def w2v2_config(**options: Any) -> Any:
    """A tiny ``Wav2Vec2Config``: :data:`W2V2_TINY` updated with ``options``."""
    return hf().Wav2Vec2Config(**{**W2V2_TINY, **options})


def w2vbert_config(**options: Any) -> Any:
    """A tiny ``Wav2Vec2BertConfig``: :data:`W2VBERT_TINY` updated with ``options``."""
    return hf().Wav2Vec2BertConfig(**{**W2VBERT_TINY, **options})


def tiny_hf_config(**options: Any) -> Any:
    """The XLS-R-shaped (pre-LN) 3-layer, 48-wide model of the XLS-R parity tests."""
    base: dict[str, Any] = dict(
        hidden_size=48, num_hidden_layers=3, intermediate_size=96, conv_dim=(32,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), mask_time_prob=0.05,
        **PRE_LN, **NO_DROPOUT,
    )  # fmt: skip
    return w2v2_config(**{**base, **options})


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """Non-trivial values everywhere: norm gains ``1 + 0.2 N(0, 1)``, the rest ``scale N(0, 1)``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))


def save_tiny_hf(path: Path, block: dict[str, Any] | None) -> Path:
    """Save an untrained tiny HF model (seed 0) to ``path``: a ``Wav2Vec2Model`` with the block
    options ``block`` (:data:`PRE_LN` or :data:`POST_LN`), or a ``Wav2Vec2BertModel`` for None."""
    torch.manual_seed(0)
    if block is None:
        model = hf().Wav2Vec2BertModel(w2vbert_config())
    else:
        model = hf().Wav2Vec2Model(w2v2_config(**block))
    model.eval().save_pretrained(path)
    return path
