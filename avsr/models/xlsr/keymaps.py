"""Key-name maps (regex tables) from published checkpoint layouts to the project's names.

Project names are those of :class:`~avsr.models.xlsr.model.XlsrEncoder`'s state dict:
``frontend.*`` (fairseq2 ``Wav2Vec2Frontend``), ``encoder.*`` (fairseq2
``StandardTransformerEncoder``) and ``mask_emb``.

Tables are applied with :func:`avsr.models.state_dicts.convert_keys`.
"""

from __future__ import annotations

import re

_FE = "frontend.feature_extractor.layers"
_L = "encoder.layers"

_POS_CONV = [
    (
        r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0",
        "frontend.pos_encoder.conv.weight_g",
    ),
    (
        r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1",
        "frontend.pos_encoder.conv.weight_v",
    ),
    (r"encoder\.pos_conv_embed\.conv\.(weight_g|weight_v|bias)", r"frontend.pos_encoder.conv.\1"),
]


def hf_table(*, extractor_norm: str = "layer", norm_order: str = "pre") -> list[tuple[str, str]]:
    """HF transformers ``Wav2Vec2Model`` names -> project names."""
    table: list[tuple[str, str]] = [(r"masked_spec_embed", "mask_emb")]
    if extractor_norm == "group":
        table.append(
            (
                r"feature_extractor\.conv_layers\.0\.layer_norm\.(weight|bias)",
                _FE + r".0.group_norm.\1",
            )
        )
    table += [
        (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", _FE + r".\1.conv.\2"),
        (
            r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)",
            _FE + r".\1.layer_norm.\2",
        ),
        (r"feature_projection\.layer_norm\.(weight|bias)", r"frontend.post_extract_layer_norm.\1"),
        (r"feature_projection\.projection\.(weight|bias)", r"frontend.model_dim_proj.\1"),
        *_POS_CONV,
        (
            r"encoder\.layer_norm\.(weight|bias)",
            r"encoder.layer_norm.\1" if norm_order == "pre" else r"frontend.layer_norm.\1",
        ),
        (
            r"encoder\.layers\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)",
            _L + r".\1.self_attn.\2_proj.\3",
        ),
        (
            r"encoder\.layers\.(\d+)\.attention\.out_proj\.(weight|bias)",
            _L + r".\1.self_attn.output_proj.\2",
        ),
        (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", _L + r".\1.self_attn_layer_norm.\2"),
        (
            r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)",
            _L + r".\1.ffn.inner_proj.\2",
        ),
        (
            r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)",
            _L + r".\1.ffn.output_proj.\2",
        ),
        (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", _L + r".\1.ffn_layer_norm.\2"),
    ]
    return table


HF_PREFIXES: tuple[str, ...] = ("wav2vec2.",)
"""Prefixes of the encoder inside ``Wav2Vec2ForPreTraining`` / ``Wav2Vec2ForCTC``."""

HF_IGNORE: tuple[str, ...] = (
    r"lm_head\..*",
    r"quantizer\..*",
    r"project_hid\..*",
    r"project_q\..*",
    r"dropout_features.*",
    r"classifier\..*",
    r"projector\..*",
    r"adapter\..*",
    r"masked_spec_embed_unused",
    r"encoder\.layers\.\d+\.adapter_layer\..*",
)
"""HF keys that are not part of the pretrained encoder (``adapter_layer``: the MMS-1B-all
per-language attention adapters, dropped with a warning by the loader)."""


def is_hf_adapter(key: str) -> bool:
    """An MMS attention-adapter weight (``...encoder.layers.N.adapter_layer.*``)."""
    return re.fullmatch(r"(wav2vec2\.)?encoder\.layers\.\d+\.adapter_layer\..*", key) is not None


def fairseq1_table(
    *, extractor_norm: str = "layer", norm_order: str = "pre"
) -> list[tuple[str, str]]:
    """fairseq1 ``Wav2Vec2Model`` names -> project names."""
    table: list[tuple[str, str]] = [(r"mask_emb", "mask_emb")]
    if extractor_norm == "group":
        table.append(
            (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", _FE + r".0.group_norm.\1")
        )
    table += [
        (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", _FE + r".\1.conv.\2"),
        (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", _FE + r".\1.layer_norm.\2"),
        (r"layer_norm\.(weight|bias)", r"frontend.post_extract_layer_norm.\1"),
        (r"post_extract_proj\.(weight|bias)", r"frontend.model_dim_proj.\1"),
        (r"encoder\.pos_conv\.0\.(weight_g|weight_v|bias)", r"frontend.pos_encoder.conv.\1"),
        (
            r"encoder\.layer_norm\.(weight|bias)",
            r"encoder.layer_norm.\1" if norm_order == "pre" else r"frontend.layer_norm.\1",
        ),
        (
            r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)",
            _L + r".\1.self_attn.\2_proj.\3",
        ),
        (
            r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)",
            _L + r".\1.self_attn.output_proj.\2",
        ),
        (
            r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
            _L + r".\1.self_attn_layer_norm.\2",
        ),
        (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", _L + r".\1.ffn.inner_proj.\2"),
        (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", _L + r".\1.ffn.output_proj.\2"),
        (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", _L + r".\1.ffn_layer_norm.\2"),
    ]
    return table


FAIRSEQ1_PREFIXES: tuple[str, ...] = ("w2v_encoder.w2v_model.",)
"""Prefix of the pretrained model inside a fairseq1 fine-tuned (CTC) checkpoint."""

FAIRSEQ1_IGNORE: tuple[str, ...] = (
    r"quantizer\..*",
    r"project_q\..*",
    r"final_proj\..*",
    r"w2v_encoder\.proj\..*",
    r"label_embs_concat",
    r"_float_tensor",
    r"target_glu\..*",
)


def fairseq2_table() -> list[tuple[str, str]]:
    """fairseq2 ``Wav2Vec2Model`` names -> project names."""
    return [
        (r"encoder_frontend\.(.*)", r"frontend.\1"),
        (r"encoder\.(.*)", r"encoder.\1"),
        (r"masker\.temporal_mask_embed", "mask_emb"),
    ]


FAIRSEQ2_IGNORE: tuple[str, ...] = (r"quantizer\..*", r"final_proj\..*", r"final_target_proj\..*")
