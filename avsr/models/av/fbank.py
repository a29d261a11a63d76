"""Filterbank audio front end (AV-HuBERT style), the alternative to the XLS-R CNN.

26 log-mel filterbank energies at 100 Hz (25 ms window, 10 ms hop, 512-point
FFT, pre-emphasis 0.97), 4 consecutive frames stacked into 104 dims at 25 Hz
(the last group zero-padded), a per-frame LayerNorm, then a Linear projection
to the model width. The output rate is 25 Hz, the native video rate: with this
front end the AV encoder runs at 25 Hz (``AVEncoder.frame_rate == 25``) and
50 Hz unit labels are taken every second frame.

Nothing here is learned except the LayerNorm affine and the projection.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from avsr.audio import SAMPLE_RATE

WIN = 400
HOP = 160
N_FFT = 512


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def _mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Triangular HTK-mel filters, (n_mels, n_fft // 2 + 1), from 0 Hz to Nyquist."""
    n_bins = n_fft // 2 + 1
    mels = torch.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2, dtype=torch.float64)
    hz = _mel_to_hz(mels)
    bins = torch.linspace(0.0, sample_rate / 2, n_bins, dtype=torch.float64)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins[None] - lo) / (mid - lo)
    down = (hi - bins[None]) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).to(torch.float32)


def fbank_frames(n_samples: Tensor | int) -> Tensor | int:
    """Number of 100 Hz filterbank frames for ``n_samples`` (0 below one window)."""
    if isinstance(n_samples, Tensor):
        return torch.where(
            n_samples >= WIN, (n_samples - WIN) // HOP + 1, torch.zeros_like(n_samples)
        )
    return (n_samples - WIN) // HOP + 1 if n_samples >= WIN else 0


def stacked_frames(n_samples: Tensor | int, stack: int = 4) -> Tensor | int:
    """Number of stacked (25 Hz for ``stack=4``) frames for ``n_samples``: ceil(frames / stack)."""
    n = fbank_frames(n_samples)
    return (n + stack - 1) // stack


class LogMelFilterbank(nn.Module):
    """wav (B, S) -> log-mel (B, T100, n_mels); no parameters (buffers only)."""

    def __init__(self, n_mels: int = 26, preemphasis: float = 0.97) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.preemphasis = preemphasis
        self.register_buffer("fb", mel_filterbank(n_mels), persistent=False)
        self.register_buffer("window", torch.hamming_window(WIN, periodic=False), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        """wav (B, S) float -> (B, T100, n_mels) with T100 = fbank_frames(S)."""
        wav = wav.float()
        if self.preemphasis > 0:
            wav = torch.cat([wav[:, :1], wav[:, 1:] - self.preemphasis * wav[:, :-1]], dim=1)
        if wav.shape[1] < WIN:
            return wav.new_zeros(wav.shape[0], 0, self.n_mels)
        frames = wav.unfold(1, WIN, HOP) * self.window  # (B, T, WIN)
        spec = torch.fft.rfft(frames, n=N_FFT).abs().pow(2) / N_FFT  # (B, T, N_FFT/2+1)
        mel = spec @ self.fb.t()
        return torch.log(mel.clamp_min(1e-10))


class FbankFrontend(nn.Module):
    """wav (B, S), lens (B,) -> features (B, T25, model_dim), lens25 (B,).

    log-mel (26 @ 100 Hz) -> stack 4 -> 104 @ 25 Hz -> LayerNorm(104) -> Linear(104, model_dim).
    Padded frames (beyond each row's length) are zeroed.
    """

    def __init__(self, model_dim: int, *, n_mels: int = 26, stack: int = 4) -> None:
        super().__init__()
        self.stack = stack
        self.fbank = LogMelFilterbank(n_mels)
        self.feature_dim = n_mels * stack
        self.layer_norm = nn.LayerNorm(self.feature_dim)
        self.proj = nn.Linear(self.feature_dim, model_dim)

    def output_lens(self, lens: Tensor) -> Tensor:
        return stacked_frames(lens, self.stack)  # type: ignore[return-value]

    def features(self, wav: Tensor) -> Tensor:
        """wav (B, S) -> stacked log-mel (B, T25, n_mels * stack) (no normalisation)."""
        mel = self.fbank(wav)  # (B, T100, F)
        b, t, f = mel.shape
        pad = (-t) % self.stack
        if pad:
            mel = torch.cat([mel, mel.new_zeros(b, pad, f)], dim=1)
        return mel.reshape(b, (t + pad) // self.stack, f * self.stack)

    def forward(self, wav: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.layer_norm(self.features(wav))
        out_lens = self.output_lens(lens).clamp(max=feats.shape[1])
        valid = torch.arange(feats.shape[1], device=feats.device)[None] < out_lens[:, None]
        feats = feats * valid[..., None].to(feats.dtype)
        return self.proj(feats), out_lens
