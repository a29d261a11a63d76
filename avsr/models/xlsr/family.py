"""The wav2vec 2.0 family (XLS-R, wav2vec 2.0 base / large, XLSR-53, MMS) in the encoder
registry: project dirs keep the config under ``encoder``; HF ``model_type`` ``wav2vec2``;
fairseq1 / fairseq2 ``.pt`` files."""

from __future__ import annotations

from typing import Any

from avsr.models.families import EncoderFamily, register_family
from avsr.models.xlsr.config import (
    ARCHS,
    DEFAULT_UNIT_LAYER,
    EncoderConfig,
    arch_config,
    equivalent_archs,
)
from avsr.models.xlsr.loading import assemble, load_fairseq_file, load_hf_xlsr
from avsr.models.xlsr.model import XlsrEncoder, build_encoder


def describe(cfg: EncoderConfig) -> dict[str, Any]:
    """The wav2vec 2.0 rows of ``avsr model info``: CNN, norms, position conv, unit layer."""
    return {
        "conv_layers": [list(c) for c in cfg.conv_layers],
        "hop_samples": cfg.hop,
        "norm_order": cfg.norm_order,
        "extractor_norm": cfg.extractor_norm,
        "pos_conv": f"kernel {cfg.pos_conv_kernel}, groups {cfg.pos_conv_groups}",
        "same_structure": equivalent_archs(cfg),
        "unit_layer": DEFAULT_UNIT_LAYER.get(cfg.arch, max(1, round(cfg.num_layers * 3 / 4))),
    }


WAV2VEC2_FAMILY = EncoderFamily(
    # identity: registry name, key in project configs, HF ``model_type``
    name="wav2vec2", project_key="encoder", hf_model_type="wav2vec2",
    # what is built, and from which named architectures
    config_class=EncoderConfig, encoder_class=XlsrEncoder, archs=ARCHS,
    arch_config=arch_config, build=build_encoder,
    # loading from HF dirs, project key names and fairseq1 checkpoints; ``avsr model info``
    load_hf=load_hf_xlsr, assemble=assemble, load_torch=load_fairseq_file, describe=describe,
)
register_family(WAV2VEC2_FAMILY)
