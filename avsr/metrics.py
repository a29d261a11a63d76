"""Scoring: WER / CER (jiwer) and BLEU (sacrebleu), with counts that combine.

WER: the text is NFC-normalised, tokenised with sacrebleu's
13a tokenizer, lowercased, punctuation is split off the ends of every token
(any Unicode punctuation, e.g. ``« » … ، ؟ ;``) and tokens made only of
punctuation are dropped; intra-word marks such as the apostrophe of
``l'homme`` or the hyphen of ``vingt-deux`` stay. The words are then scored
by :func:`jiwer.process_words`. CER is the same normalised text scored at
character level (spaces count as characters) by :func:`jiwer.process_characters`.

BLEU is ``sacrebleu.corpus_bleu(hyps, [refs])`` (13a, case-sensitive, exp
smoothing); its sufficient statistics are kept so cells (e.g. languages) can
be summed and scored again exactly.

Every result carries raw counts (errors, reference words, ...), so a corpus
score is always the sum of its parts, never an average of rates.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

WER_SIGNATURE = "wer:jiwer|tok:13a|case:lc|punct:removed(unicode)|norm:nfc"
CER_SIGNATURE = "cer:jiwer|tok:13a|case:lc|punct:removed(unicode)|norm:nfc|spaces:counted"


@lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _strip_punct(token: str) -> str:
    start, end = 0, len(token)
    while start < end and _is_punct(token[start]):
        start += 1
    while end > start and _is_punct(token[end - 1]):
        end -= 1
    return token[start:end]


def wer_words(text: str) -> list[str]:
    """The words WER compares: 13a tokens, lowercased, punctuation removed."""
    tokens = _tokenizer_13a()(unicodedata.normalize("NFC", text)).lower().split()
    return [w for w in (_strip_punct(t) for t in tokens) if w]


def normalize_for_wer(text: str) -> str:
    """``wer_words`` joined by single spaces (the string jiwer is given)."""
    return " ".join(wer_words(text))


@dataclass(kw_only=True)
class ErrorCounts:
    """Word and character error counts of a set of sentences (additive).

    ``wer = (substitutions + deletions + insertions) / ref_words``.
    """

    sentences: int = 0
    """Sentences scored."""
    ref_words: int = 0
    """Words in the references (the WER denominator)."""
    hyp_words: int = 0
    """Words in the hypotheses."""
    hits: int = 0
    """Reference words matched exactly."""
    substitutions: int = 0
    """Reference words replaced by another word."""
    deletions: int = 0
    """Reference words missing from the hypothesis."""
    insertions: int = 0
    """Hypothesis words with no reference word."""
    ref_chars: int = 0
    """Characters in the references, spaces counted (the CER denominator)."""
    char_errors: int = 0
    """Character edits (substitutions + deletions + insertions)."""

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Word error rate in percent (``nan`` without reference words)."""
        return 100.0 * self.errors / self.ref_words if self.ref_words else float("nan")

    @property
    def cer(self) -> float:
        """Character error rate in percent (``nan`` without reference characters)."""
        return 100.0 * self.char_errors / self.ref_chars if self.ref_chars else float("nan")

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dataclasses.asdict(self)
        d["errors"] = self.errors
        d["wer"] = _round(self.wer)
        d["cer"] = _round(self.cer)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorCounts:
        return cls(**{f.name: int(d[f.name]) for f in dataclasses.fields(cls)})


def _round(x: float, nd: int = 4) -> float | None:
    return None if x != x else round(float(x), nd)  # nan -> None (valid JSON)


def _sentence_counts(ref_words: list[str], hyp_words: list[str]) -> ErrorCounts:
    import jiwer

    ref, hyp = " ".join(ref_words), " ".join(hyp_words)
    if not ref_words:  # jiwer refuses empty references: everything hypothesised is inserted
        return ErrorCounts(
            sentences=1, hyp_words=len(hyp_words), insertions=len(hyp_words), char_errors=len(hyp)
        )
    w = jiwer.process_words(ref, hyp)
    c = jiwer.process_characters(ref, hyp)
    return ErrorCounts(
        sentences=1,
        ref_words=len(ref_words),
        hyp_words=len(hyp_words),
        hits=w.hits,
        substitutions=w.substitutions,
        deletions=w.deletions,
        insertions=w.insertions,
        ref_chars=len(ref),
        char_errors=c.substitutions + c.deletions + c.insertions,
    )


