"""ResNet-18 lip encoder (3D stem + per-frame 2D ResNet-18 trunk).

Architecture (AV-HuBERT's visual front end): a Conv3d stem (kernel (5,7,7), stride
(1,2,2)) -> BatchNorm3d -> PReLU -> MaxPool3d (1,3,3)/(1,2,2), then a 2D
ResNet of BasicBlocks [2,2,2,2] applied to every frame, adaptive average pool:
T frames in, T vectors out (no temporal downsampling).

The parameter names follow AV-HuBERT's visual front end (``frontend3D.0`` conv,
``frontend3D.1`` BatchNorm, ``frontend3D.2`` PReLU, ``trunk.layerN.i.conv1 /
bn1 / relu1 / conv2 / bn2 / relu2 / downsample.0 / downsample.1``) so its
released weights load with :func:`import_avhubert_visual`. Widths are
configurable: the full model uses 64/128/256/512 (512 per frame), the CPU
``tiny`` configs the same graph with e.g. 8/16/32/64 on a smaller crop.

BatchNorm under multi-process training: statistics are per process under DDP
(each rank normalises with its own batch statistics and keeps its own running
averages; rank 0's buffers are broadcast each step). ``freeze_bn`` puts every
BatchNorm layer in eval mode (running statistics, no updates) so results do
not depend on how the batch is split; ``convert_sync_bn`` turns them into
SyncBatchNorm for multi-GPU runs (NCCL only, not gloo/CPU).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from torch import Tensor, nn


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {kind!r} (prelu or relu)")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 conv + BN when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = _act(act, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = _act(act, out_ch)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C_in, H, W) -> (N, C_out, H', W')."""
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu2(y + skip)


class ResNetTrunk(nn.Module):
    """Four stages of two BasicBlocks (strides 1, 2, 2, 2) + global average pool."""

    def __init__(self, in_ch: int, widths: Sequence[int], blocks: Sequence[int], act: str) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError("the trunk has four stages: widths and blocks need 4 entries each")
        ch = in_ch
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                layers.append(BasicBlock(ch, width, stride if j == 0 else 1, act))
                ch = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = ch

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> (N, out_dim)."""
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.avgpool(x).flatten(1)


class LipEncoder(nn.Module):
    """(B, 1, T, H, W) normalised grayscale lips -> (B, T, out_dim) per-frame features."""

    def __init__(
        self,
        *,
        stem_channels: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        act: str = "prelu",
        input_pool: int = 1,
    ) -> None:
        super().__init__()
        self.input_pool = input_pool
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, stem_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(stem_channels),
            _act(act, stem_channels),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = ResNetTrunk(stem_channels, widths, blocks, act)
        self.out_dim = self.trunk.out_dim
        self.freeze_bn = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolutions (fan-out), unit BatchNorm; PReLU keeps its 0.25 slope."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                fan_out = m.out_channels * math.prod(m.kernel_size)
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> LipEncoder:
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, video: Tensor) -> Tensor:
        """video (B, 1, T, H, W) -> (B, T, out_dim)."""
        if video.ndim != 5 or video.shape[1] != 1:
            raise ValueError(f"video must be (B, 1, T, H, W), got {tuple(video.shape)}")
        b, _, t, h, w = video.shape
        if self.input_pool > 1:
            k = self.input_pool
            video = nn.functional.avg_pool3d(video, (1, k, k), stride=(1, k, k))
        x = self.frontend3D(video)  # (B, C, T, H', W')
        x = x.transpose(1, 2).reshape(b * t, x.shape[1], x.shape[3], x.shape[4])
        x = self.trunk(x)  # (B*T, D)
        return x.view(b, t, -1)


def set_bn_frozen(module: nn.Module, frozen: bool = True) -> None:
    """Keep every BatchNorm of ``module``'s lip encoders in eval mode (running statistics)."""
    for m in module.modules():
        if isinstance(m, LipEncoder):
            m.freeze_bn = frozen
            m.train(m.training)


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """SyncBatchNorm for multi-GPU training (NCCL); BatchNorm statistics then span all ranks."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


_AVHUBERT_PREFIXES = (
    r"^(?:module\.)?(?:encoder\.)?(?:w2v_model\.)?feature_extractor_video\.resnet\.",
    r"^(?:module\.)?resnet\.",
    r"^(?:module\.)?(?:encoder\.)?",
)


def import_avhubert_visual(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map AV-HuBERT visual weights onto :class:`LipEncoder` names.

    Accepts a whole AV-HuBERT model state dict (pretrained:
    ``feature_extractor_video.resnet.*``; fine-tuned:
    ``encoder.w2v_model.feature_extractor_video.resnet.*``) or the state dict of
    its ``ResEncoder`` alone (``frontend3D.*`` / ``trunk.*``). Returns only the
    lip-encoder tensors, keyed for ``LipEncoder.load_state_dict``; raises
    ``KeyError`` when none are found.
    """
    out: dict[str, Tensor] = {}
    for pattern in _AVHUBERT_PREFIXES:
        rx = re.compile(pattern)
        for key, value in state_dict.items():
            m = rx.match(key)
            if not m:
                continue
            rest = key[m.end() :]
            if rest.startswith(("frontend3D.", "trunk.")):
                out.setdefault(rest, value)
        if out:
            break
    if not out:
        raise KeyError(
            "no AV-HuBERT visual front-end weights (frontend3D.* / trunk.*) in the state dict"
        )
    return out


def load_avhubert_visual(encoder: LipEncoder, state_dict: Mapping[str, Tensor]) -> None:
    """Load AV-HuBERT visual weights into ``encoder`` (strict: every tensor must match)."""
    mapped = import_avhubert_visual(state_dict)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"AV-HuBERT visual weights do not fit this lip encoder: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in mapped.items():
        if own[k].shape != v.shape:
            raise ValueError(
                f"{k}: shape {tuple(v.shape)} does not fit {tuple(own[k].shape)} (check visual widths)"
            )
    encoder.load_state_dict(mapped, strict=True)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "BasicBlock",
    "LipEncoder",
    "ResNetTrunk",
    "convert_sync_bn",
    "import_avhubert_visual",
    "load_avhubert_visual",
    "set_bn_frozen",
    "count_parameters",
]
