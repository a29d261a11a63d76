"""Noise mixing at a target SNR and a bank of noise files (MUSAN layout + babble).

Mixing: the noise is scaled by
``(rms(clean) / 10**(snr/20)) / rms(noise)``; noise shorter than the speech is
tiled, longer noise is cut starting at ``offset``; if the mix clips
(``max|x| > 1``) the whole mix (speech and noise together, so the SNR is kept)
is rescaled to a peak of ``CLIP_PEAK``. Silent speech or silent noise gives the
speech back unchanged (never NaN).

Noise folder layout (the corpus contract)::

    NOISE/{babble,music,noise,speech}/**/*.wav   # 16 kHz mono (others are resampled/downmixed)
    NOISE/{category}/{split}.tsv                 # optional: one wav path per line

A category folder's wav files are found at any depth (MUSAN as it unpacks:
``musan/{music,noise,speech}/<source>/*.wav``) and sorted by path, so a flat
folder gives the same list as before. ``avsr noise prepare`` turns MUSAN into
pieces with split lists, ``avsr noise babble`` makes babble from a manifest.

Training draws from a :class:`numpy.random.Generator`; evaluation uses
:meth:`NoiseBank.for_clip`, which picks the file and offset from a SHA-256 hash
of (seed, category, clip id), so the same command always gives the same noisy
input (the reference code did not seed this and results drifted).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsr.audio import SAMPLE_RATE, read_audio
from avsr.errors import UserError
from avsr.logging_utils import get_logger

log = get_logger(__name__)

CATEGORIES = ("babble", "music", "noise", "speech")
CLIP_PEAK = 0.99
_EPS = 1e-12


def rms(x: np.ndarray) -> float:
    """Root mean square of an array (float64 accumulation); 0.0 for an empty array."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _as_float(x: np.ndarray) -> np.ndarray:
    """Float32 copy; integer PCM is scaled to [-1, 1)."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    return x.astype(np.float32, copy=True)


def fit_length(noise: np.ndarray, n_samples: int, offset: int = 0) -> np.ndarray:
    """``n_samples`` of ``noise`` starting at ``offset``: cut when longer, tiled when shorter.

    Indexing wraps around the end of the noise, so ``offset`` may be anywhere.
    """
    noise = np.asarray(noise)
    if noise.ndim != 1:
        raise ValueError(f"noise must be 1-D (mono), got shape {noise.shape}")
    if n_samples <= 0:
        return noise[:0].copy()
    if noise.size == 0:
        raise ValueError("noise is empty")
    start = int(offset) % noise.size
    if start + n_samples <= noise.size:
        return noise[start : start + n_samples].copy()
    return np.take(noise, (start + np.arange(n_samples)) % noise.size)


def mix_components(
    clean: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(speech part, noise part) of the mix; their sum is :func:`mix_at_snr`.

    Both parts carry the same clipping rescale, so
    ``measure_snr(*mix_components(...)) == snr_db`` whenever both are non-silent.
    """
    clean_f = _as_float(clean)
    if clean_f.ndim != 1:
        raise ValueError(f"clean audio must be 1-D (mono), got shape {clean_f.shape}")
    if not math.isfinite(float(snr_db)):
        raise ValueError(f"SNR must be finite, got {snr_db}")
    n = clean_f.size
    if n == 0:
        return clean_f, clean_f.copy()
    noise_f = fit_length(_as_float(noise), n, offset)
    r_clean, r_noise = rms(clean_f), rms(noise_f)
    if r_clean < _EPS or r_noise < _EPS:
        return clean_f, np.zeros_like(clean_f)
    scale = (r_clean / 10.0 ** (float(snr_db) / 20.0)) / r_noise
    noise_scaled = (noise_f.astype(np.float64) * scale).astype(np.float32)
    mixed_peak = float(np.max(np.abs(clean_f.astype(np.float64) + noise_scaled)))
    if mixed_peak > 1.0:
        gain = CLIP_PEAK / mixed_peak
        return (clean_f * gain).astype(np.float32), (noise_scaled * gain).astype(np.float32)
    return clean_f, noise_scaled


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """Clean speech + noise at ``snr_db`` dB (float32, same length as ``clean``)."""
    speech, noise_part = mix_components(clean, noise, snr_db, offset)
    return (speech + noise_part).astype(np.float32)


def measure_snr(signal: np.ndarray, noise: np.ndarray) -> float:
    """SNR in dB of ``signal`` against ``noise`` (``inf`` for silent noise)."""
    r_s, r_n = rms(signal), rms(noise)
    if r_n < _EPS:
        return math.inf
    if r_s < _EPS:
        return -math.inf
    return 20.0 * math.log10(r_s / r_n)


def parse_snrs(text: str) -> list[float | None]:
    """``"clean,-10,-5,0"`` -> ``[None, -10.0, -5.0, 0.0]`` (``None`` = no noise).

    Raises :class:`UserError` on an empty list, a token that is not a number or
    ``clean``, a non-finite value or a duplicate.
    """
    if not text or not text.strip():
        raise UserError("--snr: empty SNR list (expected e.g. 'clean,-10,-5,0,5,10')")
    out: list[float | None] = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            raise UserError(f"--snr {text!r}: empty item (expected e.g. 'clean,-10,-5,0')")
        if tok.lower() in ("clean", "none", "inf"):
            value: float | None = None
        else:
            try:
                value = float(tok)
            except ValueError:
                raise UserError(
                    f"--snr {text!r}: {tok!r} is neither a number (dB) nor 'clean'"
                ) from None
            if not math.isfinite(value):
                raise UserError(f"--snr {text!r}: {tok!r} is not a finite number")
        if value in out:
            raise UserError(f"--snr {text!r}: {tok!r} appears twice")
        out.append(value)
    return out


