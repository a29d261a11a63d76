"""Read w2v-BERT 2.0 encoders: HF ``Wav2Vec2BertModel`` / ``Wav2Vec2BertForCTC`` dirs, and
project-named weights (:func:`assemble`).

The family handler (:mod:`avsr.models.w2vbert.family`) routes HF dirs whose ``model_type``
is ``wav2vec2-bert`` and project dirs with a ``w2vbert`` config here, so every loader of
audio encoders (``avsr model info|convert``, the AV model) accepts w2v-BERT.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.audio_encoder import same_structure
from avsr.models.state_dicts import KeyMapError, compare_state, convert_keys, read_hf_weights
from avsr.models.w2vbert.config import W2VBERT_ARCHS, W2vBertConfig
from avsr.models.w2vbert.model import W2vBertEncoder

log = get_logger(__name__)

MODEL_TYPE = "wav2vec2-bert"

HF_TABLE: list[tuple[str, str]] = [
    (r"masked_spec_embed", "mask_emb"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"frontend.layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"frontend.proj.\1"),
    (r"encoder\.layers\.(\d+)\.(.+)", r"encoder.layers.\1.\2"),
]
HF_PREFIXES: tuple[str, ...] = ("wav2vec2_bert.",)
HF_IGNORE: tuple[str, ...] = (r"lm_head\..*", r"classifier\..*", r"projector\..*")
UNSUPPORTED: tuple[str, ...] = (r"adapter\..*", r"intermediate_ffn\..*")
"""Parts that change the encoder output (``add_adapter``, ``use_intermediate_ffn_before_adapter``)."""


def config_from_hf(hf: Mapping[str, Any], where: str = "config.json") -> W2vBertConfig:
    """W2vBertConfig of an HF ``Wav2Vec2BertConfig`` (config.json)."""
    if hf.get("model_type") != MODEL_TYPE:
        raise UserError(f"{where}: model_type {hf.get('model_type')!r} is not {MODEL_TYPE!r}")
    if hf.get("position_embeddings_type", "relative_key") != "relative_key":
        raise UserError(
            f"{where}: position_embeddings_type {hf['position_embeddings_type']!r} is not "
            "supported (w2v-BERT 2.0 uses 'relative_key')"
        )
    if hf.get("add_adapter") or hf.get("use_intermediate_ffn_before_adapter"):
        raise UserError(f"{where}: add_adapter / intermediate FFN models are not supported")
    if hf.get("hidden_act", "swish") not in ("swish", "silu"):
        raise UserError(f"{where}: hidden_act {hf['hidden_act']!r} is not supported (swish)")
    if int(hf.get("feature_projection_input_dim", 160)) != 160:
        raise UserError(f"{where}: feature_projection_input_dim must be 160 (80 mels x 2)")
    try:
        cfg = W2vBertConfig(
            model_dim=int(hf.get("hidden_size", 1024)),
            num_layers=int(hf.get("num_hidden_layers", 24)),
            num_heads=int(hf.get("num_attention_heads", 16)),
            ffn_dim=int(hf.get("intermediate_size", 4096)),
            conv_kernel=int(hf.get("conv_depthwise_kernel_size", 31)),
            left_max_positions=int(hf.get("left_max_position_embeddings", 64)),
            right_max_positions=int(hf.get("right_max_position_embeddings", 8)),
            dropout=float(hf.get("hidden_dropout", 0.0)),
            attn_dropout=float(hf.get("attention_dropout", 0.0)),
            ffn_dropout=float(hf.get("activation_dropout", 0.0)),
            conv_dropout=float(hf.get("conformer_conv_dropout", 0.1)),
            feature_dropout=float(hf.get("feat_proj_dropout", 0.0)),
            layer_drop=float(hf.get("layerdrop", 0.0)),
            layer_norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
        )
        cfg.validate()
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: unexpected value in the wav2vec2-bert config: {exc}") from exc
    return _name_arch(cfg)


_STRUCTURE = ("model_dim", "num_layers", "num_heads", "ffn_dim", "conv_kernel")


def _name_arch(cfg: W2vBertConfig) -> W2vBertConfig:
    """Set ``cfg.arch`` to the first named shape of the same structure (else ``custom``)."""
    names = same_structure(W2VBERT_ARCHS, cfg, _STRUCTURE)
    cfg.arch = names[0] if names else "custom"
    return cfg


def assemble(
    config: W2vBertConfig, state: Mapping[str, torch.Tensor], where: Path
) -> W2vBertEncoder:
    """Build on the meta device and load ``state``, checking every key and shape."""
    with torch.device("meta"):
        model = W2vBertEncoder(config)
    expected = model.state_dict()
    state = dict(state)
    if "mask_emb" not in state:
        log.warning("%s: no mask embedding in the checkpoint; initialising it randomly", where)
        state["mask_emb"] = torch.empty(config.model_dim).uniform_()
    diff = compare_state(expected, state)
    if diff:
        raise UserError(f"{where}: weights do not fit the w2v-BERT config: {diff.summary()}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    return model.eval()


def load_hf_w2vbert(path: Path, hf: Mapping[str, Any]) -> W2vBertEncoder:
    """An HF ``Wav2Vec2BertModel`` / ``...ForCTC`` dir (config.json already read as ``hf``)."""
    config = config_from_hf(hf, str(path / "config.json"))
    state = read_hf_weights(path)
    bad = [
        k
        for k in state
        if any(re.fullmatch(p, k.removeprefix("wav2vec2_bert.")) for p in UNSUPPORTED)
    ]
    if bad:
        raise UserError(f"{path}: adapter / intermediate FFN weights are not supported ({bad[0]})")
    try:
        mapped = convert_keys(state, HF_TABLE, prefixes=HF_PREFIXES, ignore=HF_IGNORE)
    except KeyMapError as exc:
        raise UserError(f"{path}: {exc}") from exc
    return assemble(config, mapped, path)
