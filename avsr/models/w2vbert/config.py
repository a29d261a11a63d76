"""Configuration of the w2v-BERT 2.0 conformer encoder and its named shapes.

========== ====== ===== ===== ===== ==============
arch       layers dim   ffn   heads  parameters
========== ====== ===== ===== ===== ==============
w2vbert_2  24     1024  4096  16     ~580M
w2vbert_tiny 2    64    128   4      (tests)
========== ====== ===== ===== ===== ==============
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avsr.config import ConfigError, from_dict, to_dict
from avsr.errors import UserError


@dataclass(kw_only=True)
class W2vBertConfig:
    """Shape of a w2v-BERT 2.0 encoder (HF ``Wav2Vec2BertModel``, relative-key attention)."""

    arch: str = "custom"
    family: str = "w2vbert"
    model_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ffn_dim: int = 4096
    conv_kernel: int = 31
    """Depthwise (causal) convolution kernel of the conformer convolution module."""
    left_max_positions: int = 64
    right_max_positions: int = 8
    """Clamp of the relative distances of the ``relative_key`` attention."""
    n_mels: int = 80
    stack: int = 2
    """Filterbank frames stacked per encoder frame (2: 160 dims at 50 Hz)."""
    dropout: float = 0.0
    """Dropout on block outputs (HF ``hidden_dropout``)."""
    attn_dropout: float = 0.0
    ffn_dropout: float = 0.0
    conv_dropout: float = 0.1
    feature_dropout: float = 0.0
    layer_drop: float = 0.0
    layer_norm_eps: float = 1e-5

    @property
    def feature_dim(self) -> int:
        """Width of the stacked filterbank features (160)."""
        return self.n_mels * self.stack

    @property
    def hop(self) -> int:
        """Samples between two output frames (320: 50 Hz)."""
        return 160 * self.stack

    def validate(self) -> None:
        if self.model_dim % self.num_heads:
            raise ConfigError(
                f"model_dim {self.model_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.conv_kernel % 2 == 0:
            raise ConfigError(f"conv_kernel must be odd, got {self.conv_kernel}")
        for name in ("model_dim", "num_layers", "num_heads", "ffn_dim", "n_mels", "stack"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.family != "w2vbert":
            raise ConfigError(f"family must be 'w2vbert', got {self.family!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> W2vBertConfig:
        cfg = from_dict(cls, data)
        cfg.validate()
        return cfg


W2VBERT_ARCHS: dict[str, Callable[[], W2vBertConfig]] = {
    "w2vbert_2": lambda: W2vBertConfig(arch="w2vbert_2"),
    "w2vbert_tiny": lambda: W2vBertConfig(
        arch="w2vbert_tiny",
        model_dim=64,
        num_layers=2,
        num_heads=4,
        ffn_dim=128,
        conv_kernel=5,
        conv_dropout=0.0,
    ),  # fmt: skip
}


def w2vbert_arch_config(name: str, **overrides: Any) -> W2vBertConfig:
    if name not in W2VBERT_ARCHS:
        raise UserError(
            f"unknown w2v-BERT arch '{name}' (known: {', '.join(sorted(W2VBERT_ARCHS))})"
        )
    cfg = W2VBERT_ARCHS[name]()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    cfg.validate()
    return cfg
