"""Span masks (wav2vec 2.0 / HuBERT semantics), drawn per row from a seeded generator.

For a row with ``n`` valid frames, ``prob`` and ``span``: the number of spans is
``int(prob * n / span + u)`` with ``u ~ U[0, 1)`` (so ``prob`` is the expected
fraction of frames that *start* a span, times ``span``), at least
``min_masks``; span starts are drawn uniformly without replacement from
``[0, n - span]``; spans may overlap, so the masked fraction is below ``prob``
(for 0.8 / 10 about 55 %). :func:`expected_mask_fraction` gives the exact
expectation that the tests compare against.

Audio spans count audio frames (50 Hz for the XLS-R CNN, 25 Hz for the
filterbank front end); video spans count video frames (25 fps).
"""

from __future__ import annotations

import numpy as np


def num_spans(n: int, prob: float, span: int, min_masks: int, u: float) -> int:
    if n <= 0 or prob <= 0 or span <= 0:
        return 0
    k = int(prob * n / span + u)
    k = max(min_masks, k)
    return min(k, max(n - span + 1, 1))


def span_mask(
    n: int, length: int, prob: float, span: int, min_masks: int, rng: np.random.Generator
) -> np.ndarray:
    """One row: bool (length,), True on masked frames among the first ``n`` frames."""
    mask = np.zeros(length, dtype=bool)
    n = min(n, length)
    k = num_spans(n, prob, span, min_masks, float(rng.random()))
    if k == 0:
        return mask
    span_eff = min(span, n)
    starts = rng.choice(n - span_eff + 1, size=k, replace=False)
    idx = (starts[:, None] + np.arange(span_eff)[None]).reshape(-1)
    mask[idx] = True
    return mask


def expected_mask_fraction(n: int, prob: float, span: int, min_masks: int) -> float:
    """Exact expected fraction of the ``n`` frames covered by :func:`span_mask`."""
    if n <= 0 or prob <= 0:
        return 0.0
    span_eff = min(span, n)
    n_starts = n - span_eff + 1
    base = prob * n / span
    lo = int(np.floor(base))
    frac = base - lo
    # k = lo + 1 with probability frac, lo otherwise (then clamped like num_spans)
    outcomes = [(lo, 1.0 - frac), (lo + 1, frac)]
    t = np.arange(n)
    # number of starts s in [0, n_starts) with s <= t < s + span_eff
    covering = np.minimum(t, n_starts - 1) - np.maximum(t - span_eff + 1, 0) + 1
    total = 0.0
    for k, w in outcomes:
        if w == 0:
            continue
        k = min(max(min_masks, k), max(n_starts, 1))
        # P(t not covered) choosing k distinct starts out of n_starts: C(n_starts - c, k) / C(n_starts, k)
        p_free = np.ones(n)
        for i in range(k):
            p_free *= np.clip((n_starts - covering - i) / (n_starts - i), 0.0, None)
        total += w * float(np.mean(1.0 - p_free))
    return total
