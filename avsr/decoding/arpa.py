"""Checks of a KenLM language model file before KenLM reads it.

KenLM aborts the process or prints terse messages on a malformed ARPA file, so
the header (``\\data\\`` then ``ngram N=count`` lines), the unigram section
(its entries and their count) and the final ``\\end\\`` are checked here first,
with errors naming the file. A KenLM binary (``build_binary`` output) is
recognised by its magic bytes; its vocabulary cannot be listed without KenLM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from avsr.errors import UserError

KENLM_BINARY_MAGIC = b"mmap lm "
"""First bytes of a KenLM binary model."""
GZIP_MAGIC = b"\x1f\x8b"
_NGRAM_LINE = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)$")


@dataclass(kw_only=True)
class ArpaSummary:
    """What the checks read of an ARPA file."""

    counts: dict[int, int]
    """n-gram order -> number of entries, from the header."""
    unigrams: set[str]
    """The words of the ``\\1-grams:`` section (with ``<s>``, ``</s>``, ``<unk>`` when listed)."""

    @property
    def order(self) -> int:
        return max(self.counts)


def is_kenlm_binary(path: str | Path) -> bool:
    """Whether ``path`` starts with KenLM's binary magic."""
    with open(path, "rb") as fh:
        return fh.read(len(KENLM_BINARY_MAGIC)) == KENLM_BINARY_MAGIC


def read_arpa(path: str | Path) -> ArpaSummary:
    """Check an ARPA file's header, unigram section and end marker; its counts and unigrams.

    Raises :class:`UserError` naming ``path`` (and the line) on anything KenLM would reject.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: language model not found")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == GZIP_MAGIC:
        raise UserError(f"{path}: gzip-compressed ARPA; decompress it first (gunzip)")
    try:
        with open(path, encoding="utf-8") as fh:
            counts, lineno = _read_header(fh, path)
            unigrams = _read_unigrams(fh, path, counts[1], lineno)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a text ARPA file nor a KenLM binary ({exc.reason})") from exc
    _check_end(path)
    return ArpaSummary(counts=counts, unigrams=unigrams)


def _read_header(fh: TextIO, path: Path) -> tuple[dict[int, int], int]:
    """The ``ngram N=count`` lines after ``\\data\\``; (counts, lines read)."""
    lineno = 0
    line = ""
    for raw in fh:
        lineno += 1
        line = raw.strip()
        if line:
            break
    if line != "\\data\\":
        raise UserError(
            f"{path}:{lineno}: not an ARPA language model: expected '\\data\\', got {line[:40]!r}"
        )
    counts: dict[int, int] = {}
    for raw in fh:
        lineno += 1
        line = raw.strip()
        if not line:
            if counts:
                break
            continue
        m = _NGRAM_LINE.match(line)
        if m is None:
            raise UserError(
                f"{path}:{lineno}: bad ARPA header line {line[:60]!r} (expected 'ngram N=count')"
            )
        counts[int(m.group(1))] = int(m.group(2))
    if not counts or sorted(counts) != list(range(1, max(counts) + 1)):
        raise UserError(
            f"{path}: ARPA header needs 'ngram N=count' lines for orders 1..N, got {sorted(counts)}"
        )
    return counts, lineno


def _read_unigrams(fh: TextIO, path: Path, expected: int, lineno: int) -> set[str]:
    """The words of the ``\\1-grams:`` section, checked entry by entry and counted."""
    for raw in fh:
        lineno += 1
        line = raw.strip()
        if not line:
            continue
        if line != "\\1-grams:":
            raise UserError(
                f"{path}:{lineno}: expected '\\1-grams:' after the header, got {line[:40]!r}"
            )
        break
    else:
        raise UserError(f"{path}: no '\\1-grams:' section")
    words: set[str] = set()
    for raw in fh:
        lineno += 1
        fields = raw.split()
        if not fields:
            break
        if (
            len(fields) not in (2, 3)
            or not _is_float(fields[0])
            or (len(fields) == 3 and not _is_float(fields[2]))
        ):
            raise UserError(
                f"{path}:{lineno}: bad unigram entry {raw.strip()[:60]!r} (expected 'logprob word [backoff]')"
            )
        words.add(fields[1])
    if len(words) != expected:
        raise UserError(
            f"{path}: the header announces {expected} unigrams, the section lists {len(words)}"
        )
    return words


def _check_end(path: Path) -> None:
    """A complete ARPA file ends with ``\\end\\`` (a truncated copy does not)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 64))
        tail = fh.read().strip()
    if not tail.endswith(b"\\end\\"):
        raise UserError(f"{path}: ARPA file does not end with '\\end\\' (truncated?)")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
