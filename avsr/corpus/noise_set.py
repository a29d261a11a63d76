"""The corpus noise set in MUSAN layout (+ babble), 16 kHz mono, with per-split lists.

``NOISE/{babble,music,noise,speech}/*.wav`` and ``NOISE/{category}/{split}.tsv``
(one path per line, relative to the corpus folder: the AV-HuBERT noise-list
format). Every file belongs to exactly one split.

- music: synthesised chord progressions with a drum rhythm, plus the ``loop_*``
  samples of Debian ``sonic-pi-samples`` when cached (see :mod:`avsr.media`);
- noise: white, pink, brown and blue noise, plus the sonic-pi ``ambi_*``
  samples when cached;
- speech: utterances of the grammar by held-out espeak-ng speakers (voices not
  used by any corpus speaker), about 10 s per file, one language per file;
- babble: the mean of 30 streams of training utterances, each stream at least
  15 s long and filled round-robin over the languages.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from avsr.audio import SAMPLE_RATE
from avsr.babble import mix_babble
from avsr.babble import normalise_level as _normalise
from avsr.io import atomic_path, atomic_write_text

CATEGORIES = ("babble", "music", "noise", "speech")
COLOURS = ("white", "pink", "brown", "blue")
SPLITS = ("train", "valid", "test")


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16-bit PCM 16 kHz mono, written atomically."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")


def coloured_noise(colour: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ f^a: white 0, pink -1, brown -2, blue +1."""
    exponent = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0}[colour]
    n = int(seconds * SAMPLE_RATE)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1]
    spec *= f ** (exponent / 2)
    return _normalise(np.fft.irfft(spec, n))


def synth_music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A chord progression (additive saw-like tones) over a kick / hi-hat rhythm."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    root = 45 + int(rng.integers(0, 12))  # MIDI note
    minor = bool(rng.integers(0, 2))
    third = 3 if minor else 4
    degrees = [0, 5, 7, 9, 2, 4]
    bpm = float(rng.uniform(80, 140))
    beat = 60.0 / bpm
    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    for b in range(n_bars):
        deg = degrees[int(rng.integers(len(degrees)))] if b else 0
        a, e = int(b * bar * SAMPLE_RATE), min(n, int((b + 1) * bar * SAMPLE_RATE))
        if a >= n:
            break
        tt = t[a:e] - t[a]
        env = np.minimum(tt / 0.02, 1.0) * np.exp(-tt / (bar * 0.8))
        for interval in (0, third, 7, 12):
            freq = 440.0 * 2 ** ((root + deg + interval - 69) / 12)
            for k in range(1, 6):
                out[a:e] += env * np.sin(2 * np.pi * freq * k * tt) / k * 0.2
    # rhythm
    for i in range(int(seconds / beat) + 1):
        a = int(i * beat * SAMPLE_RATE)
        if a >= n:
            break
        m = min(n - a, int(0.25 * SAMPLE_RATE))
        tt = np.arange(m) / SAMPLE_RATE
        if i % 2 == 0:
            f_sweep = 50 + 100 * np.exp(-tt / 0.03)
            out[a : a + m] += 0.8 * np.sin(2 * np.pi * np.cumsum(f_sweep) / SAMPLE_RATE) * np.exp(-tt / 0.08)
        h = int(a + beat / 2 * SAMPLE_RATE)
        hm = min(n - h, int(0.05 * SAMPLE_RATE))
        if hm > 0:
            noise = np.diff(rng.standard_normal(hm + 1))
            out[h : h + hm] += 0.15 * noise * np.exp(-np.arange(hm) / SAMPLE_RATE / 0.015)
    return _normalise(out)


def load_sample(path: Path) -> np.ndarray:
    """A sonic-pi sample as float32 16 kHz mono."""
    from scipy.signal import resample_poly

    audio, sr = sf.read(str(path), dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        g = gcd(int(sr), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(sr) // g)
    return _normalise(mono)


def babble(
    train_audio: dict[str, list[np.ndarray]],
    rng: np.random.Generator,
    n_streams: int = 30,
    min_seconds: float = 15.0,
) -> np.ndarray:
    """Mean of ``n_streams`` streams of training utterances (round-robin over languages).

    Args:
        train_audio: language -> training utterances (float32 16 kHz).
    """
    return mix_babble(train_audio, rng, load=_same, n_streams=n_streams, min_seconds=min_seconds)


def _same(audio: np.ndarray) -> np.ndarray:
    return audio


def split_of(index: int) -> str:
    """Spread package samples over splits: 3 of 5 to train, 1 to valid, 1 to test."""
    return ("train", "train", "valid", "train", "test")[index % 5]


def write_lists(noise_dir: Path, files: dict[str, dict[str, list[Path]]]) -> None:
    """``noise/{category}/{split}.tsv`` with paths relative to the corpus folder."""
    root = noise_dir.parent
    for cat, by_split in files.items():
        for split in SPLITS:
            rows = sorted(p.relative_to(root).as_posix() for p in by_split.get(split, []))
            atomic_write_text(noise_dir / cat / f"{split}.tsv", "".join(r + "\n" for r in rows))
