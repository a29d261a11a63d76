"""MuAViC -> one DATA folder: checks every language and translation, then writes the
merged multilingual manifests and the per-language / per-pair ones.

Written under ``DATA`` (the layout :func:`avsr.data.targets.target_files` reads):

* ``{split}.tsv`` + ``{split}.wrd`` + ``{split}.lang`` + ``{split}.en``: every kept row of
  every chosen language (languages in sorted order, rows in MuAViC's order); ``.en`` holds
  the English translation of the chosen pairs, an empty line where there is none;
* ``muavic/{lang}/{split}.tsv`` + ``{split}.{lang}``: one language (``--lang``);
* ``muavic/{src}/en/{split}.tsv`` + ``{split}.{src}`` + ``{split}.en``: one pair (``--pair``),
  the kept rows of ``src`` that have a non-empty translation;
* ``ingest_report.json``: counts, every dropped row and every problem, by file, and the
  files written (a rerun removes those of the previous run it no longer writes).

The first line of every manifest is the MuAViC folder; media paths under it are written
relative to it, others absolute. Nothing but the report is written when a problem is
fatal (a label file that does not match its manifest, duplicate clip ids).
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsr.data.muavic import (
    SPLITS,
    Clip,
    Problem,
    SplitRead,
    find_langs,
    find_pairs,
    muavic_dir,
    pair_files,
    read_lang_split,
    read_pair_split,
)
from avsr.data.targets import parse_pair
from avsr.errors import UserError
from avsr.io import ManifestRow, atomic_write_json, write_labels, write_manifest
from avsr.logging_utils import get_logger

log = get_logger(__name__)

REPORT_NAME = "ingest_report.json"
"""The report's file name under ``DATA``."""

DROPPED_KINDS = ("missing_media", "bad_row")
"""Problems whose row is dropped (fatal with ``strict``)."""


@dataclass(frozen=True)
class IngestOptions:
    """What to read from MuAViC and how strictly."""

    root: Path
    """MuAViC's ``muavic`` folder (or the folder holding it)."""
    out: Path
    """The DATA folder to write."""
    langs: tuple[str, ...] | None = None
    """Languages to merge (None: every language folder found)."""
    pairs: tuple[str, ...] | None = None
    """X->En pairs ``src-en`` (None: every translation folder of the chosen languages)."""
    splits: tuple[str, ...] = SPLITS
    """Splits to read."""
    prefix_ids: bool = False
    """Write ids as ``{lang}/{id}`` (makes ids unique across languages)."""
    strict: bool = False
    """Treat a dropped row (missing media, malformed line) as fatal."""
    workers: int = 16
    """Threads checking that media files exist."""
    remap: tuple[str, str] | None = None
    """``(old, new)``: media paths under ``old`` are read under ``new`` (a moved MuAViC tree)."""


@dataclass
class _Read:
    """Everything read: kept clips per split (languages in order) and what was wrong."""

    clips: dict[str, list[Clip]] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    counts: dict[str, dict[str, dict[str, int]]] = dataclasses.field(default_factory=dict)


def ingest_muavic(opts: IngestOptions) -> dict[str, Any]:
    """Check MuAViC and write DATA; returns the report (also in ``DATA/ingest_report.json``).

    The report's ``ok`` is False when a problem is fatal (or, with ``strict``, when a row
    was dropped); then only the report is written.
    """
    muavic = muavic_dir(opts.root)
    langs = _choose_langs(muavic, opts)
    pairs = _choose_pairs(muavic, langs, opts)
    read = _read_all(muavic, langs, pairs, opts)
    report = _report(muavic, opts, langs, pairs, read)
    out = Path(opts.out).expanduser().resolve()
    previous = _previous_files(out)
    report["files"] = sorted(previous)
    if report["ok"]:
        report["written"], files = write_data(out, muavic, read.clips, langs, pairs)
        report["files"] = sorted(files)
        _remove(out, previous - set(report["files"]))
    atomic_write_json(out / REPORT_NAME, report)
    return report


