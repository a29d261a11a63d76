"""``avsr noise prepare`` on a MUSAN-shaped tree and ``avsr noise babble`` on a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.cli import main as cli_main
from avsr.errors import UserError
from avsr.io import ManifestRow, write_labels, write_manifest
from avsr.noise import NoiseBank
from preprocessing.noise_prep import (
    SPLITS,
    PrepareOptions,
    assign_splits,
    piece_bounds,
    prepare_musan,
)

SR = 16000
# category -> source -> (recording name, seconds)
MUSAN_FILES = {
    "music": {"fma": [("music-fma-0000", 21.0), ("music-fma-0001", 4.0)],
              "jamendo": [("music-jamendo-0000", 12.0)], "rfm": [("music-rfm-0000", 5.0)]},
    "noise": {"free-sound": [("noise-free-sound-0000", 6.0), ("noise-free-sound-0001", 2.0)],
              "sound-bible": [("noise-sound-bible-0000", 4.0), ("noise-sound-bible-0001", 3.5)]},
    "speech": {"librivox": [("speech-librivox-0000", 11.0), ("speech-librivox-0001", 5.0)],
               "us-gov": [("speech-us-gov-0000", 4.0), ("speech-us-gov-0001", 6.0)]},
}  # fmt: skip


def _musan_tree(root: Path) -> Path:
    """MUSAN as it unpacks: README, per-source ANNOTATIONS/LICENSE, wavs; one 44.1 kHz
    stereo recording and one file that is not a wav at all."""
    musan = root / "musan"
    musan.mkdir(parents=True)
    (musan / "README").write_text("MUSAN: music, speech and noise\n")
    rng = np.random.default_rng(0)
    for cat, sources in MUSAN_FILES.items():
        for source, recs in sources.items():
            folder = musan / cat / source
            folder.mkdir(parents=True)
            (folder / "ANNOTATIONS").write_text("name\tartist\n")
            (folder / "LICENSE").write_text("CC BY 4.0\n")
            for name, seconds in recs:
                audio = (rng.standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)
                sf.write(folder / f"{name}.wav", audio, SR, subtype="PCM_16")
    hi = (rng.standard_normal((int(5.0 * 44100), 2)) * 0.1).astype(np.float32)
    sf.write(musan / "music" / "rfm" / "music-rfm-0001.wav", hi, 44100, subtype="PCM_16")
    (musan / "noise" / "sound-bible" / "noise-sound-bible-0002.wav").write_bytes(b"not a wav")
    return musan


def _lists(noise: Path, cat: str) -> dict[str, list[str]]:
    return {s: (noise / cat / f"{s}.tsv").read_text().splitlines() for s in SPLITS}


def test_piece_bounds_and_splits() -> None:
    assert piece_bounds(2 * SR, SR) == []
    assert piece_bounds(4 * SR, SR) == [(0, 4 * SR)]
    assert piece_bounds(12 * SR, SR) == [(0, 10 * SR)]  # a 2 s tail is dropped
    assert piece_bounds(21 * SR, SR) == [(0, 10 * SR), (10 * SR, 21 * SR)]  # 1 s tail joins
    assert piece_bounds(24 * SR, SR) == [(0, 10 * SR), (10 * SR, 20 * SR), (20 * SR, 24 * SR)]
    items = [f"r{i:02d}" for i in range(20)]
    a = assign_splits(items, 3, "music")
    assert a == assign_splits(list(reversed(items)), 3, "music")  # deterministic, order-free
    counts = {s: sum(v == s for v in a.values()) for s in SPLITS}
    assert counts == {"train": 16, "valid": 2, "test": 2}
    assert a != assign_splits(items, 4, "music")


def test_prepare_musan_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    musan = _musan_tree(tmp_path)
    noise = tmp_path / "NOISE"
    rc = cli_main(["noise", "prepare", "--musan", str(musan), "--out", str(noise),
                   "--babble-files", "10", "--seed", "1"])  # fmt: skip
    assert rc == 0
    assert "skipped 2, resampled 1" in capsys.readouterr().out
    report = json.loads((noise / "prepare.json").read_text())
    skipped = {s["file"]: s["reason"] for s in report["skipped_files"]}
    assert set(skipped) == {"noise/sound-bible/noise-sound-bible-0002.wav",
                            "noise/free-sound/noise-free-sound-0001.wav"}  # fmt: skip
    assert skipped["noise/free-sound/noise-free-sound-0001.wav"].startswith("shorter than 3")
    assert report["resampled_files"] == [{"file": "music/rfm/music-rfm-0001.wav", "rate": 44100, "channels": 2}]
    for cat in ("all", "babble", "music", "noise", "speech"):
        lists = _lists(noise, cat)
        flat = [p for s in SPLITS for p in lists[s]]
        assert len(flat) == len(set(flat)), cat  # train/valid/test disjoint
        assert lists["train"], cat
        if cat in ("music", "noise", "speech"):  # pieces of one recording stay in one split
            split_of = {}
            for s in SPLITS:
                for p in lists[s]:
                    assert split_of.setdefault(p.rsplit("-", 1)[0], s) == s
            for p in flat:
                info = sf.info(str(noise / p))
                assert info.samplerate == SR and info.channels == 1
                assert 3.0 <= info.duration <= 11.0
    assert len(_lists(noise, "music")["train"]) + len(_lists(noise, "music")["valid"]) + len(
        _lists(noise, "music")["test"]
    ) == 6  # 21 s -> 2, 4 s, 12 s -> 1, 5 s, 44.1 kHz 5 s
    assert [len(_lists(noise, "babble")[s]) for s in SPLITS] == [8, 1, 1]
    all_test = set(_lists(noise, "all")["test"])
    assert all_test == {p for c in ("music", "noise", "babble") for p in _lists(noise, c)["test"]}
    bank = NoiseBank(noise, split="test")
    assert set(bank.categories) == {"all", "babble", "music", "noise", "speech"}
    assert [p.relative_to(noise).as_posix() for p in bank.files("music")] == _lists(noise, "music")["test"]
    assert bank.load(bank.files("babble")[0]).size == 10 * SR
    nested = NoiseBank(noise)  # no split: every wav under the category folder, at any depth
    assert len(nested.files("speech")) == sum(len(v) for v in _lists(noise, "speech").values())


def test_prepare_is_deterministic(tmp_path: Path) -> None:
    musan = _musan_tree(tmp_path)
    opts = PrepareOptions(seed=5, babble_files=3, babble_streams=4)
    prepare_musan(musan, tmp_path / "a", opts)
    prepare_musan(tmp_path, tmp_path / "b", opts)  # the folder above musan/ is accepted too
    for cat in ("all", "babble", "music", "noise", "speech"):
        assert _lists(tmp_path / "a", cat) == _lists(tmp_path / "b", cat)
    a = sf.read(tmp_path / "a" / _lists(tmp_path / "a", "babble")["test"][0])[0]
    b = sf.read(tmp_path / "b" / _lists(tmp_path / "b", "babble")["test"][0])[0]
    assert np.array_equal(a, b)


def test_prepare_names_missing_category(tmp_path: Path) -> None:
    musan = tmp_path / "musan"
    (musan / "music" / "fma").mkdir(parents=True)
    (musan / "noise").mkdir()
    with pytest.raises(UserError, match=r"missing .*speech"):
        prepare_musan(musan, tmp_path / "out")
    (musan / "speech").mkdir()
    with pytest.raises(UserError, match=r"music: no \.wav files"):
        prepare_musan(musan, tmp_path / "out")


def _manifest(data: Path) -> None:
    """train: 3 speakers x 2 utterances in en and es; valid: one more speaker."""
    rng = np.random.default_rng(1)
    (data / "audio").mkdir(parents=True)
    for split, speakers in (("train", 3), ("valid", 1)):
        rows, langs = [], []
        for lang in ("en", "es"):
            for s in range(speakers):
                spk = f"{lang}{split}{s}"
                for u in range(2):
                    cid = f"{spk}/{u:03d}"
                    audio = (rng.standard_normal(SR // 2) * 0.1).astype(np.float32)
                    sf.write(data / "audio" / f"{spk}_{u}.wav", audio, SR, subtype="PCM_16")
                    rows.append(ManifestRow(id=cid, video=f"video/{spk}_{u}.mp4",
                                            audio=f"audio/{spk}_{u}.wav",
                                            n_video_frames=12, n_audio_samples=audio.size))  # fmt: skip
                    langs.append(lang)
        write_manifest(data / f"{split}.tsv", data.resolve(), rows)
        write_labels(data / f"{split}.lang", langs)


def test_babble_from_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, noise = tmp_path / "DATA", tmp_path / "NOISE"
    _manifest(data)
    rc = cli_main(["noise", "babble", "--data", str(data), "--out", str(noise / "babble"),
                   "--train-files", "3", "--eval-files", "2", "--seconds", "2", "--streams", "4"])  # fmt: skip
    assert rc == 0
    assert "train 3, valid 2, test 2" in capsys.readouterr().out
    meta = json.loads((noise / "babble" / "babble.json").read_text())
    for lang in ("en", "es"):
        train, held = set(meta["speakers"]["train"][lang]), set(meta["speakers"]["heldout"][lang])
        assert len(held) == 1 and len(train) == 2 and not train & held
        assert all("valid" not in s for s in train | held)  # training speakers only
    lists = _lists(noise, "babble")
    assert [len(lists[s]) for s in SPLITS] == [3, 2, 2]
    assert not set(lists["train"]) & set(lists["test"])
    bank = NoiseBank(noise, split="test", categories=["babble"])
    files = bank.files("babble")
    assert [p.relative_to(noise).as_posix() for p in files] == lists["test"]
    assert bank.load(files[0]).size == 2 * SR


def test_babble_needs_two_speakers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    sf.write(data / "a.wav", np.zeros(SR, dtype=np.float32) + 0.1, SR)
    write_manifest(data / "train.tsv", data, [ManifestRow(id="spk/1", video="v.mp4", audio="a.wav",
                                                         n_video_frames=25, n_audio_samples=SR)])  # fmt: skip
    assert cli_main(["noise", "babble", "--data", str(data), "--out", str(tmp_path / "b")]) == 2
    assert "two or more training speakers" in capsys.readouterr().err
