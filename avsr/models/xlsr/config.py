"""Encoder configuration and the registry of named XLS-R shapes.

The shapes follow the published XLS-R models (wav2vec 2.0, pre-LN):

========== ====== ===== ===== =====
arch       layers dim   ffn   heads
========== ====== ===== ===== =====
xlsr_300m  24     1024  4096  16
xlsr_1b    48     1280  5120  16
xlsr_2b    48     1920  7680  16
tiny       4      128   256   4      (CPU tests and the demo)
========== ====== ===== ===== =====

The other wav2vec 2.0-family encoders (``docs/encoders.md``):

================ ====== ===== ===== ===== ======== ========= =========
arch             layers dim   ffn   heads norm     extractor conv bias
================ ====== ===== ===== ===== ======== ========= =========
w2v2_base        12     768   3072  12    post-LN  group     no
w2v2_large       24     1024  4096  16    post-LN  group     no
w2v2_large_lv60  24     1024  4096  16    pre-LN   layer     yes
xlsr_53          24     1024  4096  16    pre-LN   layer     yes
mms_300m         24     1024  4096  16    pre-LN   layer     yes
mms_1b           48     1280  5120  16    pre-LN   layer     yes
================ ====== ===== ===== ===== ======== ========= =========

``w2v2_large`` is also wav2vec2-large-960h (the same encoder with a CTC head).
``w2v2_large_lv60``, ``xlsr_53`` and ``mms_300m`` have exactly the structure of
``xlsr_300m`` and ``mms_1b`` that of ``xlsr_1b``: a loaded checkpoint's config is
read from the checkpoint (HF config.json / fairseq1 cfg), and its ``arch`` is the
first registered name of that structure (``equivalent_archs`` lists the others).

Every shape keeps the 7-layer CNN with kernels (10,3,3,3,3,2,2) and strides
(5,2,2,2,2,2,2): receptive field 400 samples, hop 320, 50 frames/s at 16 kHz.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from avsr.config import ConfigError
from avsr.models.audio_encoder import EncoderConfigBase, config_of_arch, same_structure

CONV_KERNELS: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)


def conv_stack(channels: int) -> list[tuple[int, int, int]]:
    """The wav2vec 2.0 CNN with ``channels`` channels: ``[(dim, kernel, stride), ...]``."""
    return [(channels, k, s) for k, s in zip(CONV_KERNELS, CONV_STRIDES)]


@dataclass(kw_only=True)
class EncoderConfig(EncoderConfigBase):
    """Shape and regularisation of an XLS-R-style (wav2vec 2.0) audio encoder."""

    arch: str = "custom"
    """Name of the shape (``xlsr_300m``, ``xlsr_1b``, ``xlsr_2b``, ``tiny``, or ``custom``)."""

    model_dim: int = 1024
    """Width of the Transformer (and of the projected CNN features)."""
    num_layers: int = 24
    """Number of Transformer blocks."""
    num_heads: int = 16
    """Attention heads per block."""
    ffn_dim: int = 4096
    """Inner width of the feed-forward networks."""

    conv_layers: list[tuple[int, int, int]] = field(default_factory=lambda: conv_stack(512))
    """CNN feature extractor: ``(output channels, kernel, stride)`` per layer."""

    conv_bias: bool = True
    """Whether the CNN convolutions have a bias."""
    extractor_norm: Literal["layer", "group"] = "layer"
    """``layer``: LayerNorm after every conv (XLS-R); ``group``: GroupNorm after the first only."""

    norm_order: Literal["pre", "post"] = "pre"
    """``pre``: pre-LN blocks and a final encoder LayerNorm (XLS-R). ``post``: post-LN blocks
    with a LayerNorm before the first block (wav2vec 2.0 base)."""

    pos_conv_kernel: int = 128
    """Kernel of the convolutional position encoder."""
    pos_conv_groups: int = 16
    """Groups of the convolutional position encoder."""
    pos_conv_depth: int = 1
    """Layers of the convolutional position encoder (1 only)."""

    dropout: float = 0.1
    """Dropout on block outputs and on the front-end output."""
    attn_dropout: float = 0.1
    """Dropout on the attention weights."""
    ffn_dropout: float = 0.0
    """Dropout on the FFN inner activations."""
    feature_dropout: float = 0.0
    """Dropout on the projected CNN features (fairseq ``dropout_input``)."""
    layer_drop: float = 0.0
    """Probability of skipping a whole block in training (LayerDrop)."""
    feature_grad_scale: float = 1.0
    """Gradient scale of the CNN (fairseq ``feature_grad_mult``)."""
    max_seq_len: int = 4096
    """Longest sequence (frames) the encoder accepts."""

    @property
    def feature_dim(self) -> int:
        """Channels of the CNN output (512 for XLS-R)."""
        return self.conv_layers[-1][0]

    @property
    def hop(self) -> int:
        """Samples between two output frames (320 for the standard CNN)."""
        hop = 1
        for _, _, s in self.conv_layers:
            hop *= s
        return hop

    def validate(self) -> None:
        if self.model_dim % self.num_heads:
            raise ConfigError(
                f"model_dim {self.model_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.model_dim % self.pos_conv_groups:
            raise ConfigError(
                f"model_dim {self.model_dim} is not divisible by pos_conv_groups {self.pos_conv_groups}"
            )
        if not self.conv_layers:
            raise ConfigError("conv_layers must not be empty")
        for name in (
            "model_dim",
            "num_layers",
            "num_heads",
            "ffn_dim",
            "pos_conv_kernel",
            "pos_conv_groups",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def _after_read(self) -> None:
        self.conv_layers = [tuple(int(x) for x in c) for c in self.conv_layers]  # type: ignore[misc]


def _xlsr(arch: str, dim: int, layers: int, ffn: int) -> EncoderConfig:
    return EncoderConfig(arch=arch, model_dim=dim, num_layers=layers, num_heads=16, ffn_dim=ffn)


ARCHS: dict[str, Callable[[], EncoderConfig]] = {
    "xlsr_300m": lambda: _xlsr("xlsr_300m", 1024, 24, 4096),
    "xlsr_1b": lambda: _xlsr("xlsr_1b", 1280, 48, 5120),
    "xlsr_2b": lambda: _xlsr("xlsr_2b", 1920, 48, 7680),
    "tiny": lambda: EncoderConfig(
        arch="tiny",
        model_dim=128,
        num_layers=4,
        num_heads=4,
        ffn_dim=256,
        conv_layers=conv_stack(64),
        pos_conv_kernel=32,
        pos_conv_groups=4,
        dropout=0.0,
        attn_dropout=0.0,
    ),
}
"""Named encoder shapes; :func:`register_arch` adds more."""


def _post_ln(arch: str, dim: int, layers: int, ffn: int, heads: int) -> EncoderConfig:
    """Original wav2vec 2.0 (base / large): post-LN, GroupNorm CNN without conv bias."""
    return EncoderConfig(
        arch=arch,
        model_dim=dim,
        num_layers=layers,
        num_heads=heads,
        ffn_dim=ffn,
        conv_bias=False,
        extractor_norm="group",
        norm_order="post",
    )


def _alias(arch: str, base: str) -> Callable[[], EncoderConfig]:
    def make() -> EncoderConfig:
        return dataclasses.replace(ARCHS[base](), arch=arch)

    return make


ARCHS.update(
    {
        "w2v2_base": lambda: _post_ln("w2v2_base", 768, 12, 3072, 12),
        "w2v2_large": lambda: _post_ln("w2v2_large", 1024, 24, 4096, 16),
        "w2v2_large_lv60": _alias("w2v2_large_lv60", "xlsr_300m"),
        "xlsr_53": _alias("xlsr_53", "xlsr_300m"),
        "mms_300m": _alias("mms_300m", "xlsr_300m"),
        "mms_1b": _alias("mms_1b", "xlsr_1b"),
    }
)

STRUCTURE_FIELDS: tuple[str, ...] = (
    "model_dim",
    "num_layers",
    "num_heads",
    "ffn_dim",
    "conv_layers",
    "conv_bias",
    "extractor_norm",
    "norm_order",
    "pos_conv_kernel",
    "pos_conv_groups",
    "pos_conv_depth",
)
"""The fields that decide the weights and the computation (not the regularisation)."""


def equivalent_archs(config: EncoderConfig) -> list[str]:
    """Registered arch names whose structure (:data:`STRUCTURE_FIELDS`) equals ``config``'s."""
    return same_structure(ARCHS, config, STRUCTURE_FIELDS)


DEFAULT_UNIT_LAYER: dict[str, int] = {
    "xlsr_300m": 18,
    "xlsr_1b": 36,
    "xlsr_2b": 36,
    "w2v2_base": 9,
    "w2v2_large": 18,
    "w2v2_large_lv60": 18,
    "xlsr_53": 18,
    "mms_300m": 18,
    "mms_1b": 36,
}
"""The layer whose features become units (3/4 depth, as in XLAVS-R)."""


def register_arch(name: str, factory: Callable[[], EncoderConfig]) -> None:
    """Add a named shape; a name registered twice is an error."""
    if name in ARCHS:
        raise ValueError(f"encoder arch '{name}' is already registered")
    ARCHS[name] = factory


def arch_config(name: str, **overrides: Any) -> EncoderConfig:
    """The config of a named shape, with optional field overrides."""
    return config_of_arch(ARCHS, name, overrides, what="encoder")
