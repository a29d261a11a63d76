"""Configuration of the w2v-BERT 2.0 conformer encoder and its named shapes.

========== ====== ===== ===== ===== ==============
arch       layers dim   ffn   heads  parameters
========== ====== ===== ===== ===== ==============
w2vbert_2  24     1024  4096  16     ~580M
w2vbert_tiny 2    64    128   4      (tests)
========== ====== ===== ===== ===== ==============
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avsr.config import ConfigError
from avsr.models.audio_encoder import EncoderConfigBase, config_of_arch


@dataclass(kw_only=True)
class W2vBertConfig(EncoderConfigBase):
    """Shape of a w2v-BERT 2.0 encoder (HF ``Wav2Vec2BertModel``, relative-key attention)."""

    arch: str = "custom"
    """Name of the shape (``w2vbert_2``, ``w2vbert_tiny`` or ``custom``)."""
    family: str = "w2vbert"
    """Encoder family written into saved configs (always ``w2vbert``)."""
    model_dim: int = 1024
    """Width of the conformer blocks."""
    num_layers: int = 24
    """Number of conformer blocks."""
    num_heads: int = 16
    """Attention heads per block."""
    ffn_dim: int = 4096
    """Inner width of the feed-forward networks."""
    conv_kernel: int = 31
    """Depthwise (causal) convolution kernel of the conformer convolution module."""
    left_max_positions: int = 64
    """Clamp of the relative distances to the left (``relative_key`` attention)."""
    right_max_positions: int = 8
    """Clamp of the relative distances to the right (``relative_key`` attention)."""
    n_mels: int = 80
    """Mel bins of the fixed filterbank."""
    stack: int = 2
    """Filterbank frames stacked per encoder frame (2: 160 dims at 50 Hz)."""
    dropout: float = 0.0
    """Dropout on block outputs (HF ``hidden_dropout``)."""
    attn_dropout: float = 0.0
    """Dropout on the attention weights and the attention output."""
    ffn_dropout: float = 0.0
    """Dropout on the FFN inner activations."""
    conv_dropout: float = 0.1
    """Dropout on the convolution module output."""
    feature_dropout: float = 0.0
    """Dropout on the projected filterbank features."""
    layer_drop: float = 0.0
    """Probability of skipping a whole block in training (LayerDrop)."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm."""

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
    """The config of a named w2v-BERT shape, with optional field overrides."""
    return config_of_arch(W2VBERT_ARCHS, name, overrides, what="w2v-BERT")
