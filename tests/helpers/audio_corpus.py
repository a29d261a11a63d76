"""Audio-only corpora in the manifest format (16-bit wavs + ``train.tsv``) for the feature tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from avsr.io import ManifestRow, write_manifest

SR = 16000


def write_noise_corpus(root: Path, lengths: list[int], seed: int = 0) -> Path:
    """Clips ``u<i>`` of ``0.1 N(0, 1)`` noise with the given lengths in samples (an entry 0 = an
    empty file, negative = all zeros of ``|n|`` samples) under ``root/audio``, listed in
    ``root/train.tsv``; returns the manifest path."""
    rng = np.random.default_rng(seed)
    rows = []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(lengths):
        wav = (
            np.zeros(abs(n), np.float32)
            if n <= 0
            else (0.1 * rng.standard_normal(n)).astype(np.float32)
        )
        sf.write(root / "audio" / f"u{i}.wav", wav, SR, subtype="PCM_16")
        rows.append(
            ManifestRow(
                id=f"u{i}",
                video=f"video/u{i}.mp4",
                audio=f"audio/u{i}.wav",
                n_video_frames=0,
                n_audio_samples=abs(n),
            )
        )
    write_manifest(root / "train.tsv", root, rows)
    return root / "train.tsv"


def read_clip(manifest: Path, i: int) -> np.ndarray:
    """Clip ``u<i>`` of a :func:`write_noise_corpus` corpus as float32 samples."""
    wav, _ = sf.read(manifest.parent / "audio" / f"u{i}.wav", dtype="float32")
    return wav
