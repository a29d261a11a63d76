"""XLS-R-family (wav2vec 2.0) audio encoders on fairseq2 0.8.1's wav2vec 2.0 building blocks.

Public API::

    EncoderConfig, ARCHS, arch_config(name), register_arch(name, factory)
    XlsrEncoder(config)            # .frontend, .encoder, .mask_emb, .config,
                                   # .feature_dim, .model_dim, frame_count(n),
                                   # forward(wav, seq_lens, layer=None, *, normalize=False)
    build_encoder(config | arch, *, device=None, dtype=None)
    normalize_waveform(wav, seq_lens)
    WAV2VEC2_FAMILY                # this family's handler in avsr.models.families

Loading and saving in any format, for every family: :mod:`avsr.models.encoders`
(``load_encoder``, ``save_encoder``, ``resolve_encoder``).
"""

from avsr.models.xlsr.config import (
    ARCHS,
    DEFAULT_UNIT_LAYER,
    EncoderConfig,
    arch_config,
    register_arch,
)
from avsr.models.xlsr.family import WAV2VEC2_FAMILY
from avsr.models.xlsr.model import XlsrEncoder, build_encoder, conv_frame_count, normalize_waveform

__all__ = [
    "ARCHS",
    "DEFAULT_UNIT_LAYER",
    "WAV2VEC2_FAMILY",
    "EncoderConfig",
    "XlsrEncoder",
    "arch_config",
    "build_encoder",
    "conv_frame_count",
    "normalize_waveform",
    "register_arch",
]
