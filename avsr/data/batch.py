"""Per-clip samples and padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

PIXEL_MEAN = 0.421
PIXEL_STD = 0.165
UNIT_PAD = -100


@dataclass(kw_only=True)
class AVSample:
    """One clip after decoding, cropping and augmentation (numpy, before collation).

    ``audio`` (S,) float32 or None; ``video`` (T, H, W) uint8 or None; ``units``
    (U,) int64 with ``U == cnn_frames(n_audio)`` or None. ``n_audio``/``n_video``
    are the clip's lengths even when that modality was not decoded.
    """

    id: str
    index: int
    n_audio: int
    n_video: int
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    units: np.ndarray | None = None
    text: str | None = None
    lang: str | None = None
    clean_audio: np.ndarray | None = None
    """Training rows with added noise of a dataset asked to keep it (``keep_clean_audio``):
    ``audio`` before the noise (same shape), else None."""


@dataclass(kw_only=True)
class AVBatch:
    """A padded batch.

    - ``audio`` (B, S) float32, zero-padded; ``audio_lens`` (B,) int64 samples.
    - ``video`` (B, 1, T, H, W) float32, pixels normalised ``(x/255 - 0.421) / 0.165``,
      zero-padded after normalisation; ``video_lens`` (B,) int64 frames (25 fps).
    - ``units`` (B, U) int64 padded with -100; ``unit_lens`` (B,) int64 (50 Hz).
    - ``audio``/``video`` are None when that modality is not loaded (the lengths are
      still given, so a model can feed zeros of the right length).
    - ``clean_audio`` (B, S) like ``audio``, before the training noise (rows without noise:
      their ``audio``); None when no row carries a clean copy.
    """

    ids: list[str]
    indices: torch.Tensor
    audio: torch.Tensor | None
    audio_lens: torch.Tensor
    video: torch.Tensor | None
    video_lens: torch.Tensor
    units: torch.Tensor | None = None
    unit_lens: torch.Tensor | None = None
    texts: list[str] | None = None
    langs: list[str] | None = None
    clean_audio: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def _map(self, fn: Any) -> AVBatch:
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AVBatch:
        """Copy of the batch with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> AVBatch:
        """Used by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda t: t.pin_memory())


def normalise_pixels(video_u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 ``(x/255 - 0.421) / 0.165``."""
    return (video_u8.to(torch.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD


def collate(samples: Sequence[AVSample]) -> AVBatch:
    """Pad a list of :class:`AVSample` into an :class:`AVBatch`."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    b = len(samples)
    audio_lens = torch.tensor([s.n_audio for s in samples], dtype=torch.long)
    video_lens = torch.tensor([s.n_video for s in samples], dtype=torch.long)
    audio = None
    if samples[0].audio is not None:
        audio = torch.zeros(b, int(audio_lens.max()), dtype=torch.float32)
        for i, s in enumerate(samples):
            assert s.audio is not None
            audio[i, : s.audio.shape[0]] = torch.from_numpy(s.audio)
    clean_audio = None
    if audio is not None and any(s.clean_audio is not None for s in samples):
        clean_audio = audio.clone()
        for i, s in enumerate(samples):
            if s.clean_audio is not None:
                clean_audio[i, : s.clean_audio.shape[0]] = torch.from_numpy(s.clean_audio)
    video = None
    if samples[0].video is not None:
        h, w = samples[0].video.shape[1:]
        video = torch.zeros(b, 1, int(video_lens.max()), h, w, dtype=torch.float32)
        for i, s in enumerate(samples):
            assert s.video is not None
            video[i, 0, : s.video.shape[0]] = normalise_pixels(torch.from_numpy(s.video))
    units = unit_lens = None
    if samples[0].units is not None:
        unit_lens = torch.tensor([len(s.units) for s in samples], dtype=torch.long)  # type: ignore[arg-type]
        units = torch.full((b, max(1, int(unit_lens.max()))), UNIT_PAD, dtype=torch.long)
        for i, s in enumerate(samples):
            units[i, : len(s.units)] = torch.from_numpy(s.units)  # type: ignore[arg-type]
    texts = [s.text or "" for s in samples] if samples[0].text is not None else None
    langs = [s.lang or "" for s in samples] if samples[0].lang is not None else None
    return AVBatch(
        ids=[s.id for s in samples],
        indices=torch.tensor([s.index for s in samples], dtype=torch.long),
        audio=audio,
        audio_lens=audio_lens,
        video=video,
        video_lens=video_lens,
        units=units,
        unit_lens=unit_lens,
        texts=texts,
        langs=langs,
        clean_audio=clean_audio,
    )
