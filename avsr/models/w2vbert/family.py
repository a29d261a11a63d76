"""The w2v-BERT 2.0 family in the encoder registry: project dirs keep the config under
``w2vbert``; HF ``model_type`` ``wav2vec2-bert``; no fairseq checkpoints."""

from __future__ import annotations

from typing import Any

from avsr.models.families import EncoderFamily, register_family
from avsr.models.w2vbert.config import W2VBERT_ARCHS, W2vBertConfig, w2vbert_arch_config
from avsr.models.w2vbert.loading import MODEL_TYPE, assemble, load_hf_w2vbert
from avsr.models.w2vbert.model import W2vBertEncoder, build_w2vbert


def describe(cfg: W2vBertConfig) -> dict[str, Any]:
    """The w2v-BERT rows of ``avsr model info``: filterbank, conformer conv, positions."""
    return {
        "front_end": f"fixed fbank: {cfg.n_mels} log-mel x {cfg.stack} stacked",
        "conv_kernel": cfg.conv_kernel,
        "relative_positions": f"[-{cfg.left_max_positions}, {cfg.right_max_positions}]",
        "hop_samples": cfg.hop,
        "unit_layer": max(1, round(cfg.num_layers * 3 / 4)),
    }


W2VBERT_FAMILY = EncoderFamily(
    # identity: registry name, key in project configs, HF ``model_type``
    name="w2vbert", project_key="w2vbert", hf_model_type=MODEL_TYPE,
    # what is built, and from which named architectures
    config_class=W2vBertConfig, encoder_class=W2vBertEncoder, archs=W2VBERT_ARCHS,
    arch_config=w2vbert_arch_config, build=build_w2vbert,
    # loading from HF dirs and project key names (no fairseq1 release); ``avsr model info``
    load_hf=load_hf_w2vbert, assemble=assemble, describe=describe,
)
register_family(W2VBERT_FAMILY)
