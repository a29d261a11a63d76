"""Batched beam search over an incremental decoder (width 5, no length penalty by default).

Every sentence keeps ``beam`` live hypotheses. At each step the best
``2 * beam`` extensions are ranked; an extension ending in eos among the first
``beam`` ranks becomes a finished hypothesis, the first ``beam`` others stay
live. bos and pad are never generated; at the last allowed step only eos is.
With no length penalty a score is the sum of token log-probabilities, which
can only fall as a hypothesis grows: a sentence is done as soon as its best
finished score is at least its best live score (so the returned hypothesis is
exactly the best one reachable through the kept prefixes), or when nothing is
live. With a length penalty ``lp`` the finished score is ``sum / len**lp`` and
a sentence is done once it has ``beam`` finished hypotheses.

``beam=1`` is greedy decoding.

Joint CTC/attention decoding (``ctc=JointCTC(...)``, ESPnet / auto_avsr): every
extension is scored ``(1 - w) * log p_att(c | h) + w * (log psi(h + c) - log psi(h))``
with ``psi`` the CTC prefix score (:mod:`avsr.models.heads.ctc_prefix`), so a
hypothesis scores ``(1 - w) * log p_att + w * log p_ctc``. Both parts can only
fall as a hypothesis grows, so the stopping rule above still holds. With
``w = 0`` (or no ``ctc``) the search is the attention-only one, operation for
operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from avsr.models.heads.ctc_prefix import CTCPrefixScorer


class IncrementalDecoder(Protocol):
    """A decoder run one token at a time, with a state per row."""

    def init_state(self, enc: Tensor, enc_padding_mask: Tensor | None = None) -> Any:
        """The state of a batch of encoder outputs enc (B, T, E)."""
        ...

    def step(self, tokens: Tensor, state: Any) -> Tensor:
        """Logits (rows, V) of the next token after ``tokens`` (rows,); updates ``state``."""
        ...

    def reorder(self, state: Any, index: Tensor) -> Any:
        """The state with its rows picked by ``index`` (rows,)."""
        ...


@dataclass
class Hypothesis:
    """One finished output sequence."""

    tokens: list[int]
    """Output tokens, without bos / eos."""
    score: float
    """Sum of log-probs (eos included; joint CTC/attention: the weighted sum of both),
    divided by ``len**len_penalty``."""


@dataclass(kw_only=True)
class JointCTC:
    """The CTC branch's output for joint CTC/attention decoding."""

    log_probs: Tensor
    """(B, T, V) CTC log-probabilities over the encoder frames."""
    lens: Tensor
    """(B,) valid frames per sentence."""
    weight: float
    """CTC weight ``w`` in [0, 1]: score = (1 - w) * attention + w * CTC prefix score."""
    blank_id: int = 1
    """The CTC blank (the tokenizer's pad id)."""
    pre_beam: int | None = None
    """CTC-score only the best ``pre_beam`` tokens of each prefix by attention (ESPnet's
    partial scoring; the others are dropped); None: the whole vocabulary (exact)."""


@dataclass(kw_only=True)
class _Search:
    """The state of a batched beam search between steps (B sentences x k beams)."""

    k: int
    """Beam width."""
    state: Any
    """The decoder's incremental state, rows in beam order (B*k)."""
    tokens: Tensor
    """(B*k, t+1) the live prefixes, bos first."""
    scores: Tensor
    """(B, k) score of each live prefix (-inf: no live prefix in that slot)."""
    finished: list[list[Hypothesis]]
    """Finished hypotheses per sentence."""
    done: list[bool]
    """Per sentence: no live prefix can beat the finished ones any more."""


NEG_INF = float("-inf")


