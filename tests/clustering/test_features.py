"""``avsr features``: HuBERT-layout dumps, early exit, padding, sharding, resume, MFCC, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avsr.cli import main
from avsr.errors import UserError
from avsr.models.encoders import load_encoder
from avsr.models.xlsr import build_encoder, conv_frame_count
from clustering import features as F
from clustering.features import (
    FeatureDumpConfig,
    MfccFeaturizer,
    dump_features,
    find_shards,
    iter_utterances,
)
from tests.helpers.audio_corpus import read_clip, write_noise_corpus

LENGTHS = [8000, 2500, 6345, 4000, 0, 300, -3200, 10000, 1500]


def reference(tiny_xlsr_dir: Path, manifest: Path, layer: int) -> list[np.ndarray]:
    enc = load_encoder(tiny_xlsr_dir)
    out = []
    for i in range(len(LENGTHS)):
        wav = read_clip(manifest, i)
        if enc.frame_count(wav.size) == 0:
            out.append(np.zeros((0, enc.model_dim), np.float32))
            continue
        with torch.no_grad():
            f, _ = enc(
                torch.from_numpy(wav)[None], torch.tensor([wav.size]), layer=layer, normalize=True
            )
        out.append(f[0].numpy())
    return out


def test_dump_matches_single_items(tiny_xlsr_dir: Path, tmp_path: Path) -> None:
    manifest = write_noise_corpus(tmp_path / "data", LENGTHS)
    cfg = FeatureDumpConfig(
        manifest=manifest,
        out=tmp_path / "feats",
        encoder=str(tiny_xlsr_dir),
        layer=2,
        batch_frames=60,
    )
    res = dump_features(cfg)
    lens = [int(x) for x in (tmp_path / "feats" / "train_0_1.len").read_text().split()]
    assert lens == [
        conv_frame_count(abs(n), build_encoder("tiny", device="meta").config.conv_layers)
        for n in LENGTHS
    ]
    assert res.frames == sum(lens) and res.dim == 128
    arr = np.load(res.npy)
    assert arr.shape == (sum(lens), 128) and arr.dtype == np.float32
    ref = reference(tiny_xlsr_dir, manifest, 2)
    for got, want in zip(iter_utterances(find_shards(tmp_path / "feats", "train")), ref):
        assert got.shape == want.shape
        if want.size:
            assert np.abs(got - want).max() < 1e-4
    meta = json.loads((tmp_path / "feats" / "train_0_1.json").read_text())
    assert any("empty audio" in n for n in meta["notes"]) and any(
        "all-zero" in n for n in meta["notes"]
    )
    assert any("shorter than one" in n for n in meta["notes"])
    assert not list((tmp_path / "feats").glob(".*"))  # no temp files left
    again = dump_features(cfg)
    assert again.skipped
    cfg.layer = 3
    with pytest.raises(UserError, match="other settings"):
        dump_features(cfg)


def test_sharding_equals_single_run(tiny_xlsr_dir: Path, tmp_path: Path) -> None:
    manifest = write_noise_corpus(tmp_path / "data", LENGTHS[:5] + [4500])
    base = dict(manifest=manifest, encoder=str(tiny_xlsr_dir), layer=1)
    one = dump_features(FeatureDumpConfig(out=tmp_path / "a", **base))
    for r in range(3):
        dump_features(FeatureDumpConfig(out=tmp_path / "b", rank=r, world=3, **base))
    shards = find_shards(tmp_path / "b", "train")
    assert len(shards) == 3
    joined = np.concatenate([s.open() for s in shards])
    np.testing.assert_allclose(joined, np.load(one.npy), atol=1e-4)
    (tmp_path / "b" / "train_1_3.npy").unlink()
    with pytest.raises(UserError, match="missing ranks \\[1\\]"):
        find_shards(tmp_path / "b", "train")


def test_resume_after_crash(
    tiny_xlsr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_noise_corpus(tmp_path / "data", [8000, 7000, 6000, 5000, 4000])
    cfg = FeatureDumpConfig(
        manifest=manifest, out=tmp_path / "f", encoder=str(tiny_xlsr_dir), layer=2, batch_frames=20
    )
    calls = {"n": 0}
    real = F._Runner.__call__

    def crashing(self: F._Runner, wavs: list[np.ndarray]) -> list[np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, wavs)

    monkeypatch.setattr(F._Runner, "__call__", crashing)
    with pytest.raises(KeyboardInterrupt):
        dump_features(cfg)
    assert not (tmp_path / "f" / "train_0_1.npy").exists()
    calls["n"] = -100
    res = dump_features(cfg)
    assert calls["n"] == -100 + 3  # 5 batches of one row each: 2 were kept, 3 redone
    full = dump_features(
        FeatureDumpConfig(manifest=manifest, out=tmp_path / "g", encoder=str(tiny_xlsr_dir), layer=2)
    )
    np.testing.assert_allclose(np.load(res.npy), np.load(full.npy), atol=1e-4)


def test_mfcc_frames_match_cnn() -> None:
    conv = build_encoder("tiny", device="meta").config.conv_layers
    m = MfccFeaturizer()
    rng = np.random.default_rng(0)
    for n in [0, 399, 400, 719, 720, 721, 1039, 1040, 16000, 16001, 33333]:
        assert m.frame_count(n) == conv_frame_count(n, conv)
        f = m(rng.standard_normal(n).astype(np.float32))
        assert f.shape == (conv_frame_count(n, conv), 39) and np.isfinite(f).all()
    # a tone shows up in the cepstrum, silence does not crash
    assert np.isfinite(m(np.zeros(4000, np.float32))).all()


def test_bad_input(tmp_path: Path) -> None:
    manifest = write_noise_corpus(tmp_path / "data", [4000, 4000, 4000])
    (tmp_path / "data" / "audio" / "u1.wav").unlink()
    with pytest.raises(UserError, match=r"1 audio files not found: u1"):
        dump_features(FeatureDumpConfig(manifest=manifest, out=tmp_path / "f", encoder="mfcc"))
    # stereo at 8 kHz: downmixed and resampled, and said so
    st = (0.1 * np.random.default_rng(1).standard_normal((4000, 2))).astype(np.float32)
    sf.write(tmp_path / "data" / "audio" / "u1.wav", st, 8000)
    res = dump_features(FeatureDumpConfig(manifest=manifest, out=tmp_path / "f", encoder="mfcc"))
    assert [int(x) for x in res.lens.read_text().split()][1] == MfccFeaturizer.frame_count(8000)
    notes = " ".join(res.notes)
    assert "downmixed" in notes and "resampled to 16000" in notes
    (tmp_path / "data" / "audio" / "u2.wav").write_bytes(b"not audio at all")
    with pytest.raises(UserError, match="u2.wav: cannot read audio"):
        dump_features(FeatureDumpConfig(manifest=manifest, out=tmp_path / "h", encoder="mfcc"))
    with pytest.raises(UserError, match="rank 2 is not in 0..1"):
        dump_features(
            FeatureDumpConfig(
                manifest=manifest, out=tmp_path / "h", encoder="mfcc", rank=2, world=2
            )
        )


def test_length_batches_respect_budget() -> None:
    lens = [50, 10, 30, 30, 5, 70, 20]
    batches = F.length_batches(lens, batch_frames=80, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lens)))
    for b in batches:
        assert len(b) <= 3 and len(b) * max(lens[i] for i in b) <= 80 or len(b) == 1
        assert [lens[i] for i in b] == sorted((lens[i] for i in b), reverse=True)


def test_cli_env_rank(
    tiny_xlsr_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = write_noise_corpus(tmp_path / "data", [6000, 7000, 8000, 9000])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["features", "--manifest", str(manifest), "--encoder", str(tiny_xlsr_dir)]
    assert main([*args, "--layer", "3", "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "train_1_2.npy").is_file() and (
        tmp_path / "f" / "features_train_1_2.yaml"
    ).is_file()
    assert len((tmp_path / "f" / "train_1_2.len").read_text().split()) == 2
    assert main([*args, "--layer", "9", "--out", str(tmp_path / "x")]) == 2
    assert "layers 1..4" in capsys.readouterr().err
