"""Fusion of projected audio and video features, and 25 fps -> audio-rate alignment.

``concat`` (default, AV-HuBERT): [audio ; video] (2D) -> LayerNorm(2D) -> Linear(2D, D).
``concat`` with ``norm="per_modality"``: [LayerNorm(audio) ; LayerNorm(video)] -> Linear(2D, D).
``add``: audio + video (D) -> LayerNorm(D) -> Linear(D, D).

With the joint LayerNorm a zeroed video half changes the statistics the audio half is
normalised with (its scale grows by about sqrt(2)), so a model fine-tuned on audio only
sees a different audio input once video is given; per-modality normalisation keeps the
audio half identical and lets the video enter as an added term.

With ``init_audio_identity`` the output Linear starts as "pass the audio half
through" (weight [I | 0] for concat, I for add, bias 0), so a pretrained
audio-only Transformer first sees (layer-normalised) audio features and the
video contribution is learned from zero instead of from a random mixing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def align_video(video: Tensor, target_len: int, repeat: int) -> Tensor:
    """video (B, Tv, D) at 25 fps -> (B, target_len, D): repeat each frame ``repeat``
    times (2 for 50 Hz audio frames, 1 for 25 Hz), then trim or zero-pad at the end."""
    if repeat > 1:
        video = video.repeat_interleave(repeat, dim=1)
    t = video.shape[1]
    if t > target_len:
        return video[:, :target_len]
    if t < target_len:
        pad = video.new_zeros(video.shape[0], target_len - t, video.shape[2])
        return torch.cat([video, pad], dim=1)
    return video


def align_mask(mask: Tensor, target_len: int, repeat: int) -> Tensor:
    """bool (B, Tv) -> (B, target_len), same repeat / trim / pad (pad = False)."""
    return align_video(mask[..., None].to(torch.uint8), target_len, repeat)[..., 0].bool()


class Fusion(nn.Module):
    """audio (B, T, D), video (B, T, D) -> fused (B, T, D)."""

    def __init__(
        self,
        model_dim: int,
        kind: str = "concat",
        *,
        init_audio_identity: bool = True,
        norm: str = "joint",
    ) -> None:
        super().__init__()
        if kind not in ("concat", "add"):
            raise ValueError(f"fusion must be 'concat' or 'add', got {kind!r}")
        if norm not in ("joint", "per_modality"):
            raise ValueError(f"fusion norm must be 'joint' or 'per_modality', got {norm!r}")
        if norm == "per_modality" and kind != "concat":
            raise ValueError("fusion norm 'per_modality' needs kind 'concat'")
        self.kind = kind
        in_dim = 2 * model_dim if kind == "concat" else model_dim
        self.layer_norm: nn.LayerNorm | None = None
        self.audio_norm: nn.LayerNorm | None = None
        self.video_norm: nn.LayerNorm | None = None
        if norm == "joint":
            self.layer_norm = nn.LayerNorm(in_dim)
        else:
            self.audio_norm = nn.LayerNorm(model_dim)
            self.video_norm = nn.LayerNorm(model_dim)
        self.proj = nn.Linear(in_dim, model_dim)
        if init_audio_identity:
            with torch.no_grad():
                self.proj.weight.zero_()
                self.proj.weight[:, :model_dim].copy_(torch.eye(model_dim))
                self.proj.bias.zero_()

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:
        if self.layer_norm is None:
            assert self.audio_norm is not None and self.video_norm is not None
            return self.proj(torch.cat([self.audio_norm(audio), self.video_norm(video)], dim=-1))
        x = torch.cat([audio, video], dim=-1) if self.kind == "concat" else audio + video
        return self.proj(self.layer_norm(x))
