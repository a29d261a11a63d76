"""Normalisation of target text before tokenizer training and training.

``asr`` (transcripts): Unicode NFKC, lowercase (Greek final sigma handled by
``str.lower``), punctuation removed (every Unicode ``P*`` character; an
apostrophe or hyphen inside a word is kept, "don't", "c'est"), whitespace collapsed.
This matches what WER scoring ignores, so the model does not spend capacity on it.

``st`` (translations): NFKC and whitespace collapsed only; BLEU is case- and
punctuation-sensitive, so both are kept.

``none``: whitespace collapsed only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

NormMode = Literal["asr", "st", "none"]

_INNER = {"'", "’", "-", "‐"}
_SPACE_RE = re.compile(r"\s+")


def _strip_punct(text: str) -> str:
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            inner = (
                ch in _INNER
                and 0 < i < n - 1
                and text[i - 1].isalnum()
                and text[i + 1].isalnum()
            )
            if inner:
                out.append("'" if ch in {"'", "’"} else "-")
            else:
                out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def normalize_target(text: str, mode: NormMode = "asr") -> str:
    """Normalised target text (see the module docstring for each mode)."""
    if mode not in ("asr", "st", "none"):
        raise ValueError(f"unknown normalisation mode {mode!r} (asr, st, none)")
    if mode != "none":
        text = unicodedata.normalize("NFKC", text)
    if mode == "asr":
        text = _strip_punct(text.lower())
    return _SPACE_RE.sub(" ", text).strip()
