"""Fusion of projected audio and video features, and 25 fps -> audio-rate alignment.

``concat`` (default, AV-HuBERT): [audio ; video] (2D) -> LayerNorm(2D) -> Linear(2D, D).
``add``: audio + video (D) -> LayerNorm(D) -> Linear(D, D).

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
        self, model_dim: int, kind: str = "concat", *, init_audio_identity: bool = True
    ) -> None:
        super().__init__()
        if kind not in ("concat", "add"):
            raise ValueError(f"fusion must be 'concat' or 'add', got {kind!r}")
        self.kind = kind
        in_dim = 2 * model_dim if kind == "concat" else model_dim
        self.layer_norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, model_dim)
        if init_audio_identity:
            with torch.no_grad():
                self.proj.weight.zero_()
                self.proj.weight[:, :model_dim].copy_(torch.eye(model_dim))
                self.proj.bias.zero_()

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:
        x = torch.cat([audio, video], dim=-1) if self.kind == "concat" else audio + video
        return self.proj(self.layer_norm(x))
