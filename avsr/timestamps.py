"""Word timings from a CTC best path (greedy decoding).

The best path is the argmax token of every encoder output frame. A word is the run
of non-blank tokens from a piece that starts with the SentencePiece word marker
``▁`` up to the next such piece. It starts at the first frame of its first token that
carries text: a lone ``▁`` piece (the marker without letters, which small vocabularies
emit as a token of its own) is not counted, as CTC often emits it in the pause before
the word, or on the first frame of a segment. It ends at the end of the last frame of
its last token. No fixed shift is applied. The precision is one encoder frame
(``frame_s``, e.g. 20 ms at 50 encoder frames per second); how far a token's CTC spike
lies from the spoken word depends on the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

WORD_MARK = "\u2581"


@dataclass(frozen=True)
class Word:
    """One recognised word and its time in seconds from the first video frame."""

    word: str
    """The word as decoded."""
    start: float
    """Start of the first frame of the word's first token that carries text (s)."""
    end: float
    """End of the word's last token frame (s)."""


def collapse_path(path: Sequence[int], blank_id: int) -> list[tuple[int, int, int]]:
    """(token, first frame, last frame) of each emitted token of a CTC best path:
    repeats merged, blanks dropped (the tokens equal greedy CTC decoding)."""
    out: list[tuple[int, int, int]] = []
    prev = None
    for t, tok in enumerate(path):
        if tok != blank_id:
            if tok != prev:
                out.append((int(tok), t, t))
            else:
                tok0, first, _ = out[-1]
                out[-1] = (tok0, first, t)
        prev = tok
    return out


def ctc_words(
    path: Sequence[int],
    *,
    blank_id: int,
    piece: Callable[[int], str],
    frame_s: float,
    offset_s: float = 0.0,
    skip: frozenset[int] = frozenset(),
) -> list[Word]:
    """Words with times of one CTC best path (frame token ids ``path`` (T,)).

    ``piece``: token id -> SentencePiece piece; ``frame_s``: seconds per encoder frame;
    ``offset_s``: time of frame 0; ``skip``: special token ids that are not text.
    """
    words: list[tuple[str, int | None, int]] = []  # text, first frame with text, last frame
    for tok, first, last in collapse_path(path, blank_id):
        if tok in skip:
            continue
        p = piece(tok)
        text = p.removeprefix(WORD_MARK)
        if p.startswith(WORD_MARK) or not words:
            words.append((text, first if text else None, last))  # a new word
        else:
            text0, first0, _ = words[-1]
            words[-1] = (text0 + text, first if first0 is None and text else first0, last)
    return [
        Word(word=w, start=offset_s + f0 * frame_s, end=offset_s + (f1 + 1) * frame_s)
        for w, f0, f1 in words
        if w and f0 is not None
    ]


def ctc_best_paths(model: Any, batch: Any, modality: str) -> tuple[list[list[int]], list[int]]:
    """(argmax token per encoder frame, number of encoder frames) per row of an ``AVBatch``,
    for a PyTorch CTC model (:class:`avsr.models.finetuned.FinetunedModel` with a CTC head)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            enc = model.encode(batch, modality=modality)
            best = model.head(enc.feats).argmax(dim=-1).cpu()
    finally:
        model.train(was_training)
    lens = [int(n) for n in enc.lens.cpu()]
    return [best[b, :n].tolist() for b, n in enumerate(lens)], lens


def shift_word(word: Word, by_s: float) -> Word:
    """``word`` with its times moved by ``by_s`` seconds."""
    if not by_s:
        return word
    return Word(word=word.word, start=word.start + by_s, end=word.end + by_s)
