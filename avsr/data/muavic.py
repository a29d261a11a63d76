"""Read a MuAViC tree as its scripts publish it, checking every row.

Layout (``MUAVIC`` is the ``muavic`` folder; a folder that holds ``muavic/`` is accepted too):

* ``{lang}/{split}.tsv``: first line the root directory (MuAViC writes ``/`` and absolute
  media paths), then ``id <TAB> video <TAB> audio <TAB> n_video_frames <TAB> n_audio_samples``;
  MuAViC writes ``-1`` for a count whose media file was missing when it made the manifest;
* ``{lang}/{split}.{lang}``: one transcript per manifest row, in manifest order;
* ``{src}/en/{split}.tsv`` + ``{split}.en``: the X->En translation of ``src``, one English
  line per row (``{split}_avst.tsv`` + ``{split}_avst.en`` in some versions of the scripts).

A row with a malformed line, a negative count or a missing media file is dropped and
recorded as a :class:`Problem`; so is a label file whose line count differs from its
manifest's row count (that one is fatal: nothing can be aligned).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from avsr.errors import UserError
from avsr.io import ManifestRow, read_labels

SPLITS = ("train", "valid", "test")
"""MuAViC's splits, in the order they are processed."""

CHUNK = 512
"""Media paths per existence-checking task."""

FATAL_KINDS = frozenset({"label_mismatch", "missing_labels", "duplicate_id"})
"""Problems that stop the ingest before anything is written."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the MuAViC tree, named by file (and line / clip id when known)."""

    kind: str
    """missing_media, bad_row, label_mismatch, missing_labels, missing_manifest, duplicate_id,
    unmatched_translation, empty_translation or id_in_several_splits."""
    file: str
    """The file at fault (a manifest, a label file or a media file's manifest)."""
    detail: str
    """What is wrong, in words (names the missing media file, both counts of a mismatch, ...)."""
    line: int | None = None
    """1-based line of ``file`` (None: the whole file)."""
    id: str | None = None
    """Clip id of the row (None: not about one row)."""

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL_KINDS

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.detail}" + (f" (id {self.id})" if self.id else "")


@dataclass(frozen=True)
class Clip:
    """A row that passed the checks: media paths absolute, its transcript and language."""

    row: ManifestRow
    """The manifest row, with absolute video and audio paths."""
    text: str
    """Transcript (the ``{split}.{lang}`` line)."""
    lang: str
    """Language code of the folder it came from."""
    translation: str = ""
    """English translation ("" when the clip has none)."""


@dataclass
class SplitRead:
    """What one ``{lang}/{split}.tsv`` (or a translation manifest) held."""

    manifest: Path
    """The manifest read."""
    ids: list[str] = field(default_factory=list)
    """Ids of every row, kept or not, in manifest order."""
    lines: list[int] = field(default_factory=list)
    """The 1-based line of every row in the manifest."""
    clips: list[Clip] = field(default_factory=list)
    """Rows that passed the checks, in manifest order."""
    texts: list[str] = field(default_factory=list)
    """The label line of every row (empty when the label file is missing or mismatched)."""
    problems: list[Problem] = field(default_factory=list)
    """Everything wrong in this manifest and its label file."""


def muavic_dir(root: str | Path) -> Path:
    """The folder holding the language folders: ``root`` or ``root/muavic``."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{root}: MuAViC folder not found")
    inner = root / "muavic"
    return inner if inner.is_dir() and not _has_manifest(root, SPLITS) else root


def _has_manifest(folder: Path, splits: tuple[str, ...]) -> bool:
    return any((folder / f"{s}.tsv").is_file() or (folder / f"{s}_avst.tsv").is_file() for s in splits)


def find_langs(muavic: Path, splits: tuple[str, ...]) -> list[str]:
    """Language folders of ``muavic`` that hold a manifest of one of ``splits``, sorted."""
    langs = sorted(p.name for p in muavic.iterdir() if p.is_dir() and _has_manifest(p, splits))
    if not langs:
        raise UserError(f"{muavic}: no language folder with {'/'.join(splits)}.tsv (is it MuAViC's muavic folder?)")
    return langs


def find_pairs(muavic: Path, langs: list[str], splits: tuple[str, ...]) -> list[str]:
    """``src-en`` for every language of ``langs`` (not en) with a translation folder ``src/en``."""
    return [f"{lang}-en" for lang in langs if lang != "en" and _has_manifest(muavic / lang / "en", splits)]


def pair_files(muavic: Path, src: str, split: str) -> tuple[Path, Path]:
    """Manifest and English label file of ``src``'s translation for ``split``."""
    d = muavic / src / "en"
    if (d / f"{split}_avst.tsv").is_file() and not (d / f"{split}.tsv").is_file():
        return d / f"{split}_avst.tsv", d / f"{split}_avst.en"
    return d / f"{split}.tsv", d / f"{split}.en"


