"""A small word n-gram ARPA writer: interpolated absolute discounting over add-k unigrams.

Built from transcripts (one sentence per line, ``<s> ... </s>`` added), it writes
a normalised backoff model KenLM reads: each listed n-gram holds the
interpolated probability ``max(c(h,w) - D, 0) / c(h) + bow(h) * p(w | h')``
and each history its interpolation weight ``bow(h) = D * N1+(h .) / c(h)``,
which is also the backoff weight of the unseen words. Unigrams are add-k
smoothed and include ``<unk>``. Used by the CTC beam tests and the decoding
benchmark (an LM of the demo's training transcripts).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROB = -99.0
"""log10 probability ARPA gives ``<s>`` (never predicted)."""


def ngram_counts(sentences: Iterable[str], order: int) -> list[Counter[tuple[str, ...]]]:
    """Counts of the 1..order-grams of ``<s> words </s>`` (index 0: unigrams)."""
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]
    for text in sentences:
        words = [BOS, *text.split(), EOS]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                gram = tuple(words[i : i + n])
                if gram != (BOS,):
                    counts[n - 1][gram] += 1
    return counts


def _unigram_probs(counts: Counter[tuple[str, ...]], k: float) -> dict[tuple[str, ...], float]:
    vocab = [g for g in counts] + [(UNK,)]
    total = sum(counts.values()) + k * len(vocab)
    return {g: (counts.get(g, 0) + k) / total for g in vocab}


def _higher_probs(
    counts: Counter[tuple[str, ...]], lower: dict[tuple[str, ...], float], discount: float
) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """(p of each listed n-gram, bow of each history) by interpolated absolute discounting."""
    ctx_total: dict[tuple[str, ...], int] = defaultdict(int)
    ctx_types: dict[tuple[str, ...], int] = defaultdict(int)
    for g, c in counts.items():
        ctx_total[g[:-1]] += c
        ctx_types[g[:-1]] += 1
    bows = {h: discount * ctx_types[h] / ctx_total[h] for h in ctx_total}
    probs = {}
    for g, c in counts.items():
        h = g[:-1]
        probs[g] = max(c - discount, 0.0) / ctx_total[h] + bows[h] * _backed_off(g[1:], lower)
    return probs, bows


def _backed_off(gram: tuple[str, ...], probs: dict[tuple[str, ...], float]) -> float:
    return probs.get(gram, probs.get((UNK,), 0.0))


def write_arpa(
    sentences: Iterable[str],
    path: str | Path,
    *,
    order: int = 3,
    discount: float = 0.5,
    k: float = 0.1,
) -> Path:
    """Write an ``order``-gram ARPA model of ``sentences`` to ``path``."""
    counts = ngram_counts(list(sentences), order)
    probs = [_unigram_probs(counts[0], k)]
    bows: list[dict[tuple[str, ...], float]] = []
    for n in range(1, order):
        p, b = _higher_probs(counts[n], probs[-1], discount)
        probs.append(p)
        bows.append(b)
    bows.append({})
    lines = ["\\data\\"]
    unigrams = {**probs[0], (BOS,): 0.0}
    lines += [f"ngram {n}={len(unigrams if n == 1 else probs[n - 1])}" for n in range(1, order + 1)]
    for n in range(1, order + 1):
        table = unigrams if n == 1 else probs[n - 1]
        lines += ["", f"\\{n}-grams:"]
        for g in sorted(table):
            lp = NO_PROB if g == (BOS,) else math.log10(table[g])
            bow = bows[n - 1].get(g) if n < order else None
            lines.append(f"{lp:.6f}\t{' '.join(g)}" + (f"\t{math.log10(bow):.6f}" if bow else ""))
    lines += ["", "\\end\\", ""]
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
