"""Features -> k-means -> units from the command line, on a hand-made manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.cli import main
from avsr.io import ManifestRow, write_manifest
from avsr.models.xlsr import arch_config, conv_frame_count

SR = 16000


def tone_corpus(root: Path, split: str, n: int, seed: int) -> list[int]:
    """Clips of three alternating 'phones' (tones) with silence, and their frame labels file."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows, lengths = [], []
    for i in range(n):
        parts = []
        for _ in range(4):
            f = rng.choice([300.0, 900.0, 2200.0])
            dur = int(rng.integers(2400, 4800))
            t = np.arange(dur) / SR
            parts += [0.3 * np.sin(2 * np.pi * f * t), np.zeros(int(rng.integers(800, 1600)))]
        wav = (np.concatenate(parts) + 0.003 * rng.standard_normal(sum(map(len, parts)))).astype(
            np.float32
        )
        sf.write(root / "audio" / f"{split}{i}.wav", wav, SR, subtype="PCM_16")
        rows.append(
            ManifestRow(
                id=f"{split}{i}",
                video="",
                audio=f"audio/{split}{i}.wav",
                n_video_frames=0,
                n_audio_samples=wav.size,
            )
        )
        lengths.append(wav.size)
    write_manifest(root / f"{split}.tsv", root, rows)
    return lengths


def test_mfcc_units_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    lengths = {
        s: tone_corpus(data, s, n, seed) for s, n, seed in (("train", 6, 0), ("valid", 3, 1))
    }
    f, km, lab = (str(tmp_path / name) for name in ("f", "km", "lab"))
    for split in lengths:
        assert main(["features", "--manifest", str(data / f"{split}.tsv"), "--encoder", "mfcc", "--out", f]) == 0
    assert main(["kmeans", "fit", "--feats", f, "--out", km, "--k", "12", "--sample-share", "1"]) == 0
    assert main(["kmeans", "apply", "--model", km, "--feats", f, "--out", lab, "--data", str(data)]) == 0
    conv = arch_config("xlsr_300m").conv_layers
    for split, lens in lengths.items():
        lines = (tmp_path / "lab" / f"{split}.km").read_text().splitlines()
        assert [len(ln.split()) for ln in lines] == [conv_frame_count(n, conv) for n in lens]
        rep = json.loads((tmp_path / "lab" / f"{split}.km.json").read_text())
        assert rep["used_clusters"] >= 6 and rep["entropy_bits"] > 2.0  # no collapse
    assert (tmp_path / "lab" / "dict.km.txt").read_text().splitlines()[0] == "0 1"
    assert "train: 6 utterances" in capsys.readouterr().out
