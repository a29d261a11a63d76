"""w2v-BERT 2.0 (conformer on a fixed 80-mel x 2 filterbank front end) as an audio encoder.

Public API::

    W2vBertConfig, W2VBERT_ARCHS, w2vbert_arch_config(name)
    W2vBertEncoder(config)   # same interface as XlsrEncoder where the AV model uses it
    W2vBertFbank             # the SeamlessM4TFeatureExtractor computation, in torch
    build_w2vbert(config | arch), load_hf_w2vbert(dir, hf_config)
    W2VBERT_FAMILY           # this family's handler in avsr.models.families

``avsr.models.encoders.load_encoder`` loads w2v-BERT dirs too (HF ``model_type``
``wav2vec2-bert``, project dirs with a ``w2vbert`` config). See docs/encoders.md.
"""

from avsr.models.w2vbert.config import W2VBERT_ARCHS, W2vBertConfig, w2vbert_arch_config
from avsr.models.w2vbert.family import W2VBERT_FAMILY
from avsr.models.w2vbert.fbank import W2vBertFbank
from avsr.models.w2vbert.loading import load_hf_w2vbert
from avsr.models.w2vbert.model import W2vBertEncoder, build_w2vbert

__all__ = [
    "W2VBERT_ARCHS",
    "W2VBERT_FAMILY",
    "W2vBertConfig",
    "W2vBertEncoder",
    "W2vBertFbank",
    "build_w2vbert",
    "load_hf_w2vbert",
    "w2vbert_arch_config",
]