def error_counts(refs: Sequence[str], hyps: Sequence[str]) -> ErrorCounts:
    """WER/CER counts of hypotheses against references (same length, same order)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = ErrorCounts()
    for r, h in zip(refs, hyps):
        total = total + _sentence_counts(wer_words(r), wer_words(h))
    return total


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER in percent."""
    return error_counts(refs, hyps).wer


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus CER in percent."""
    return error_counts(refs, hyps).cer


# ---------------------------------------------------------------- BLEU


def _bleu_metric():
    from sacrebleu.metrics import BLEU

    return BLEU()  # the settings of sacrebleu.corpus_bleu's defaults: 13a, mixed case, exp


@lru_cache(maxsize=1)
def bleu_signature() -> str:
    """sacrebleu's signature for the BLEU computed here (``nrefs:1|case:mixed|eff:no|tok:13a|...``)."""
    m = _bleu_metric()
    m.corpus_score(["a"], [["a"]])
    return str(m.get_signature())


@dataclass(kw_only=True)
class BleuStats:
    """Sufficient statistics of corpus BLEU (additive over sentences)."""

    sentences: int = 0
    correct: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    total: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    sys_len: int = 0
    ref_len: int = 0

    @property
    def score(self) -> float:
        """BLEU (0-100) from the statistics, exactly as sacrebleu computes it."""
        from sacrebleu.metrics import BLEU

        if self.sentences == 0:
            return float("nan")
        return float(
            BLEU.compute_bleu(
                list(self.correct),
                list(self.total),
                self.sys_len,
                self.ref_len,
                smooth_method="exp",
            ).score
        )

    def __add__(self, other: BleuStats) -> BleuStats:
        return BleuStats(
            sentences=self.sentences + other.sentences,
            correct=[a + b for a, b in zip(self.correct, other.correct)],
            total=[a + b for a, b in zip(self.total, other.total)],
            sys_len=self.sys_len + other.sys_len,
            ref_len=self.ref_len + other.ref_len,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dataclasses.asdict(self)
        d["bleu"] = _round(self.score)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BleuStats:
        return cls(
            sentences=int(d["sentences"]),
            correct=[int(x) for x in d["correct"]],
            total=[int(x) for x in d["total"]],
            sys_len=int(d["sys_len"]),
            ref_len=int(d["ref_len"]),
        )


def bleu_stats(refs: Sequence[str], hyps: Sequence[str]) -> BleuStats:
    """BLEU statistics of hypotheses against one reference each."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        return BleuStats()
    s = _bleu_metric().corpus_score(list(hyps), [list(refs)])
    return BleuStats(
        sentences=len(refs),
        correct=list(s.counts),
        total=list(s.totals),
        sys_len=s.sys_len,
        ref_len=s.ref_len,
    )


def bleu(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus BLEU (``sacrebleu.corpus_bleu(hyps, [refs]).score``)."""
    return bleu_stats(refs, hyps).score


# ---------------------------------------------------------------- per language

ALL = "all"


@dataclass(kw_only=True)
class Score:
    """WER/CER counts and (when scored) BLEU statistics of one set of sentences."""

    counts: ErrorCounts = field(default_factory=ErrorCounts)
    bleu: BleuStats | None = None

    def __add__(self, other: Score) -> Score:
        if self.bleu is None and other.bleu is None:
            b = None
        else:
            b = (self.bleu or BleuStats()) + (other.bleu or BleuStats())
        return Score(counts=self.counts + other.counts, bleu=b)

    def to_dict(self) -> dict[str, Any]:
        d = self.counts.to_dict()
        if self.bleu is not None:
            d["bleu_stats"] = self.bleu.to_dict()
            d["bleu"] = _round(self.bleu.score)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        b = BleuStats.from_dict(d["bleu_stats"]) if "bleu_stats" in d else None
        return cls(counts=ErrorCounts.from_dict(d), bleu=b)


def score(refs: Sequence[str], hyps: Sequence[str], *, with_bleu: bool = False) -> Score:
    """WER/CER counts, plus BLEU statistics when ``with_bleu``."""
    return Score(
        counts=error_counts(refs, hyps), bleu=bleu_stats(refs, hyps) if with_bleu else None
    )


def score_by_language(
    refs: Sequence[str], hyps: Sequence[str], langs: Sequence[str], *, with_bleu: bool = False
) -> dict[str, Score]:
    """One :class:`Score` per language (sorted) plus ``"all"``: the sum of the languages.

    BLEU of ``"all"`` is corpus BLEU over every sentence (the statistics sum).
    """
    if not (len(refs) == len(hyps) == len(langs)):
        raise ValueError(f"lengths differ: {len(refs)} refs, {len(hyps)} hyps, {len(langs)} langs")
    out: dict[str, Score] = {}
    for lang in sorted(set(langs)):
        idx = [i for i, x in enumerate(langs) if x == lang]
        out[lang] = score([refs[i] for i in idx], [hyps[i] for i in idx], with_bleu=with_bleu)
    out[ALL] = sum_scores(out.values(), with_bleu=with_bleu)
    return out


def sum_scores(scores: Iterable[Score], *, with_bleu: bool = False) -> Score:
    total = Score(bleu=BleuStats() if with_bleu else None)
    for s in scores:
        total = total + s
    return total
