"""Babble noise: the mean of many streams of speech, filled round-robin over languages.

One babble signal is the mean of ``n_streams`` streams (30 by default); each
stream is ``min_seconds`` long (15 s by default), made of utterances drawn at
random, each scaled to unit RMS, cut at a random offset. Stream ``j`` starts
with language ``j`` (languages sorted) and moves to the next language with
every utterance, so every language is heard about equally however many
utterances it has. The result is scaled to an RMS of 0.1 (peak at most 0.99).

The utterances are given as pools of items per language plus a ``load``
function, so a pool can hold file paths (read only when drawn) as well as
decoded arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from avsr.audio import SAMPLE_RATE

T = TypeVar("T")

TARGET_RMS = 0.1
"""RMS of a finished babble (and of the embedded corpus's noise files)."""
PEAK = 0.99
"""Peak bound applied after the RMS scaling."""


def normalise_level(x: np.ndarray, target_rms: float = TARGET_RMS) -> np.ndarray:
    """``x`` scaled to ``target_rms``, then down to a peak of :data:`PEAK` if louder (float32)."""
    r = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    y = x * (target_rms / max(r, 1e-9))
    peak = float(np.abs(y).max())
    if peak > PEAK:
        y = y * (PEAK / peak)
    return y.astype(np.float32)


def _stream(
    pools: Mapping[str, Sequence[T]],
    langs: Sequence[str],
    first: int,
    n: int,
    load: Callable[[T], np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` samples of unit-RMS utterances, languages taken in turn from ``langs[first]``."""
    parts: list[np.ndarray] = []
    total, k = 0, first
    while total < n:
        items = pools[langs[k % len(langs)]]
        u = load(items[int(rng.integers(len(items)))])
        parts.append(u / max(float(np.sqrt(np.mean(u.astype(np.float64) ** 2))), 1e-9))
        total += len(u)
        k += 1
    s = np.concatenate(parts)
    off = int(rng.integers(0, len(s) - n + 1))
    return s[off : off + n]


def mix_babble(
    pools: Mapping[str, Sequence[T]],
    rng: np.random.Generator,
    *,
    load: Callable[[T], np.ndarray],
    n_streams: int = 30,
    min_seconds: float = 15.0,
) -> np.ndarray:
    """One babble signal, float32 16 kHz, ``min_seconds`` long.

    Args:
        pools: language -> utterances (items ``load`` turns into float32 16 kHz mono
            arrays; every utterance must be non-empty). Empty pools are ignored.
        rng: the only source of randomness (utterance choice and stream offsets).
        load: item -> samples (``lambda a: a`` for arrays).
        n_streams: streams averaged.
        min_seconds: length of every stream, and of the result.
    """
    langs = sorted(lang for lang, items in pools.items() if items)
    if not langs:
        raise ValueError("babble: no utterances to mix")
    n = int(min_seconds * SAMPLE_RATE)
    streams = [_stream(pools, langs, j, n, load, rng) for j in range(n_streams)]
    return normalise_level(np.mean(streams, axis=0))
