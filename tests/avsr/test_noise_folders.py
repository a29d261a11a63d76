"""NoiseBank on nested (MUSAN-as-unpacked) folders; babble mixing; the noise request check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.babble import mix_babble
from avsr.data.config import DataConfig, check_noise_request
from avsr.errors import UserError
from avsr.noise import NoiseBank


def _wav(path: Path, n: int = 800) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, 0.1, dtype=np.float32), 16000)


def test_nested_category_folders(tmp_path: Path) -> None:
    for rel in ("music/fma/b.wav", "music/fma/a.wav", "music/rfm/deep/c.wav", "music/top.wav",
                "noise/free-sound/x.wav", "speech/us-gov/y.wav"):  # fmt: skip
        _wav(tmp_path / rel)
    (tmp_path / "music" / "fma" / "ANNOTATIONS").write_text("x\n")
    bank = NoiseBank(tmp_path)
    assert bank.categories == ["music", "noise", "speech"]
    rels = [p.relative_to(tmp_path / "music").as_posix() for p in bank.files("music")]
    assert rels == ["fma/a.wav", "fma/b.wav", "rfm/deep/c.wav", "top.wav"]


def test_flat_folder_order_unchanged(tmp_path: Path) -> None:
    for name in ("b_1.wav", "a_10.wav", "a_2.wav", "B.wav"):
        _wav(tmp_path / "babble" / name)
    bank = NoiseBank(tmp_path)
    assert bank.files("babble") == sorted((tmp_path / "babble").glob("*.wav"))


def test_split_list_wins_over_nested_files(tmp_path: Path) -> None:
    _wav(tmp_path / "music" / "fma" / "a-000.wav")
    _wav(tmp_path / "music" / "fma" / "a-001.wav")
    (tmp_path / "music" / "test.tsv").write_text("music/fma/a-001.wav\n")
    assert NoiseBank(tmp_path, split="test").files("music") == [tmp_path / "music/fma/a-001.wav"]


def test_mix_babble_lazy_pools_round_robin() -> None:
    arrays = {"en": [np.ones(300, np.float32)], "es": [np.full(500, -1.0, np.float32)], "xx": []}
    loads: list[str] = []

    def load(key: str) -> np.ndarray:
        loads.append(key)
        return {"en1": arrays["en"][0], "es1": arrays["es"][0]}[key]

    out = mix_babble({"en": ["en1"], "es": ["es1"], "xx": []}, np.random.default_rng(0),
                     load=load, n_streams=2, min_seconds=0.05)  # fmt: skip
    assert out.shape == (800,) and out.dtype == np.float32
    assert loads == ["en1", "es1", "es1", "en1"]  # stream j starts with language j
    with pytest.raises(ValueError, match="no utterances"):
        mix_babble({"en": []}, np.random.default_rng(0), load=load)


def test_noise_request_needs_a_folder() -> None:
    check_noise_request(DataConfig())  # the default asks for nothing
    check_noise_request(DataConfig(noise_prob=0.0))
    check_noise_request(DataConfig(noise_prob=0.25, noise_dir="NOISE"))
    with pytest.raises(UserError) as err:
        check_noise_request(DataConfig(noise_prob=0.25), "configs/x.yaml")
    msg = str(err.value)
    assert msg.startswith("configs/x.yaml: data.noise_prob is 0.25")
    assert "data.noise_dir is null" in msg and "--set data.noise_dir=NOISE" in msg
    assert "data.noise_prob=0" in msg


def test_default_noise_prob_follows_noise_dir() -> None:
    assert DataConfig().train_noise_prob == 0.0
    assert DataConfig(noise_dir="N").train_noise_prob == 0.25
    assert DataConfig(noise_dir="N", noise_prob=0.5).train_noise_prob == 0.5
    assert DataConfig(noise_prob=0.0, noise_dir="N").train_noise_prob == 0.0