def read_lang_split(
    muavic: Path, lang: str, split: str, workers: int = 16, remap: tuple[str, str] | None = None
) -> SplitRead | None:
    """Check and read ``{lang}/{split}.tsv`` with its ``{split}.{lang}`` (None: no such manifest).

    ``remap=(old, new)``: media paths under ``old`` are looked for under ``new`` instead (a
    tree moved after MuAViC wrote its absolute paths).
    """
    tsv = muavic / lang / f"{split}.tsv"
    if not tsv.is_file():
        return None
    root, lines = _read_tsv(tsv)
    out = SplitRead(tsv, ids=[parts[0] for _, parts in lines], lines=[n for n, _ in lines])
    texts = _labels(muavic / lang / f"{split}.{lang}", tsv, len(lines), out.problems)
    if texts is None:
        return out
    out.texts = texts
    rows: list[tuple[int, ManifestRow, str]] = []
    for (lineno, parts), text in zip(lines, texts):
        row = _parse_row(parts, root, tsv, lineno, out.problems)
        if row is None:
            continue
        if remap is not None:
            row = replace(row, video=_moved(row.video, *remap), audio=_moved(row.audio, *remap))
        rows.append((lineno, row, text))
    missing = _missing_media([r for _, r, _ in rows], workers)
    for (lineno, row, text), absent in zip(rows, missing):
        for kind, path in absent:
            out.problems.append(Problem("missing_media", str(tsv), f"{kind} file not found: {path}", lineno, row.id))
        if not absent:
            out.clips.append(Clip(row, text, lang))
    return out


def read_pair_split(muavic: Path, src: str, split: str) -> SplitRead | None:
    """Ids and English lines of ``src``'s translation manifest for ``split`` (None: none).

    Only the ids are used: the media and transcripts come from ``{src}/{split}.tsv``.
    """
    tsv, labels = pair_files(muavic, src, split)
    if not tsv.is_file():
        return None
    _, lines = _read_tsv(tsv)
    out = SplitRead(tsv, ids=[parts[0] for _, parts in lines], lines=[n for n, _ in lines])
    texts = _labels(labels, tsv, len(lines), out.problems)
    source = tsv.parent / f"{tsv.stem.removesuffix('_avst')}.{src}"
    if source.is_file():
        _labels(source, tsv, len(lines), out.problems)
    out.texts = texts or []
    return out


def _read_tsv(tsv: Path) -> tuple[Path, list[tuple[int, list[str]]]]:
    """Root directory and the non-blank rows ``(line number, fields)`` of a manifest."""
    head, *rows = tsv.read_text(encoding="utf-8").splitlines() or [""]
    if not head.strip():
        raise UserError(f"{tsv}: the first line must be the root directory")
    root = tsv.parent / head.strip()  # an absolute root line replaces tsv.parent
    return root.resolve(), [(n, line.split("\t")) for n, line in enumerate(rows, start=2) if line.strip()]


def _labels(path: Path, tsv: Path, n_rows: int, problems: list[Problem]) -> list[str] | None:
    """The lines of ``path`` when there is one per row of ``tsv``; else None and a problem."""
    if not path.is_file():
        problems.append(Problem("missing_labels", str(path), f"label file not found (needed by {tsv})"))
        return None
    texts = read_labels(path)
    if len(texts) != n_rows:
        detail = f"{len(texts)} label lines but {tsv} has {n_rows} rows"
        problems.append(Problem("label_mismatch", str(path), detail))
        return None
    return texts


def _parse_row(parts: list[str], root: Path, tsv: Path, lineno: int, problems: list[Problem]) -> ManifestRow | None:
    """The row of ``parts`` with absolute media paths, or None (and a problem) when malformed."""

    def bad(detail: str) -> None:
        problems.append(Problem("bad_row", str(tsv), detail, lineno, parts[0]))

    if len(parts) != 5:
        bad(f"expected 5 tab-separated fields, got {len(parts)}")
        return None
    cid, video, audio, frames, samples = parts
    try:
        n_video, n_audio = int(frames), int(samples)
    except ValueError:
        bad(f"frame/sample counts must be integers, got {frames!r} and {samples!r}")
        return None
    if n_video < 0 or n_audio < 0:
        bad(f"negative frame/sample count ({n_video}, {n_audio}): the media was missing when the manifest was made")
        return None
    return ManifestRow(
        id=cid,
        video=str(root / video) if video else "",
        audio=str(root / audio) if audio else "",
        n_video_frames=n_video,
        n_audio_samples=n_audio,
    )


def _moved(path: str, old: str, new: str) -> str:
    """``path`` with its leading folder ``old`` replaced by ``new`` (unchanged if not under ``old``)."""
    old = old.rstrip("/")
    if path != old and not path.startswith(old + "/"):
        return path
    return new.rstrip("/") + path[len(old) :]


def _missing_media(rows: list[ManifestRow], workers: int) -> list[list[tuple[str, str]]]:
    """For each row, its ``(kind, path)`` media that are not files (video first).

    Checked by ``workers`` threads, in chunks (a network file system answers slowly but in parallel).
    """
    paths = [p for r in rows for p in (r.video, r.audio)]
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        present = [ok for chunk in pool.map(_are_files, chunks) for ok in chunk]
    missing = []
    for i, r in enumerate(rows):
        checked = zip(("video", "audio"), (r.video, r.audio), present[2 * i : 2 * i + 2])
        missing.append([(kind, path or "(empty path)") for kind, path, ok in checked if not ok])
    return missing


def _are_files(paths: list[str]) -> list[bool]:
    return [bool(p) and os.path.isfile(p) for p in paths]
