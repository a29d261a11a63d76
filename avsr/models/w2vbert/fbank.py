"""The fixed w2v-BERT 2.0 front end: 80 Kaldi-style log-mel filterbanks, normalised per
utterance and mel bin, two consecutive frames stacked into 160 dims at 50 Hz.

This is the computation of HF ``SeamlessM4TFeatureExtractor`` (written here in torch,
float64): the waveform in [-1, 1] is scaled to 16-bit integer range; frames of 400
samples every 160 (no centring); per frame the DC offset is removed, pre-emphasis 0.97
applied (first sample scaled by 0.03), a Povey window (Hann ** 0.85) applied and a
512-point power spectrum taken; 80 triangular filters on the Kaldi mel scale
(1127 ln(1 + f/700), 20 Hz .. 8 kHz, triangles in mel space), floor 1.1920929e-7, natural
log. Each utterance's frames are normalised per mel bin (mean, unbiased std + 1e-7) over
its own frames, then frames ``2t`` and ``2t+1`` are concatenated: ``n // 2`` output
frames for ``n`` filterbank frames (an odd last frame is dropped, as in HF).

Everything is per utterance: a padded batch gives the same features as its items alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from avsr.audio import SAMPLE_RATE

WIN = 400
HOP = 160
N_FFT = 512
MEL_FLOOR = 1.192092955078125e-07


def _kaldi_mel(f: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def kaldi_mel_filters(n_mels: int = 80, low: float = 20.0, high: float = 8000.0) -> Tensor:
    """(N_FFT // 2 + 1, n_mels) triangular filters, triangles drawn on the Kaldi mel axis."""
    lo = 1127.0 * math.log1p(low / 700.0)
    hi = 1127.0 * math.log1p(high / 700.0)
    centres = torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64)
    bin_hz = SAMPLE_RATE / N_FFT * torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
    bins = _kaldi_mel(bin_hz)
    left, mid, right = centres[:-2], centres[1:-1], centres[2:]
    rise = (bins[:, None] - left[None]) / (mid - left)[None]
    fall = (right[None] - bins[:, None]) / (right - mid)[None]
    return torch.clamp(torch.minimum(rise, fall), min=0.0)


def fbank_frames(n_samples: int) -> int:
    """Filterbank frames (100 Hz) of ``n_samples`` samples."""
    return 0 if n_samples < WIN else (n_samples - WIN) // HOP + 1


def output_frames(n_samples: int, stack: int = 2) -> int:
    """Stacked frames (50 Hz) of ``n_samples`` samples."""
    return fbank_frames(n_samples) // stack


class W2vBertFbank(nn.Module):
    """wav (B, S) in [-1, 1], lens (B,) -> features (B, T, n_mels * stack) float32, lens (B,).

    No parameters. Padded frames are zero.
    """

    def __init__(self, n_mels: int = 80, stack: int = 2, preemphasis: float = 0.97) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.stack = stack
        self.preemphasis = preemphasis
        # constants, built on first use on the input's device (not buffers: a model built on
        # the meta device and loaded with ``assign=True`` still has real filters)
        self._consts: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def constants(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(mel filters (257, n_mels), Povey window (400,)), float64 on ``device``."""
        if device not in self._consts:
            window = torch.hann_window(WIN, periodic=False, dtype=torch.float64).pow(0.85)
            self._consts[device] = (
                kaldi_mel_filters(self.n_mels).to(device),
                window.to(device),
            )
        return self._consts[device]

    @property
    def feature_dim(self) -> int:
        return self.n_mels * self.stack

    def log_mel(self, wav: Tensor) -> Tensor:
        """One utterance (S,) -> (n_frames, n_mels) float64 log-mel (not normalised)."""
        x = wav.to(torch.float64) * 32768.0
        if x.shape[0] < WIN:
            return x.new_zeros(0, self.n_mels)
        frames = x.unfold(0, WIN, HOP)  # (T, WIN)
        frames = frames - frames.mean(dim=1, keepdim=True)
        p = self.preemphasis
        frames = torch.cat([frames[:, :1] * (1.0 - p), frames[:, 1:] - p * frames[:, :-1]], dim=1)
        filters, window = self.constants(frames.device)
        spec = torch.fft.rfft(frames * window, n=N_FFT).abs().pow(2)
        mel = spec @ filters
        return torch.log(mel.clamp_min(MEL_FLOOR))

    def forward(self, wav: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        b = wav.shape[0]
        outs = []
        out_lens = []
        for i in range(b):
            mel = self.log_mel(wav[i, : int(lens[i])])
            n = mel.shape[0]
            if n > 1:
                mean = mel.mean(dim=0, keepdim=True)
                std = torch.sqrt(mel.var(dim=0, keepdim=True, unbiased=True) + 1e-7)
                mel = (mel - mean) / std
            t = n // self.stack
            outs.append(mel[: t * self.stack].reshape(t, self.feature_dim).to(torch.float32))
            out_lens.append(t)
        t_max = max(out_lens, default=0)
        feats = wav.new_zeros(b, t_max, self.feature_dim, dtype=torch.float32)
        for i, f in enumerate(outs):
            feats[i, : f.shape[0]] = f
        return feats, torch.tensor(out_lens, dtype=torch.long)
