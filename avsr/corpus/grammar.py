"""A GRID-like command grammar in the nine MuAViC languages, with exact English translations.

A sentence is ``command colour preposition digit [digit] adverb`` (5 or 6
words), e.g. en "show blue under four nine again", es "muestra azul bajo
cuatro nueve nuevamente". Every slot word of every language is the
translation of the English slot word with the same index, and no word occurs
twice within a language's vocabulary, so the English translation of a
sentence is fixed by construction: the English words of the same slot
indices in the same order. The vocabulary is 39 words per language (8
commands, 8 colours, 5 prepositions, 10 digits, 8 adverbs), kept in
``vocabulary.json`` beside this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LANGUAGES = ("en", "ar", "de", "el", "es", "fr", "it", "pt", "ru")
X_TO_EN = ("el", "es", "fr", "it", "pt", "ru")
SLOTS = ("command", "colour", "preposition", "digit", "adverb")


def _load_vocabulary() -> dict[str, dict[str, tuple[str, ...]]]:
    """``vocabulary.json`` beside this module: slot -> language -> words."""
    data = json.loads(Path(__file__).with_name("vocabulary.json").read_text(encoding="utf-8"))
    return {slot: {lang: tuple(words) for lang, words in by_lang.items()} for slot, by_lang in data.items()}


# slot -> language -> words (index i of every language translates index i of "en")
VOCAB: dict[str, dict[str, tuple[str, ...]]] = _load_vocabulary()


@dataclass(frozen=True)
class Sentence:
    """One sentence of the grammar and its word-by-word English."""

    lang: str
    """Language code."""
    words: tuple[str, ...]
    """The sentence's words."""
    english: tuple[str, ...]
    """The English words of the same slots."""

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def translation(self) -> str:
        """Exact English translation for X->En languages, else empty."""
        return " ".join(self.english) if self.lang in X_TO_EN else ""


def vocabulary(lang: str) -> list[str]:
    """Every word of ``lang`` (sorted, unique)."""
    return sorted({w for slot in SLOTS for w in VOCAB[slot][lang]})


def sample_sentence(lang: str, rng: np.random.Generator) -> Sentence:
    """One sentence of ``lang`` with its English counterpart (same slot indices)."""
    slots = ["command", "colour", "preposition", "digit"]
    if rng.random() < 0.5:
        slots.append("digit")
    slots.append("adverb")
    idx = [int(rng.integers(len(VOCAB[s]["en"]))) for s in slots]
    words = tuple(VOCAB[s][lang][i] for s, i in zip(slots, idx))
    english = tuple(VOCAB[s]["en"][i] for s, i in zip(slots, idx))
    return Sentence(lang, words, english)


def translate_to_english(lang: str, words: list[str] | tuple[str, ...]) -> list[str]:
    """Word-by-word English of a sentence of this grammar (KeyError for unknown words)."""
    table = {VOCAB[s][lang][i]: VOCAB[s]["en"][i] for s in SLOTS for i in range(len(VOCAB[s]["en"]))}
    return [table[w] for w in words]
