"""``avsr corpus speech``: audio-only speech of the corpus's training speakers, and the shipped encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from avsr.cli import main
from avsr.corpus.build import CorpusConfig, plan
from avsr.corpus.encoder import SHIPPED_ENCODER, resolve_demo_encoder
from avsr.corpus.speech_only import SpeechCorpusConfig, speech_plan
from avsr.errors import UserError
from avsr.io import read_labels, read_manifest


def test_plan_uses_only_training_speakers() -> None:
    cfg = SpeechCorpusConfig(hours=0.05, seed=5, langs=["en", "es"])
    jobs = speech_plan(cfg)
    speakers, _ = plan(CorpusConfig(size="small", seed=5, langs=["en", "es"], hours=1.0))
    split_of = {s.id: s.split for s in speakers}
    assert {split_of[s.id] for s, _ in jobs} == {"train"}
    assert {c.lang for _, c in jobs} == {"en", "es"}
    assert len({c.id for _, c in jobs}) == len(jobs)
    # the demo's valid/test speakers (same ids, any seed) are never used
    assert not {s.id for s, _ in jobs} & {s.id for s in speakers if s.split != "train"}


def test_build_writes_a_pretraining_data_folder(tmp_path: Path) -> None:
    out = tmp_path / "speech"
    assert main(["corpus", "speech", "--out", str(out), "--hours", "0.01", "--langs", "en", "fr", "--seed", "3", "--workers", "1"]) == 0
    train, valid = read_manifest(out / "train.tsv"), read_manifest(out / "valid.tsv")
    rows = train.rows + valid.rows
    assert len(rows) >= 10 and all(r.video == "-" for r in rows)
    for r in rows[:5]:
        info = sf.info(str(train.root / r.audio))
        assert info.samplerate == 16000 and info.frames == r.n_audio_samples
        assert r.n_video_frames == r.n_audio_samples * 25 // 16000
    assert len(read_labels(out / "train.wrd")) == len(train.rows)
    assert set(read_labels(out / "train.lang")) <= {"en", "fr"}
    # a rerun finds every clip and writes the same manifests
    before = (out / "train.tsv").read_text()
    assert main(["corpus", "speech", "--out", str(out), "--hours", "0.01", "--langs", "en", "fr", "--seed", "3", "--workers", "1"]) == 0
    assert (out / "train.tsv").read_text() == before


def test_bad_settings_are_errors(tmp_path: Path) -> None:
    from avsr.corpus.speech_only import build_speech

    with pytest.raises(UserError, match="unknown languages"):
        build_speech(SpeechCorpusConfig(hours=0.01, langs=["xx"]), tmp_path / "a")
    with pytest.raises(UserError, match="hours"):
        build_speech(SpeechCorpusConfig(hours=0.0), tmp_path / "b")


def test_shipped_encoder_loads_as_an_xlsr_encoder() -> None:
    from avsr.models.encoders import load_encoder

    assert resolve_demo_encoder("shipped") == str(SHIPPED_ENCODER)
    assert resolve_demo_encoder("/x/y") == "/x/y" and resolve_demo_encoder(None) is None
    enc = load_encoder(str(SHIPPED_ENCODER))
    n_params = sum(p.numel() for p in enc.parameters())
    assert 100_000 < n_params < 2_500_000  # small enough to ship (<= 10 MB in fp32)
    assert (SHIPPED_ENCODER / "model.safetensors").stat().st_size < 10 * 2**20
