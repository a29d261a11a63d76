"""espeak-ng speakers and utterances with exact word timings (16 kHz mono).

A speaker is an espeak-ng voice of the language, a voice variant (``+m3``,
``+f2``...), a speed (``-s``) and a pitch (``-p``). Each word is synthesised
once per speaker (cached), trimmed of silence and resampled 22050 -> 16000 Hz
(``resample_poly``); an utterance concatenates its words with short random
pauses and a small random tempo change per word, so every word's start and end
are known exactly.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from avsr.audio import SAMPLE_RATE
from avsr.errors import UserError

ESPEAK_RATE = 22050

VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"),
    "ar": ("ar",),
    "de": ("de",),
    "el": ("el",),
    "es": ("es", "es-419"),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "it": ("it",),
    "pt": ("pt", "pt-br"),
    "ru": ("ru",),
}
VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7")


@dataclass(frozen=True, kw_only=True)
class Voice:
    voice: str
    variant: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant} -s{self.speed} -p{self.pitch}"


def make_voice(lang: str, index: int, rng: np.random.Generator) -> Voice:
    """The ``index``-th distinct voice of ``lang`` (voice/variant cycle; speed/pitch drawn)."""
    voices = VOICES[lang]
    return Voice(
        voice=voices[index % len(voices)],
        variant=VARIANTS[index % len(VARIANTS)],
        speed=int(rng.integers(140, 186)),
        pitch=int(rng.integers(30, 71)),
    )


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserError("espeak-ng not found: install it (apt-get install espeak-ng) or run scripts/setup.sh")
    return exe


def _read_wav(path: Path) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != ESPEAK_RATE:
        raise UserError(f"espeak-ng wrote {sr} Hz audio, expected {ESPEAK_RATE}")
    return audio.mean(axis=1)


def trim(audio: np.ndarray, rel: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing silence (10 ms frames below ``rel`` of the peak frame)."""
    n = len(audio) // 160
    if n == 0:
        return audio
    frames = np.abs(audio[: n * 160]).reshape(n, 160).max(axis=1)
    on = np.nonzero(frames > rel * frames.max())[0]
    if len(on) == 0:
        return audio[:0]
    a = max(0, on[0] * 160 - margin)
    b = min(len(audio), (on[-1] + 1) * 160 + margin)
    return audio[a:b]


@functools.lru_cache(maxsize=4096)
def synth_word(voice: Voice, word: str) -> np.ndarray:
    """One word by one voice: trimmed float32 16 kHz mono, peak-normalised to 0.9."""
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory(prefix="xlavsr-espeak-") as tmp:
        out = Path(tmp) / "w.wav"
        cmd = [_espeak(), "-v", f"{voice.voice}+{voice.variant}", "-s", str(voice.speed),
               "-p", str(voice.pitch), "-w", str(out), word]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0 or not out.is_file():
            raise UserError(f"espeak-ng failed for voice {voice.name}, word {word!r}: {res.stderr.strip()}")
        audio = _read_wav(out)
    audio = resample_poly(audio.astype(np.float64), 160, 441).astype(np.float32)
    audio = trim(audio)
    if audio.size == 0:
        raise UserError(f"espeak-ng gave silence for voice {voice.name}, word {word!r}")
    return (audio * (0.9 / float(np.abs(audio).max()))).astype(np.float32)


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float
    end: float


def utterance(voice: Voice, words: list[str] | tuple[str, ...], rng: np.random.Generator) -> tuple[np.ndarray, list[WordTiming]]:
    """Concatenate the words with random pauses; returns (float32 audio, word timings).

    Lead-in 0.2-0.4 s, pauses 0.03-0.15 s, tail 0.2-0.4 s, per-word tempo
    0.92-1.08 (resampling), level: RMS 0.07 x U(0.7, 1.3), peak <= 0.99.
    """
    from scipy.signal import resample_poly

    pieces: list[np.ndarray] = []
    timings: list[WordTiming] = []
    pos = int(rng.integers(int(0.2 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE)))
    pieces.append(np.zeros(pos, np.float32))
    for i, word in enumerate(words):
        if i:
            gap = int(rng.integers(int(0.03 * SAMPLE_RATE), int(0.15 * SAMPLE_RATE)))
            pieces.append(np.zeros(gap, np.float32))
            pos += gap
        w = synth_word(voice, word)
        up = int(rng.integers(23, 28))
        if up != 25:
            w = resample_poly(w.astype(np.float64), up, 25).astype(np.float32)
        pieces.append(w * float(rng.uniform(0.8, 1.0)))
        timings.append(WordTiming(word, pos / SAMPLE_RATE, (pos + len(w)) / SAMPLE_RATE))
        pos += len(w)
    pieces.append(np.zeros(int(rng.integers(int(0.2 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE))), np.float32))
    audio = np.concatenate(pieces)
    level = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    audio = audio * (0.07 * float(rng.uniform(0.7, 1.3)) / max(level, 1e-6))
    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32), timings


def envelope(audio: np.ndarray, times: np.ndarray, win: float = 0.04) -> np.ndarray:
    """Speech envelope in [0, 1] at ``times``: RMS over ``win`` s, divided by its 95th percentile."""
    half = int(win * SAMPLE_RATE / 2)
    sq = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    centers = np.clip(np.round(times * SAMPLE_RATE).astype(np.int64), 0, len(audio))
    a = np.clip(centers - half, 0, len(audio))
    b = np.clip(centers + half, 0, len(audio))
    rms = np.sqrt((sq[b] - sq[a]) / np.maximum(b - a, 1))
    ref = float(np.percentile(rms, 95)) if rms.size else 0.0
    return np.clip(rms / max(ref, 1e-9), 0.0, 1.0)
