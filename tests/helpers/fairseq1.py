"""A test-only writer of fairseq1's wav2vec 2.0 checkpoint layout, from an HF model."""

from __future__ import annotations

import re
from typing import Any

import torch

# HF -> fairseq1 names (test-only writer of the fairseq1 layout). The CNN norms differ by
# extractor mode: ``layer_norm`` has a LayerNorm in every conv block (``<i>.2.1``), ``default``
# a GroupNorm in the first block only (``0.2``).
_CONV_NORM = {
    "layer": (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(.*)", r"feature_extractor.conv_layers.\1.2.1.\2"),
    "group": (r"feature_extractor\.conv_layers\.0\.layer_norm\.(.*)", r"feature_extractor.conv_layers.0.2.\1"),
}  # fmt: skip
_HF_TO_FAIRSEQ1 = [
    (r"masked_spec_embed", "mask_emb"),
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(.*)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"feature_projection\.layer_norm\.(.*)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(.*)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.layer_norm\.(.*)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(.*)", r"encoder.layers.\1.self_attn.\2"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(.*)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(.*)", r"encoder.layers.\1.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(.*)", r"encoder.layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(.*)", r"encoder.layers.\1.final_layer_norm.\2"),
]  # fmt: skip


def hf_to_fairseq1(state: dict[str, torch.Tensor], extractor: str = "layer") -> dict[str, torch.Tensor]:
    """An HF ``Wav2Vec2Model`` state dict under fairseq1's names (``extractor``: the CNN norm,
    ``layer`` or ``group``); every key must have a fairseq1 name."""
    table = [_CONV_NORM[extractor], *_HF_TO_FAIRSEQ1]
    out = {}
    for key, value in state.items():
        for pat, repl in table:
            m = re.fullmatch(pat, key)
            if m:
                out[m.expand(repl)] = value.clone()
                break
        else:
            raise AssertionError(f"no fairseq1 name for {key}")
    return out


def fairseq1_cfg(c: Any) -> dict[str, object]:
    """The fairseq1 ``cfg.model`` of the ``Wav2Vec2Config`` ``c`` (no dropout)."""
    layers = " + ".join(
        f"[({d}, {k}, {s})]" for d, k, s in zip(c.conv_dim, c.conv_kernel, c.conv_stride)
    )
    return {
        "_name": "wav2vec2",
        "extractor_mode": "layer_norm" if c.feat_extract_norm == "layer" else "default",
        "encoder_layers": c.num_hidden_layers,
        "encoder_embed_dim": c.hidden_size,
        "encoder_ffn_embed_dim": c.intermediate_size,
        "encoder_attention_heads": c.num_attention_heads,
        "conv_feature_layers": layers,
        "conv_bias": c.conv_bias,
        "layer_norm_first": c.do_stable_layer_norm,
        "conv_pos": c.num_conv_pos_embeddings,
        "conv_pos_groups": c.num_conv_pos_embedding_groups,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "dropout_input": 0.0,
        "encoder_layerdrop": 0.0,
        "feature_grad_mult": 0.1,
    }
