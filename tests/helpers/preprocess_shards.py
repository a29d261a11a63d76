"""A tiny clips.tsv corpus for sharded preprocessing, and a byte-for-byte output comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from preprocessing.synthetic import write_face_video, write_video

# id, split, lang, text, translation: two languages, two splits, a translation, one clip
# without a face (skipped), so every manifest kind and a skipped record are present
CLIPS = [
    ("de1", "test", "de", "guten morgen", "good morning"),
    ("de2", "test", "de", "danke", ""),
    ("de3", "train", "de", "bitte schoen", "you are welcome"),
    ("en1", "test", "en", "hello there", ""),
    ("en2", "train", "en", "good night", ""),
    ("noface", "test", "en", "nobody", ""),
]
N_FRAMES = 8
TIMING_FIELDS = ("seconds", "cpu_seconds", "frames_per_s")


def write_corpus(root: Path) -> Path:
    """Six small videos and their ``clips.tsv`` under ``root``; returns the tsv's path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["id\tvideo\taudio\tsplit\tlang\tspeaker\ttext\ttranslation"]
    rng = np.random.default_rng(0)
    for cid, split, lang, text, translation in CLIPS:
        video = root / f"{cid}.mp4"
        if cid == "noface":
            write_video(video, rng.integers(0, 256, (N_FRAMES, 120, 160, 3), dtype=np.uint8), 25)
        else:
            write_face_video(video, N_FRAMES, 25, 160, 120)
        lines.append(f"{cid}\t{video.name}\t\t{split}\t{lang}\tspk_{cid}\t{text}\t{translation}")
    tsv = root / "clips.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tsv


def _report(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for rec in records:
        for key in TIMING_FIELDS:
            rec.pop(key, None)
    return records


def assert_same_outputs(ref: Path, out: Path) -> None:
    """``out`` holds the files of the unsharded run ``ref`` with the same bytes.

    Manifests differ only in their first line (the absolute root of each folder);
    ``report.jsonl`` is compared without its timing fields; ``out/shards`` is ignored.
    """
    ref_files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    out_files = sorted(
        p.relative_to(out)
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] != "shards"
    )
    assert out_files == ref_files
    for rel in ref_files:
        a, b = (ref / rel).read_bytes(), (out / rel).read_bytes()
        if rel.name == "report.jsonl":
            assert _report(out / rel) == _report(ref / rel)
        elif rel.suffix == ".tsv":
            head_a, _, body_a = a.partition(b"\n")
            head_b, _, body_b = b.partition(b"\n")
            assert (head_a, head_b) == (str(ref.resolve()).encode(), str(out.resolve()).encode())
            assert body_b == body_a, rel
        else:
            assert b == a, rel
