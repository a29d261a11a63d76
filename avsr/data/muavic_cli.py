"""``avsr data muavic``: bring a MuAViC tree into one DATA folder (see :mod:`avsr.data.muavic_ingest`).

Example::

    avsr data muavic --root MUAVIC/muavic --out DATA --langs en es fr --pairs es-en fr-en

Prints a summary (rows kept per split and language, dropped rows by reason, the first
problems by file) and writes ``DATA/ingest_report.json`` with every problem.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from avsr.data.muavic import SPLITS
from avsr.data.muavic_ingest import REPORT_NAME, IngestOptions, ingest_muavic
from avsr.errors import UserError

SHOWN = 10
"""Problems listed on stdout (all of them are in the report)."""


HELP = "MuAViC's per-language folders -> merged DATA manifests (+ per language, per pair)"
DESCRIPTION = (
    "Check every row of MuAViC's {lang}/{split}.tsv, {split}.{lang} and {src}/en/ translations, "
    "then write DATA/{split}.tsv/.wrd/.lang/.en, DATA/muavic/{lang}/, DATA/muavic/{src}/en/ and "
    "DATA/ingest_report.json. Rows whose media are missing are dropped and listed; a label file "
    "that does not match its manifest is an error."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_subparsers(dest="source", metavar="SOURCE")
    m = sources.add_parser("muavic", help=HELP, description=DESCRIPTION)
    m.add_argument("--root", required=True, type=Path, metavar="MUAVIC",
                   help="MuAViC's muavic folder (holding {lang}/{split}.tsv), or the folder above it")
    m.add_argument("--out", required=True, type=Path, metavar="DATA", help="output DATA folder")
    m.add_argument("--langs", nargs="+", metavar="LANG", help="languages to merge (default: every folder found)")
    m.add_argument("--pairs", nargs="+", metavar="SRC-en",
                   help="X->En translation pairs (default: every {src}/en folder of the chosen languages)")
    m.add_argument("--splits", nargs="+", default=list(SPLITS), metavar="SPLIT", help="splits (default train valid test)")
    m.add_argument("--prefix-ids", action="store_true", help="write ids as LANG/ID (unique across languages)")
    m.add_argument("--strict", action="store_true", help="fail (write nothing but the report) if any row is dropped")
    m.add_argument("--remap", metavar="OLD=NEW",
                   help="read media paths under OLD from NEW instead (MuAViC writes absolute paths; "
                   "for a tree moved after it was made)")
    m.add_argument("--workers", type=int, default=16, help="threads checking media files (default 16)")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "source", None) != "muavic":
        print("avsr data: give a source: muavic (see --help)")
        return 2
    opts = IngestOptions(
        root=args.root,
        out=args.out,
        langs=tuple(args.langs) if args.langs else None,
        pairs=tuple(args.pairs) if args.pairs else None,
        splits=tuple(args.splits),
        prefix_ids=args.prefix_ids,
        strict=args.strict,
        workers=args.workers,
        remap=_remap(args.remap),
    )
    report = ingest_muavic(opts)
    print(summary(report))
    if not report["ok"]:
        first = "; ".join(_line(p) for p in report["fatal"][:3])
        raise UserError(f"{len(report['fatal'])} fatal problems, nothing but the report was written: {first}")
    return 0


def _remap(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    old, sep, new = value.partition("=")
    if not sep or not old or not new:
        raise UserError(f"--remap {value!r}: expected OLD=NEW, e.g. /old/muavic=/data/muavic")
    return old, new


def summary(report: dict[str, Any]) -> str:
    """Readable summary of an ingest report: rows per split and language, problems by kind."""
    lines = [f"MuAViC {report['muavic']} -> {report['out']}", f"{'split':<8}{'lang':<6}{'rows':>9}{'kept':>9}"]
    for split, by_lang in report["rows"].items():
        for lang, n in by_lang.items():
            lines.append(f"{split:<8}{lang:<6}{n['rows']:>9}{n['kept']:>9}")
        translated = report["translated_rows"].get(split, 0)
        lines.append(f"{split:<8}{'all':<6}{'':>9}{report['merged_rows'][split]:>9}  ({translated} with a translation)")
    lines.append(f"pairs: {', '.join(report['pairs']) or 'none'}")
    no_media = {p["file"] for p in report["problems"] if p["kind"] == "missing_media"}
    empty = [
        f"{lang}/{split}"
        for split, by_lang in report["rows"].items()
        for lang, n in by_lang.items()
        if not n["kept"] and str(Path(report["muavic"]) / lang / f"{split}.tsv") in no_media
    ]
    if empty:
        lines.append(f"no row kept of {', '.join(empty)}: if the tree was moved, see --remap OLD=NEW")
    kinds = Counter(p["kind"] for p in report["problems"])
    if kinds:
        lines.append("problems: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        lines += [f"  {_line(p)}" for p in report["problems"][:SHOWN]]
        if len(report["problems"]) > SHOWN:
            lines.append(f"  ... {len(report['problems']) - SHOWN} more")
    lines.append(f"dropped rows: {report['dropped_rows']}; report: {Path(report['out']) / REPORT_NAME}")
    return "\n".join(lines)


def _line(p: dict[str, Any]) -> str:
    where = f"{p['file']}:{p['line']}" if p.get("line") else p["file"]
    return f"{where}: {p['detail']}" + (f" (id {p['id']})" if p.get("id") else "")
