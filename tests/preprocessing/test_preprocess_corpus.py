"""`avsr preprocess` on the embedded corpus (clips at 25, 29.97 and 30 fps): A/V sync, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avsr.cli import main
from avsr.io import read_labels, read_manifest


@pytest.mark.slow
def test_corpus_to_manifests(tmp_path: Path) -> None:
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    assert main(["corpus", "build", "--out", str(corpus), "--size", "tiny", "--langs", "es"]) == 0
    argv = [
        "preprocess",
        "--input",
        str(corpus / "clips.tsv"),
        "--out",
        str(data),
        "--workers",
        "2",
    ]
    assert main([*argv, "--no-progress"]) == 0
    records = [json.loads(x) for x in (data / "report.jsonl").read_text().splitlines()]
    clips = (corpus / "clips.tsv").read_text().splitlines()[1:]
    assert len(records) == len(clips) and all(r["status"] == "ok" for r in records)
    assert {round(r["src_fps"], 2) for r in records} <= {25.0, 29.97, 30.0}
    for r in records:
        assert r["face_share"] == 1.0
        assert r["n_video_frames"] == round(r["duration_s"] * 25)
        assert abs(r["n_audio_samples"] / 16000 - r["n_video_frames"] / 25) <= 0.04, r
    total = 0
    for split in ("train", "valid", "test"):
        m = read_manifest(data / f"{split}.tsv")
        total += len(m)
        assert [r.id for r in m.rows] == sorted(r.id for r in m.rows)
        for name in ("wrd", "lang", "en"):
            read_labels(data / f"{split}.{name}", expected=len(m))
        for lang in ("es",):
            sub = read_manifest(data / "muavic" / lang / f"{split}.tsv")
            assert read_labels(data / "muavic" / lang / f"{split}.{lang}", expected=len(sub))
        tr = read_manifest(data / "muavic" / "es" / "en" / f"{split}.tsv")
        assert all(read_labels(data / "muavic" / "es" / "en" / f"{split}.en", expected=len(tr)))
    assert total == len(clips)
