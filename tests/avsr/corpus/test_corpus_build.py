"""End-to-end corpus builds: layout contract, face-mesh checks on the videos, determinism."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.corpus import grammar
from avsr.corpus.build import CLIPS_HEADER, CorpusConfig, build
from avsr.corpus.check import correlation, decode_frames, track_mouth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every language, one clip per split (built through the CLI)."""
    from avsr.cli import main

    out = tmp_path_factory.mktemp("corpus") / "c"
    assert main(["corpus", "build", "--size", "tiny", "--hours", "0.001", "--seed", "7", "--out", str(out)]) == 0
    return out


def _rows(corpus: Path) -> list[dict[str, str]]:
    lines = (corpus / "clips.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == list(CLIPS_HEADER)
    rows = []
    for line in lines[1:]:
        parts = line.split("\t")
        assert len(parts) == len(CLIPS_HEADER), line
        rows.append(dict(zip(CLIPS_HEADER, parts)))
    return rows


def test_layout_and_contract(corpus: Path) -> None:
    import av

    from avsr.noise import NoiseBank

    rows = _rows(corpus)
    assert len(rows) == 27
    for split in ("train", "valid", "test"):
        assert {r["lang"] for r in rows if r["split"] == split} == set(grammar.LANGUAGES)
    meta = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    assert meta["seed"] == 7 and meta["total_clips"] == 27
    train_spk = {r["speaker"] for r in rows if r["split"] == "train"}
    assert not train_spk & {r["speaker"] for r in rows if r["split"] == "test"}
    for r in rows:
        words = r["text"].split()
        if r["lang"] in grammar.X_TO_EN:
            assert r["translation"].split() == grammar.translate_to_english(r["lang"], words)
        else:
            assert r["translation"] == ""
        ali = json.loads((corpus / "alignments" / f"{r['id']}.json").read_text(encoding="utf-8"))
        assert [w["word"] for w in ali["words"]] == words
        assert all(w["visemes"] and 0 <= w["start"] < w["end"] <= ali["duration"] for w in ali["words"])
        audio, sr = sf.read(corpus / r["audio"], dtype="int16")
        assert sr == 16000 and audio.ndim == 1 and len(audio) == ali["n_samples"]
        assert sf.info(str(corpus / r["audio"])).subtype == "PCM_16"
        assert r["video"] == f"raw/{r['split']}/{r['id']}.mp4"
    # one video in detail: H.264 + AAC, frame count and rate as recorded
    r = rows[0]
    ali = json.loads((corpus / "alignments" / f"{r['id']}.json").read_text(encoding="utf-8"))
    with av.open(str(corpus / r["video"])) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        assert a.sample_rate == 16000 and Fraction(v.average_rate) == Fraction(ali["fps"])
        n = sum(1 for _ in c.decode(v))
    assert n == ali["n_frames"] == len(ali["mouth"]["opening"])
    # noise set: every category in every split, lists resolve
    for split in ("train", "valid", "test"):
        bank = NoiseBank(corpus / "noise", split=split)
        assert set(bank.categories) == {"babble", "music", "noise", "speech"}
        for cat in bank.categories:
            for f in bank.files(cat):
                info = sf.info(str(f))
                assert info.samplerate == 16000 and info.channels == 1
    lists = {s: set((corpus / "noise" / "music" / f"{s}.tsv").read_text().split()) for s in ("train", "valid", "test")}
    assert not lists["train"] & lists["test"]
    if any(p.startswith("noise/music/sonicpi-") for p in lists["train"]):
        assert any("ambi_" in p for p in (corpus / "noise" / "noise" / "train.tsv").read_text().split())


def test_face_found_and_lip_opening_follows_driver(corpus: Path) -> None:
    rows = _rows(corpus)
    found, measured, driver, per_clip = [], [], [], []
    for r in rows[::2]:
        ali = json.loads((corpus / "alignments" / f"{r['id']}.json").read_text(encoding="utf-8"))
        frames = decode_frames(corpus / r["video"])
        track = track_mouth(frames)
        d = np.asarray(ali["mouth"]["opening"])
        assert len(d) == len(frames)
        found.append(track.found)
        measured.append(track.opening)
        driver.append(d)
        per_clip.append(correlation(track.opening, d))
    share = float(np.concatenate(found).mean())
    r_all = correlation(np.concatenate(measured), np.concatenate(driver))
    assert share >= 0.99, share
    assert r_all >= 0.8, r_all
    assert np.nanmedian(per_clip) >= 0.8, per_clip


def _word_track(word: str, seed: int, tmp: Path) -> np.ndarray:
    """(2, 16) mediapipe lip opening and width over the word (resampled to 16 points),
    minus their values at rest before the word (removes the speaker's face shape)."""
    from avsr.corpus.build import make_look
    from avsr.corpus.face import FaceRenderer
    from avsr.corpus.speech import make_voice, utterance
    from avsr.corpus.video import render_clip

    rng = np.random.default_rng(seed)
    voice = make_voice("en", 0, np.random.default_rng(0))
    renderer = FaceRenderer(make_look(0, np.random.default_rng(seed)))
    audio, timings = utterance(voice, [word], rng)
    path = tmp / f"{word}-{seed}.mp4"
    render_clip(renderer, audio, timings, Fraction(25), rng, path)
    track = track_mouth(decode_frames(path))
    assert track.found.all()
    t = np.arange(len(track.found)) / 25.0
    grid = np.linspace(timings[0].start, timings[0].end, 16)
    rest = t < timings[0].start - 0.06
    return np.stack([np.interp(grid, t, x) - np.median(x[rest]) for x in (track.opening, track.width)])


def test_different_words_give_different_mouth_shapes(tmp_path: Path) -> None:
    # same word by two different-looking speakers vs two different words
    a1, a2 = _word_track("blue", 1, tmp_path), _word_track("blue", 2, tmp_path)
    b1, b2 = _word_track("open", 1, tmp_path), _word_track("open", 2, tmp_path)

    def dist(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.sqrt(np.mean((x - y) ** 2)))

    same = max(dist(a1, a2), dist(b1, b2))
    diff = min(dist(a1, b1), dist(a2, b2), dist(a1, b2), dist(a2, b1))
    assert diff > 1.5 * same, (diff, same)
    # "open" opens wide at its start, "blue" (b-l-u-e) starts closed and opens little
    assert min(b1[0].max(), b2[0].max()) > max(a1[0].max(), a2[0].max()) + 0.015
    assert max(b1[0][:3].mean(), b2[0][:3].mean()) > 0.03 > max(a1[0][:3].mean(), a2[0][:3].mean())


def test_same_seed_same_bytes_and_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLAVSR_MEDIA_DIR", str(tmp_path / "no-media"))  # no sonic-pi: faster
    cfg = dict(size="tiny", seed=3, hours=0.001, langs=["en", "el"])
    a, b = tmp_path / "a", tmp_path / "b"
    build(CorpusConfig(**cfg, workers=2), a)
    build(CorpusConfig(**cfg, workers=1), b)
    wavs = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(wavs) > 6 and wavs == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    for rel in wavs:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for p in sorted(a.rglob("*.mp4")):
        fa, fb = decode_frames(p), decode_frames(b / p.relative_to(a))
        assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb)), p
    for name in ("clips.tsv", "corpus.json"):
        assert (a / name).read_text() == (b / name).read_text()


def test_rerun_skips_and_refuses_other_settings(corpus: Path) -> None:
    from avsr.errors import UserError

    mp4 = corpus / _rows(corpus)[0]["video"]
    before = mp4.stat().st_mtime_ns
    build(CorpusConfig(size="tiny", hours=0.001, seed=7), corpus)
    assert mp4.stat().st_mtime_ns == before
    with pytest.raises(UserError, match="other settings"):
        build(CorpusConfig(size="tiny", hours=0.001, seed=8), corpus)
