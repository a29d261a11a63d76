"""The feature dump under bf16 autocast on CPU (``dtype="bf16"``, ``device="cpu"``): the same
per-op dtype policy as a GPU's bf16 dump.

Tolerance: every frame's cosine similarity to the fp32 dump > 0.995 (measured on the tiny
XLS-R, torch 2.9.1: min 0.9998 at layer 2 and at the last layer + final norm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clustering.features import FeatureDumpConfig, dump_features
from tests.helpers.audio_corpus import write_noise_corpus

MIN_COSINE = 0.995


@pytest.mark.parametrize("layer", [2, None])
def test_bf16_dump_close_to_fp32(tiny_xlsr_dir: Path, tmp_path: Path, layer: int | None) -> None:
    manifest = write_noise_corpus(tmp_path / "data", [8000, 2500, 6345, 4000, 10000])
    feats = {}
    for dtype in ("fp32", "bf16"):
        cfg = FeatureDumpConfig(
            manifest=manifest, out=tmp_path / dtype, encoder=str(tiny_xlsr_dir), layer=layer,
            batch_frames=60, dtype=dtype, device="cpu",
        )  # fmt: skip
        feats[dtype] = np.load(dump_features(cfg).npy)
    a, b = feats["fp32"], feats["bf16"]
    assert a.shape == b.shape and b.dtype == np.float32 and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # autocast ran
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > MIN_COSINE, cos.min()
