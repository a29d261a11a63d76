"""MuAViC manifests and label files from the report of successful clips.

Written under the output root ``DATA`` (rows sorted by id within each split):

* ``{split}.tsv`` (all languages), ``{split}.wrd`` transcripts, ``{split}.lang``
  language codes, ``{split}.en`` the clip's English translation (the corpus's
  ``translation`` column; an empty line where none, e.g. for English clips);
* ``muavic/{lang}/{split}.tsv`` + ``{split}.{lang}`` per language (not for 'und');
* ``muavic/{src}/en/{split}.tsv`` + ``{split}.{src}`` + ``{split}.en`` for the
  rows of a non-English language that have a translation;
* ``{split}.video_only.tsv``: clips kept without audio (``--keep-video-only``),
  same format with an empty audio path and 0 samples; never mixed into ``{split}.tsv``.

The first line of every ``.tsv`` is the absolute root ``DATA``; media paths are
relative to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avsr.io import ManifestRow, write_labels, write_manifest
from preprocessing.clip import Clip


def write_manifests(
    out_dir: Path, clips: Sequence[Clip], records: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Write all manifests; returns rows per manifest name (e.g. ``{'test': 3, 'test.video_only': 1}``)."""
    out_dir = Path(out_dir).resolve()
    by_split: dict[str, list[tuple[Clip, dict[str, Any]]]] = {}
    video_only: dict[str, list[tuple[Clip, dict[str, Any]]]] = {}
    for c in clips:
        rec = records.get(c.id)
        if not rec or rec.get("status") != "ok":
            continue
        target = video_only if rec.get("audio") is None else by_split
        target.setdefault(c.split, []).append((c, rec))
    counts: dict[str, int] = {}
    for split, items in sorted(by_split.items()):
        items.sort(key=lambda cr: cr[0].id)
        rows = [_row(c, rec) for c, rec in items]
        write_manifest(out_dir / f"{split}.tsv", out_dir, rows)
        write_labels(out_dir / f"{split}.wrd", [c.text for c, _ in items])
        write_labels(out_dir / f"{split}.lang", [c.lang for c, _ in items])
        write_labels(out_dir / f"{split}.en", [c.translation for c, _ in items])
        counts[split] = len(rows)
        for lang in sorted({c.lang for c, _ in items}):
            if lang == "und":
                continue
            sub = [(c, r) for c, r in zip([c for c, _ in items], rows) if c.lang == lang]
            lang_dir = out_dir / "muavic" / lang
            write_manifest(lang_dir / f"{split}.tsv", out_dir, [r for _, r in sub])
            write_labels(lang_dir / f"{split}.{lang}", [c.text for c, _ in sub])
            counts[f"muavic/{lang}/{split}"] = len(sub)
            if lang == "en":
                continue
            tr = [(c, r) for c, r in sub if c.translation]
            if tr:
                tr_dir = lang_dir / "en"
                write_manifest(tr_dir / f"{split}.tsv", out_dir, [r for _, r in tr])
                write_labels(tr_dir / f"{split}.{lang}", [c.text for c, _ in tr])
                write_labels(tr_dir / f"{split}.en", [c.translation for c, _ in tr])
                counts[f"muavic/{lang}/en/{split}"] = len(tr)
    for split, items in sorted(video_only.items()):
        items.sort(key=lambda cr: cr[0].id)
        write_manifest(
            out_dir / f"{split}.video_only.tsv", out_dir, [_row(c, rec) for c, rec in items]
        )
        counts[f"{split}.video_only"] = len(items)
    return counts


def _row(c: Clip, rec: dict[str, Any]) -> ManifestRow:
    return ManifestRow(
        id=c.id,
        video=rec["video"],
        audio=rec.get("audio") or "",
        n_video_frames=int(rec["n_video_frames"]),
        n_audio_samples=int(rec.get("n_audio_samples") or 0),
    )