def parse_categories(text: str, allowed: Sequence[str] = CATEGORIES) -> list[str]:
    """``"babble,music"`` -> ``["babble", "music"]``, checked against ``allowed``."""
    items = [t.strip() for t in text.split(",")] if text else []
    if not items or any(not t for t in items):
        raise UserError(
            f"--noise {text!r}: expected a comma-separated list of {', '.join(allowed)}"
        )
    for t in items:
        if t not in allowed:
            raise UserError(
                f"--noise {text!r}: unknown noise type {t!r} (choose from {', '.join(allowed)})"
            )
    return list(dict.fromkeys(items))


def stable_hash(*parts: str | int) -> int:
    """64-bit integer from SHA-256 of the parts (stable across processes and runs)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


class NoiseBank:
    """Noise files of a MUSAN-layout folder, by category.

    Args:
        root: the noise folder (``{category}/**/*.wav``).
        split: when given and ``{category}/{split}.tsv`` exists, only the files
            listed there are used (paths absolute, or relative to the list's
            folder, the noise folder or its parent); otherwise every ``*.wav``
            under the category folder, at any depth, sorted by path.
        categories: restrict to these categories (default: every sub-folder).
        cache_files: how many decoded files to keep in memory (LRU).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | None = None,
        categories: Sequence[str] | None = None,
        sample_rate: int = SAMPLE_RATE,
        cache_files: int = 64,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: noise folder not found")
        self.split = split
        self.sample_rate = sample_rate
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cache_size = max(1, cache_files)
        names = (
            list(categories)
            if categories is not None
            else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        )
        self._files: dict[str, list[Path]] = {c: self._list(c) for c in names}

    def _list(self, category: str) -> list[Path]:
        folder = self.root / category
        if not folder.is_dir():
            return []
        lst = folder / f"{self.split}.tsv" if self.split else None
        if lst is not None and lst.is_file():
            files = []
            for lineno, line in enumerate(lst.read_text(encoding="utf-8").splitlines(), start=1):
                entry = line.strip().split("\t")[0]
                if not entry:
                    continue
                p = Path(entry)
                candidates = (
                    [p] if p.is_absolute() else [folder / p, self.root / p, self.root.parent / p]
                )
                found = next((c for c in candidates if c.is_file()), None)
                if found is None:
                    raise UserError(f"{lst}:{lineno}: noise file not found: {entry}")
                files.append(found)
            return sorted(files)
        return sorted(f for f in folder.rglob("*.wav") if f.is_file())

    @property
    def categories(self) -> list[str]:
        """Categories that have at least one file."""
        return [c for c, f in self._files.items() if f]

    def files(self, category: str) -> list[Path]:
        """The files of ``category`` (sorted); UserError naming category and folder if none."""
        if category not in self._files:
            self._files[category] = self._list(category)
        files = self._files[category]
        if not files:
            where = f" (list {self.split}.tsv)" if self.split else ""
            raise UserError(
                f"{self.root}: no noise files of type '{category}' in {self.root / category}{where}"
            )
        return files

    def load(self, path: Path) -> np.ndarray:
        """Decoded float32 16 kHz mono samples of one noise file (cached)."""
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        audio = read_audio(path, self.sample_rate)
        if audio.size == 0:
            raise UserError(f"{path}: empty noise file")
        self._cache[path] = audio
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return audio

    @staticmethod
    def _cut(noise: np.ndarray, n_samples: int, draw: int) -> np.ndarray:
        """``n_samples`` from ``noise`` at an offset chosen by the integer ``draw``."""
        span = noise.size - n_samples + 1 if noise.size >= n_samples else noise.size
        return fit_length(noise, n_samples, draw % span)

    def sample(self, category: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Random noise of ``category``, ``n_samples`` long (training augmentation)."""
        files = self.files(category)
        path = files[int(rng.integers(len(files)))]
        return self._cut(self.load(path), n_samples, int(rng.integers(2**62)))

    def augment(
        self,
        clean: np.ndarray,
        rng: np.random.Generator,
        *,
        snr_range: tuple[float, float] = (0.0, 0.0),
        categories: Sequence[str] | None = None,
    ) -> np.ndarray:
        """``clean`` mixed with a random category/file/offset at an SNR uniform in ``snr_range``."""
        cats = list(categories) if categories else self.categories
        if not cats:
            raise UserError(f"{self.root}: no noise files in any category")
        cat = cats[int(rng.integers(len(cats)))]
        lo, hi = snr_range
        snr = float(lo) if hi <= lo else float(rng.uniform(lo, hi))
        noise = self.sample(cat, clean.shape[-1], rng)
        return mix_at_snr(clean, noise, snr)

    def for_clip(self, clip_id: str, category: str, n_samples: int, seed: int) -> np.ndarray:
        """Deterministic noise for a clip: file and offset from SHA-256(seed, category, clip id)."""
        files = self.files(category)
        path = files[stable_hash("file", seed, category, clip_id) % len(files)]
        return self._cut(self.load(path), n_samples, stable_hash("offset", seed, category, clip_id))

    def mix_for_clip(
        self, clean: np.ndarray, clip_id: str, category: str, snr_db: float | None, seed: int
    ) -> np.ndarray:
        """``clean`` with this clip's deterministic noise at ``snr_db`` (``None``: clean copy)."""
        if snr_db is None:
            return _as_float(clean)
        return mix_at_snr(clean, self.for_clip(clip_id, category, clean.shape[-1], seed), snr_db)
