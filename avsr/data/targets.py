"""Where the targets of a split live in a preprocessed DATA folder (MuAViC layout), and
reading / writing subsets of a split's rows.

AVSR (transcripts):
  - all languages: ``DATA/{split}.tsv`` + ``DATA/{split}.wrd`` (+ ``{split}.lang``);
  - one language (``--lang xx``): ``DATA/muavic/xx/{split}.tsv`` + ``{split}.xx``.
AVST (English translations):
  - one pair (``--pair xx-en``): ``DATA/muavic/xx/en/{split}.tsv`` + ``{split}.en``;
  - all pairs: ``DATA/{split}.tsv`` + ``DATA/{split}.en``, keeping only rows that have a
    translation (the kept rows are written under ``RUN/data/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avsr.errors import UserError
from avsr.io import (
    Manifest,
    ManifestError,
    read_labels,
    read_manifest,
    write_labels,
    write_manifest,
)
from avsr.logging_utils import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split: manifest, targets, and the per-row languages when known."""

    manifest: Path
    """MuAViC ``{split}.tsv``."""
    labels: Path
    """One target text per manifest row."""
    langs: Path | None = None
    """One language code per manifest row (None: not known)."""


def read_split(files: SplitFiles) -> tuple[Manifest, list[str], list[str] | None]:
    """Manifest, targets and languages (None without a languages file) of a split."""
    try:
        m = read_manifest(files.manifest)
        labels = read_labels(files.labels, expected=len(m.rows))
        langs = read_labels(files.langs, expected=len(m.rows)) if files.langs else None
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    return m, labels, langs


def write_rows(
    dest: SplitFiles,
    m: Manifest,
    labels: list[str],
    langs: list[str] | None,
    keep: list[int],
) -> SplitFiles:
    """Write rows ``keep`` of a split to ``dest`` (its languages only when ``langs`` is given)."""
    write_manifest(dest.manifest, m.root, [m.rows[i] for i in keep])
    write_labels(dest.labels, [labels[i] for i in keep])
    if langs is None or dest.langs is None:
        return SplitFiles(dest.manifest, dest.labels)
    write_labels(dest.langs, [langs[i] for i in keep])
    return dest


def parse_pair(pair: str) -> tuple[str, str]:
    """``"es-en"`` -> ``("es", "en")``; only X->En pairs are accepted."""
    parts = pair.split("-")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"--pair {pair!r}: expected SRC-en, e.g. es-en")
    if parts[1] != "en":
        raise UserError(f"--pair {pair!r}: only X->En translation is supported (target 'en')")
    return parts[0], parts[1]


def target_files(
    data: str | Path,
    split: str,
    *,
    task: str,
    lang: str | None = None,
    pair: str | None = None,
    run_dir: str | Path | None = None,
) -> SplitFiles:
    """Manifest and label files of ``split`` for ``task`` (see the module docstring)."""
    data = Path(data)
    if task == "avsr":
        if pair is not None:
            raise UserError("--pair is for --task avst; use --lang for recognition")
        if lang is None:
            files = SplitFiles(data / f"{split}.tsv", data / f"{split}.wrd", _maybe(data / f"{split}.lang"))
        else:
            d = data / "muavic" / lang
            files = SplitFiles(d / f"{split}.tsv", d / f"{split}.{lang}")
    elif task == "avst":
        if lang is not None and pair is None:
            pair = f"{lang}-en"
        if pair is not None:
            src, tgt = parse_pair(pair)
            d = data / "muavic" / src / tgt
            files = SplitFiles(d / f"{split}.tsv", d / f"{split}.{tgt}")
        else:
            files = _translated_rows(data, split, run_dir)
    else:
        raise UserError(f"unknown task {task!r} (avsr, avst)")
    for p in (files.manifest, files.labels):
        if not p.is_file():
            raise UserError(f"{p}: not found (is {data} a preprocessed DATA folder? run 'avsr preprocess')")
    return files


def _maybe(p: Path) -> Path | None:
    return p if p.is_file() else None


def _translated_rows(data: Path, split: str, run_dir: str | Path | None) -> SplitFiles:
    """The rows of ``split`` with an English translation, written under ``run_dir/data``."""
    manifest, labels = data / f"{split}.tsv", data / f"{split}.en"
    for p in (manifest, labels):
        if not p.is_file():
            raise UserError(f"{p}: not found (is {data} a preprocessed DATA folder?)")
    if run_dir is None:
        raise UserError("translation over all pairs needs a run folder to write the kept rows to")
    m, trans, langs = read_split(SplitFiles(manifest, labels, _maybe(data / f"{split}.lang")))
    keep = [i for i, t in enumerate(trans) if t.strip()]
    if not keep:
        raise UserError(f"{labels}: no row has an English translation")
    out = Path(run_dir) / "data"
    dest = SplitFiles(out / f"{split}.tsv", out / f"{split}.en", out / f"{split}.lang")
    kept = write_rows(dest, m, trans, langs, keep)
    log.info("%s: %d of %d rows have a translation", manifest, len(keep), len(m.rows))
    return kept