def _previous_files(out: Path) -> set[str]:
    """Files the last successful ingest wrote under ``out`` (from its report; empty if none)."""
    try:
        files = json.loads((out / REPORT_NAME).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str) and not Path(f).is_absolute() and ".." not in Path(f).parts}


def _remove(out: Path, stale: set[str]) -> None:
    """Delete ``stale`` files under ``out`` and the folders they leave empty."""
    for name in sorted(stale):
        path = out / name
        path.unlink(missing_ok=True)
        for folder in path.parents:
            if folder == out or not folder.is_relative_to(out):
                break
            if folder.is_dir():
                if any(folder.iterdir()):
                    break
                folder.rmdir()


def _choose_langs(muavic: Path, opts: IngestOptions) -> list[str]:
    found = find_langs(muavic, opts.splits)
    if opts.langs is None:
        return found
    absent = [lang for lang in opts.langs if lang not in found]
    if absent:
        raise UserError(
            f"--langs {' '.join(absent)}: no {muavic}/LANG/{{{','.join(opts.splits)}}}.tsv (found: {' '.join(found)})"
        )
    return sorted(set(opts.langs))


def _choose_pairs(muavic: Path, langs: list[str], opts: IngestOptions) -> list[str]:
    found = find_pairs(muavic, langs, opts.splits)
    if opts.pairs is None:
        return found
    for pair in opts.pairs:
        src, _ = parse_pair(pair)
        if src not in langs:
            raise UserError(f"--pairs {pair}: its source language {src} is not among the languages read")
        if pair not in found:
            raise UserError(f"--pairs {pair}: no translation manifest {pair_files(muavic, src, opts.splits[0])[0]}")
    return sorted(set(opts.pairs))


def _read_all(muavic: Path, langs: list[str], pairs: list[str], opts: IngestOptions) -> _Read:
    read = _Read()
    for split in opts.splits:
        clips: list[Clip] = []
        for lang in langs:
            got = read_lang_split(muavic, lang, split, opts.workers, opts.remap)
            if got is None:
                detail = f"no {split} manifest for language {lang}"
                read.problems.append(Problem("missing_manifest", str(muavic / lang / f"{split}.tsv"), detail))
                continue
            read.problems += got.problems
            kept = _translate(got, muavic, lang, split, pairs, read.problems)
            clips += kept
            read.counts.setdefault(split, {})[lang] = {"rows": len(got.ids), "kept": len(kept)}
            log.debug("%s: %d of %d rows kept", got.manifest, len(kept), len(got.ids))
        read.clips[split] = [_prefixed(c) for c in clips] if opts.prefix_ids else clips
        read.problems += _duplicates(read.clips[split], muavic, split)
    read.problems += _shared_ids(read.clips)
    return read


def _translate(
    got: SplitRead, muavic: Path, lang: str, split: str, pairs: list[str], problems: list[Problem]
) -> list[Clip]:
    """``got``'s clips with their English translation when ``lang-en`` is a chosen pair."""
    if f"{lang}-en" not in pairs:
        return got.clips
    pair = read_pair_split(muavic, lang, split)
    if pair is None:
        detail = f"no {split} translation manifest for {lang}-en"
        problems.append(Problem("missing_manifest", str(pair_files(muavic, lang, split)[0]), detail))
        return got.clips
    problems += pair.problems
    known = set(got.ids)
    for lineno, cid in zip(pair.lines, pair.ids):
        if cid not in known:
            problems.append(Problem("unmatched_translation", str(pair.manifest), f"id not in {got.manifest}", lineno, cid))
    english = dict(zip(pair.ids, pair.texts))
    labels = pair_files(muavic, lang, split)[1]
    for n, (cid, text) in enumerate(zip(pair.ids, pair.texts), start=1):
        if cid in known and not text.strip():
            detail = "empty translation: the row is kept for recognition only"
            problems.append(Problem("empty_translation", str(labels), detail, n, cid))
    return [dataclasses.replace(c, translation=english.get(c.row.id, "").strip()) for c in got.clips]


def _prefixed(c: Clip) -> Clip:
    return dataclasses.replace(c, row=dataclasses.replace(c.row, id=f"{c.lang}/{c.row.id}"))


