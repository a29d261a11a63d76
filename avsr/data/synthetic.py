"""Tiny synthetic MuAViC-format data (wav + 96x96 ROI mp4 + units + text) for tests and benchmarks.

Each clip is a sequence of 0.1 s segments, each segment one "unit": the audio is
a tone whose pitch encodes the unit and the video frames' brightness pattern
encodes it too, so a small model can learn units from either modality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from avsr.audio import SAMPLE_RATE
from avsr.data.media import SAMPLES_PER_VIDEO_FRAME, cnn_frames, write_video_gray
from avsr.io import ManifestRow, write_labels, write_manifest

SEGMENT = SAMPLE_RATE // 10
WORDS = ["bin", "blue", "at", "one", "now", "lay", "red", "by", "two", "please"]


def _clip(
    rng: np.random.Generator, n_video: int, n_units: int, image_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_audio = n_video * SAMPLES_PER_VIDEO_FRAME
    n_seg = -(-n_audio // SEGMENT)
    seg_units = rng.integers(0, n_units, size=n_seg)
    t = np.arange(n_audio) / SAMPLE_RATE
    freq = 200.0 + 60.0 * seg_units[np.arange(n_audio) // SEGMENT]
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n_audio)
    frames = cnn_frames(n_audio)
    centres = np.arange(frames) * 320 + 200
    units = seg_units[np.minimum(centres // SEGMENT, n_seg - 1)]
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    video = np.empty((n_video, image_size, image_size), dtype=np.uint8)
    for f in range(n_video):
        u = int(seg_units[min((f * SAMPLES_PER_VIDEO_FRAME) // SEGMENT, n_seg - 1)])
        mouth = ((yy - image_size / 2) ** 2 / (4 + u) ** 2 + (xx - image_size / 2) ** 2 / 30**2) < 1
        video[f] = np.where(mouth, 40, 170 + 3 * u).astype(np.uint8)
    return audio.astype(np.float32), video, units


def make_synthetic_av_data(
    root: str | Path,
    *,
    n_clips: int = 8,
    split: str = "train",
    min_frames: int = 10,
    max_frames: int = 40,
    n_units: int = 20,
    image_size: int = 96,
    langs: tuple[str, ...] = ("en", "es"),
    unit_jitter: bool = True,
    noise: bool = True,
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset under ``root``; return the manifest path ``root/{split}.tsv``.

    Files: ``video/{id}.mp4``, ``audio/{id}.wav``, ``{split}.tsv``, ``{split}.km``
    (+/- 1 frame jitter when ``unit_jitter``), ``dict.km.txt``, ``{split}.wrd``,
    ``{split}.lang`` and, with ``noise``, ``noise/{babble,music,noise,speech}/*.wav``.
    """
    root = Path(root)
    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, n_clips])
    rows, units_lines, words, lang_lines = [], [], [], []
    for i in range(n_clips):
        cid = f"{split}_{i:04d}"
        n_video = int(rng.integers(min_frames, max_frames + 1))
        audio, video, units = _clip(rng, n_video, n_units, image_size)
        sf.write(root / "audio" / f"{cid}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        write_video_gray(root / "video" / f"{cid}.mp4", video)
        if unit_jitter and i % 3 == 1:
            units = units[:-1]
        elif unit_jitter and i % 3 == 2:
            units = np.concatenate([units, units[-1:]])
        rows.append(
            ManifestRow(
                id=cid,
                video=f"video/{cid}.mp4",
                audio=f"audio/{cid}.wav",
                n_video_frames=n_video,
                n_audio_samples=audio.size,
            )
        )
        units_lines.append(" ".join(map(str, units.tolist())))
        words.append(" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=3)))
        lang_lines.append(langs[i % len(langs)])
    write_manifest(root / f"{split}.tsv", root.resolve(), rows)
    write_labels(root / f"{split}.km", units_lines)
    write_labels(root / f"{split}.wrd", words)
    write_labels(root / f"{split}.lang", lang_lines)
    write_labels(root / "dict.km.txt", [f"{u} 1" for u in range(n_units)])
    if noise:
        _write_noise(root / "noise", seed)
    return root / f"{split}.tsv"


def _write_noise(noise_dir: Path, seed: int) -> None:
    """Two short Gaussian-noise wavs per category under ``noise_dir/{category}/``."""
    for j, cat in enumerate(("babble", "music", "noise", "speech")):
        (noise_dir / cat).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            sig = np.random.default_rng([seed, j, k]).standard_normal(SAMPLE_RATE // 2 + 997 * k) * 0.1
            sf.write(noise_dir / cat / f"{cat}_{k}.wav", sig.astype(np.float32), SAMPLE_RATE)