@torch.no_grad()
def beam_search(
    decoder: IncrementalDecoder,
    enc: Tensor,
    enc_padding_mask: Tensor | None,
    *,
    beam: int = 5,
    max_len: int = 200,
    bos_id: int = 0,
    pad_id: int = 1,
    eos_id: int = 2,
    len_penalty: float = 0.0,
    nbest: int = 1,
    ctc: JointCTC | None = None,
) -> list[list[Hypothesis]]:
    """Decode a batch. enc (B, T, E), enc_padding_mask (B, T) True at padding.

    Returns, per sentence, its ``nbest`` best finished hypotheses, best first.
    ``max_len`` counts output tokens including eos. ``ctc``: joint CTC/attention
    scoring (see the module docstring).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    search = _start(decoder, enc, enc_padding_mask, beam, bos_id)
    bsz, device = enc.shape[0], enc.device
    scorer = _ctc_scorer(ctc, beam, eos_id)
    for t in range(max_len):
        logits = decoder.step(search.tokens[:, -1], search.state)
        last = t == max_len - 1
        if scorer is None:
            logp = _step_log_probs(logits, last=last, bos_id=bos_id, pad_id=pad_id, eos_id=eos_id)
        else:
            assert ctc is not None
            logp = _joint_log_probs(logits, scorer, ctc, last=last, bos_id=bos_id, pad_id=pad_id, eos_id=eos_id)
        sel_rows, sel_tok, sel_score = _select(search, t, logp, pad_id, eos_id, len_penalty)
        if all(search.done):
            break
        index = torch.tensor(sel_rows, dtype=torch.long, device=device)
        tokens = torch.tensor(sel_tok, device=device)
        search.state = decoder.reorder(search.state, index)
        search.tokens = torch.cat([search.tokens.index_select(0, index), tokens[:, None]], dim=1)
        if scorer is not None:
            scorer.advance(index, tokens)
        search.scores = torch.tensor(sel_score, device=device).view(bsz, beam)
    return _best(search.finished, nbest)


def _select(
    search: _Search, t: int, logp: Tensor, pad_id: int, eos_id: int, len_penalty: float
) -> tuple[list[int], list[int], list[float]]:
    """Rank every live prefix's extensions (the best ``2 * k`` per sentence) and pick the
    next live ones: (source row, token, score) per row of the next step, padded with
    dead rows (pad, -inf); finished hypotheses and done flags are updated on ``search``."""
    bsz, k = search.scores.shape[0], search.k
    vocab = logp.shape[-1]
    cand = (search.scores.view(-1, 1) + logp).view(bsz, k * vocab)
    n_top = min(2 * k, k * vocab)
    top_val, top_idx = cand.topk(n_top, dim=-1)
    top_val, top_idx = top_val.cpu(), top_idx.cpu()
    src_beam = top_idx // vocab
    new_tok = top_idx % vocab

    sel_rows: list[int] = []
    sel_tok: list[int] = []
    sel_score: list[float] = []
    prefix = search.tokens[:, 1:].cpu()
    for b in range(bsz):
        live = _next_live(
            search, b, t, top_val[b], src_beam[b], new_tok[b], prefix, eos_id, len_penalty
        )
        while len(live) < k:
            live.append((b * k, pad_id, NEG_INF))
        for row, tok, val in live:
            sel_rows.append(row)
            sel_tok.append(tok)
            sel_score.append(val)
    return sel_rows, sel_tok, sel_score


def _start(
    decoder: IncrementalDecoder, enc: Tensor, enc_padding_mask: Tensor | None, k: int, bos_id: int
) -> _Search:
    """k copies of every sentence's state; only the first copy is live at the start."""
    bsz = enc.shape[0]
    device = enc.device
    state = decoder.init_state(enc, enc_padding_mask)
    expand = torch.arange(bsz, device=device).repeat_interleave(k)
    state = decoder.reorder(state, expand)
    tokens = torch.full((bsz * k, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.full((bsz, k), NEG_INF, device=device)
    scores[:, 0] = 0.0  # only the first copy is live at the start
    return _Search(
        k=k,
        state=state,
        tokens=tokens,
        scores=scores,
        finished=[[] for _ in range(bsz)],
        done=[False] * bsz,
    )


def _step_log_probs(logits: Tensor, *, last: bool, bos_id: int, pad_id: int, eos_id: int) -> Tensor:
    """(B*k, V) log-probabilities of the next token: never bos or pad; only eos at the last step."""
    logp = F.log_softmax(logits.float(), dim=-1)  # (B*k, V)
    return _mask_specials(logp, last=last, bos_id=bos_id, pad_id=pad_id, eos_id=eos_id)


def _mask_specials(logp: Tensor, *, last: bool, bos_id: int, pad_id: int, eos_id: int) -> Tensor:
    """``logp`` (B*k, V) in place with bos and pad at -inf, and only eos left at the last step."""
    logp[:, bos_id] = NEG_INF
    logp[:, pad_id] = NEG_INF
    if last:
        eos_col = logp[:, eos_id].clone()
        logp.fill_(NEG_INF)
        logp[:, eos_id] = eos_col
    return logp


def _ctc_scorer(ctc: JointCTC | None, k: int, eos_id: int) -> CTCPrefixScorer | None:
    """The prefix scorer of a joint search (None: attention only, ``ctc`` absent or weight 0)."""
    if ctc is None or ctc.weight == 0.0:
        return None
    if not 0.0 < ctc.weight <= 1.0:
        raise ValueError(f"CTC weight must be in [0, 1], got {ctc.weight}")
    log_probs = F.log_softmax(ctc.log_probs.float(), dim=-1)
    return CTCPrefixScorer(log_probs, ctc.lens, k=k, blank_id=ctc.blank_id, eos_id=eos_id)


def _joint_log_probs(
    logits: Tensor, scorer: CTCPrefixScorer, ctc: JointCTC, *, last: bool, bos_id: int, pad_id: int, eos_id: int
) -> Tensor:
    """(B*k, V) joint scores of the next token, ``(1 - w) * attention + w * CTC prefix
    increment``, with the specials masked as in :func:`_step_log_probs`."""
    att = F.log_softmax(logits.float(), dim=-1)  # (B*k, V)
    vocab = att.shape[-1]
    if ctc.pre_beam is None or ctc.pre_beam >= vocab:
        ctc_inc = scorer.increments()
    else:
        masked = _mask_specials(att.clone(), last=last, bos_id=bos_id, pad_id=pad_id, eos_id=eos_id)
        cand = masked.topk(ctc.pre_beam, dim=-1).indices  # (B*k, C)
        ctc_inc = torch.full_like(att, NEG_INF).scatter(1, cand, scorer.increments(cand))
    w = ctc.weight
    joint = w * ctc_inc if w == 1.0 else (1.0 - w) * att + w * ctc_inc
    return _mask_specials(joint, last=last, bos_id=bos_id, pad_id=pad_id, eos_id=eos_id)


def _next_live(
    search: _Search,
    b: int,
    t: int,
    top_val: Tensor,
    src_beam: Tensor,
    new_tok: Tensor,
    prefix: Tensor,
    eos_id: int,
    len_penalty: float,
) -> list[tuple[int, int, float]]:
    """Sentence ``b``'s ranked extensions at step ``t``: eos among the first k finishes a
    hypothesis, the first k others stay live as (source row, token, score); marks the
    sentence done (and returns nothing) when no live prefix can do better."""
    k = search.k
    finished = search.finished[b]
    live: list[tuple[int, int, float]] = []
    if search.done[b]:
        return live
    for j in range(top_val.shape[0]):
        val = float(top_val[j])
        if val == NEG_INF:
            break
        row = b * k + int(src_beam[j])
        tok = int(new_tok[j])
        if tok == eos_id:
            if j < k:
                length = t + 1
                score = val / (length**len_penalty) if len_penalty else val
                finished.append(Hypothesis(prefix[row].tolist(), score))
        elif len(live) < k:
            live.append((row, tok, val))
    best_live = live[0][2] if live else NEG_INF
    if not live:
        search.done[b] = True
    elif len_penalty == 0.0:
        if finished and max(h.score for h in finished) >= best_live:
            search.done[b] = True
    elif len(finished) >= k:
        search.done[b] = True
    return [] if search.done[b] else live


def _best(finished: list[list[Hypothesis]], nbest: int) -> list[list[Hypothesis]]:
    """The ``nbest`` best finished hypotheses per sentence (an empty -inf one if none)."""
    out = []
    for hyps_b in finished:
        hyps = sorted(hyps_b, key=lambda h: h.score, reverse=True)
        out.append(hyps[:nbest] if hyps else [Hypothesis([], NEG_INF)])
    return out
