"""The audio-visual XLAVS-R model: XLS-R CNN (or filterbanks) + ResNet-18 lip encoder,
fusion, span masking, modality dropout, the XLS-R Transformer and a HuBERT-style
unit prediction head.

Public API (imported lazily so that ``import avsr.models.av`` stays light):

- ``AVModelConfig`` (``config``), ``AVEncoder``, ``AVEncoderOutput``,
  ``AVPretrainModel``, ``build_av_encoder`` (``model``);
- ``save_av_model``, ``load_av_encoder``, ``load_av_pretrain_model``,
  ``save_stage0_encoder`` (``io``);
- ``LipEncoder``, ``import_avhubert_visual`` (``visual``); ``FbankFrontend`` (``fbank``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AVModelConfig": "config",
    "AVEncoder": "model",
    "AVEncoderOutput": "model",
    "AVPretrainModel": "model",
    "build_av_encoder": "model",
    "save_av_model": "io",
    "load_av_encoder": "io",
    "load_av_pretrain_model": "io",
    "save_stage0_encoder": "io",
    "LipEncoder": "visual",
    "import_avhubert_visual": "visual",
    "FbankFrontend": "fbank",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"avsr.models.av.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'avsr.models.av' has no attribute {name!r}")