def _duplicates(clips: list[Clip], muavic: Path, split: str) -> list[Problem]:
    """One fatal problem per id that occurs on more than one kept row of ``split``."""
    where: dict[str, list[str]] = defaultdict(list)
    for c in clips:
        where[c.row.id].append(c.lang)
    problems = []
    for cid, ls in where.items():
        if len(ls) > 1:
            files = ", ".join(str(muavic / lang / f"{split}.tsv") for lang in dict.fromkeys(ls))
            hint = "; --prefix-ids makes ids unique across languages" if len(set(ls)) > 1 else ""
            problems.append(Problem("duplicate_id", files, f"id on {len(ls)} rows{hint}", id=cid))
    return problems


def _shared_ids(clips: dict[str, list[Clip]]) -> list[Problem]:
    """A warning per id kept in more than one split (the same clip in training and test?)."""
    splits_of: dict[str, list[str]] = defaultdict(list)
    for split, cs in clips.items():
        for cid in dict.fromkeys(c.row.id for c in cs):
            splits_of[cid].append(split)
    return [
        Problem("id_in_several_splits", ", ".join(f"{s}.tsv" for s in ss), f"id in splits {', '.join(ss)}", id=cid)
        for cid, ss in splits_of.items()
        if len(ss) > 1
    ]


def write_data(
    out: Path, root: Path, clips: dict[str, list[Clip]], langs: list[str], pairs: list[str]
) -> tuple[dict[str, int], list[str]]:
    """Write the merged and the per-language / per-pair manifests.

    Returns the rows per manifest (``"train"``, ``"muavic/es/train"``, ...) and the files
    written, relative to ``out``.
    """
    written: dict[str, int] = {}
    files: list[str] = []
    for split, cs in clips.items():
        sets = {"": (cs, {"wrd": [c.text for c in cs], "lang": [c.lang for c in cs], "en": [c.translation for c in cs]})}
        for lang in langs:
            sub = [c for c in cs if c.lang == lang]
            sets[f"muavic/{lang}/"] = (sub, {lang: [c.text for c in sub]})
        for src, tgt in map(parse_pair, pairs):
            tr = [c for c in cs if c.lang == src and c.translation]
            sets[f"muavic/{src}/{tgt}/"] = (tr, {src: [c.text for c in tr], tgt: [c.translation for c in tr]})
        for folder, (rows, texts) in sets.items():
            write_manifest(out / folder / f"{split}.tsv", root, [_relative(c.row, root) for c in rows])
            for suffix, lines in texts.items():
                write_labels(out / folder / f"{split}.{suffix}", lines)
            files += [f"{folder}{split}.{suffix}" for suffix in ("tsv", *texts)]
            written[f"{folder}{split}"] = len(rows)
    return written, files


def _relative(row: ManifestRow, root: Path) -> ManifestRow:
    def rel(p: str) -> str:
        return Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else p

    return dataclasses.replace(row, video=rel(row.video), audio=rel(row.audio))


def _report(muavic: Path, opts: IngestOptions, langs: list[str], pairs: list[str], read: _Read) -> dict[str, Any]:
    dropped = [p for p in read.problems if p.kind in DROPPED_KINDS]
    fatal = [p for p in read.problems if p.fatal or (opts.strict and p.kind in DROPPED_KINDS)]
    return {
        "ok": not fatal,
        "muavic": str(muavic),
        "out": str(Path(opts.out).expanduser().resolve()),
        "langs": langs,
        "pairs": pairs,
        "splits": list(opts.splits),
        "prefix_ids": opts.prefix_ids,
        "remap": list(opts.remap) if opts.remap else None,
        "rows": read.counts,
        "merged_rows": {split: len(cs) for split, cs in read.clips.items()},
        "translated_rows": {split: sum(1 for c in cs if c.translation) for split, cs in read.clips.items()},
        "fatal": [p.as_dict() for p in fatal],
        "dropped_rows": len({(p.file, p.line) for p in dropped}),
        "problems": [p.as_dict() for p in read.problems],
    }
