"""Where fine-tuning targets live in a preprocessed DATA folder, and the tokenizer of a run.

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
from avsr.io import ManifestError, read_labels, read_manifest, write_labels, write_manifest
from avsr.logging_utils import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SplitFiles:
    manifest: Path
    labels: Path
    langs: Path | None = None


def parse_pair(pair: str) -> tuple[str, str]:
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
    manifest, labels = data / f"{split}.tsv", data / f"{split}.en"
    for p in (manifest, labels):
        if not p.is_file():
            raise UserError(f"{p}: not found (is {data} a preprocessed DATA folder?)")
    if run_dir is None:
        raise UserError("translation over all pairs needs a run folder to write the kept rows to")
    try:
        m = read_manifest(manifest)
        trans = read_labels(labels, expected=len(m.rows))
        lang_path = data / f"{split}.lang"
        langs = read_labels(lang_path, expected=len(m.rows)) if lang_path.is_file() else None
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    keep = [i for i, t in enumerate(trans) if t.strip()]
    if not keep:
        raise UserError(f"{labels}: no row has an English translation")
    out = Path(run_dir) / "data"
    write_manifest(out / f"{split}.tsv", m.root, [m.rows[i] for i in keep])
    write_labels(out / f"{split}.en", [trans[i] for i in keep])
    out_langs = None
    if langs is not None:
        out_langs = out / f"{split}.lang"
        write_labels(out_langs, [langs[i] for i in keep])
    log.info("%s: %d of %d rows have a translation", manifest, len(keep), len(m.rows))
    return SplitFiles(out / f"{split}.tsv", out / f"{split}.en", out_langs)
