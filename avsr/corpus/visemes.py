"""Letters -> visemes -> mouth shapes, and the per-frame mouth trajectory of an utterance.

A word's viseme sequence is derived from its letters (after a small
transliteration of Greek, Cyrillic and Arabic letters): bilabials close the
lips, rounded vowels make a small round opening, open vowels a tall wide one,
front vowels a wide flat one, and so on. Repeated visemes collapse. Each
viseme has a mouth shape :class:`Shape`: width factor ``w`` (1 = rest
width), opening ``h`` (in units of the rest mouth width), rounding ``r``
(0 spread .. 1 rounded) and ``bite`` (upper teeth on the lower lip, f/v).

Within a word, the visemes share the word's duration (vowels weigh 1.5,
consonants 1); the mouth passes through each viseme's shape at the middle of
its share and rests between words. The opening is then modulated by the
speech envelope: ``h * (0.55 + 0.45 * env)``; that product is the *driving
signal* a face tracker should measure.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shape:
    w: float
    h: float
    r: float = 0.0
    bite: float = 0.0


VISEMES: dict[str, Shape] = {
    "rest": Shape(1.0, 0.0, 0.1),
    "P": Shape(0.92, 0.0, 0.15),  # p b m: lips pressed
    "F": Shape(1.0, 0.05, 0.0, 1.0),  # f v: upper teeth on the lower lip
    "T": Shape(1.08, 0.13, 0.0),  # t d n l s z
    "K": Shape(1.0, 0.24, 0.1),  # k g r h x
    "S": Shape(0.72, 0.17, 0.7),  # sh zh ch: protruded
    "A": Shape(1.1, 0.55, 0.1),  # a: wide open
    "E": Shape(1.25, 0.3, 0.0),  # e: mid spread
    "I": Shape(1.4, 0.1, 0.0),  # i: spread, nearly closed
    "O": Shape(0.62, 0.4, 0.9),  # o: round
    "U": Shape(0.46, 0.2, 1.0),  # u w: small round
}
VOWEL_VISEMES = frozenset("AEIOU")

_LATIN: dict[str, str] = {
    **dict.fromkeys("pbm", "P"),
    **dict.fromkeys("fv", "F"),
    **dict.fromkeys("tdnlszcç", "T"),
    **dict.fromkeys("kgqxhr", "K"),
    "j": "S",
    "ß": "T",
    "ñ": "T",
    "a": "A",
    "e": "E",
    "i": "I",
    "y": "I",
    "o": "O",
    "u": "U",
    "w": "U",
}
_GREEK: dict[str, str] = {
    "α": "A", "β": "F", "γ": "K", "δ": "T", "ε": "E", "ζ": "T", "η": "I", "θ": "T",
    "ι": "I", "κ": "K", "λ": "T", "μ": "P", "ν": "T", "ξ": "K", "ο": "O", "π": "P",
    "ρ": "K", "σ": "T", "ς": "T", "τ": "T", "υ": "I", "φ": "F", "χ": "K", "ψ": "P",
    "ω": "O",
}  # fmt: skip
_CYRILLIC: dict[str, str] = {
    "а": "A", "б": "P", "в": "F", "г": "K", "д": "T", "е": "E", "ж": "S", "з": "T",
    "и": "I", "й": "I", "к": "K", "л": "T", "м": "P", "н": "T", "о": "O", "п": "P",
    "р": "K", "с": "T", "т": "T", "у": "U", "ф": "F", "х": "K", "ц": "T", "ч": "S",
    "ш": "S", "щ": "S", "ы": "I", "э": "E", "ю": "U", "я": "A",
}  # fmt: skip
_ARABIC: dict[str, str] = {
    "ا": "A", "أ": "A", "إ": "I", "آ": "A", "ب": "P", "ت": "T", "ث": "T", "ج": "S",
    "ح": "K", "خ": "K", "د": "T", "ذ": "T", "ر": "K", "ز": "T", "س": "T", "ش": "S",
    "ص": "T", "ض": "T", "ط": "T", "ظ": "T", "ع": "A", "غ": "K", "ف": "F", "ق": "K",
    "ك": "K", "ل": "T", "م": "P", "ن": "T", "ه": "K", "و": "U", "ي": "I", "ى": "A",
    "ة": "A", "ئ": "I", "ؤ": "U",
}  # fmt: skip
_TABLE = {**_LATIN, **_GREEK, **_CYRILLIC, **_ARABIC}


def word_visemes(word: str) -> list[str]:
    """Viseme labels of ``word`` (repeats collapsed; at least one label)."""
    out: list[str] = []
    for ch in word.lower():
        v = _TABLE.get(ch)
        if v is None:
            base = unicodedata.normalize("NFD", ch)[0]
            v = _TABLE.get(base)
        if v is not None and (not out or out[-1] != v):
            out.append(v)
    return out or ["K"]


def mouth_trajectory(
    words: list[tuple[float, float, list[str]]],
    times: np.ndarray,
    envelope: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-frame mouth parameters of an utterance.

    Args:
        words: (start s, end s, viseme labels) per word, in time order.
        times: (T,) frame times in seconds.
        envelope: (T,) speech envelope in [0, 1] at those times.

    Returns:
        dict of (T,) float arrays ``w``, ``h``, ``r``, ``bite`` where ``h`` is the
        envelope-modulated opening (the driving signal).
    """
    rest = VISEMES["rest"]
    kt: list[float] = [-1.0]
    ks: list[Shape] = [rest]
    for i, (start, end, labels) in enumerate(words):
        prev_end = words[i - 1][1] if i else -1.0
        next_start = words[i + 1][0] if i + 1 < len(words) else end + 1.0
        lead = min(0.04, max(0.0, (start - prev_end) / 2))
        if start - lead > kt[-1] + 1e-6:
            kt.append(start - lead)
            ks.append(rest)
        weights = np.array([1.5 if v in VOWEL_VISEMES else 1.0 for v in labels])
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
        for j, v in enumerate(labels):
            kt.append(float(edges[j] + edges[j + 1]) / 2)
            ks.append(VISEMES[v])
        tail = min(0.04, max(0.0, (next_start - end) / 2))
        kt.append(end + tail)
        ks.append(rest)
    kt.append(max(kt[-1], float(times[-1]) if len(times) else 0.0) + 1.0)
    ks.append(rest)
    kt_arr = np.asarray(kt)
    out = {
        name: np.interp(times, kt_arr, np.array([getattr(s, name) for s in ks]))
        for name in ("w", "h", "r", "bite")
    }
    env = np.clip(np.asarray(envelope, dtype=np.float64), 0.0, 1.0)
    out["h"] = out["h"] * (0.55 + 0.45 * env)
    return out
