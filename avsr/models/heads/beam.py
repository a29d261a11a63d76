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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class IncrementalDecoder(Protocol):
    def init_state(self, enc: Tensor, enc_padding_mask: Tensor | None = None) -> Any: ...

    def step(self, tokens: Tensor, state: Any) -> Tensor: ...

    def reorder(self, state: Any, index: Tensor) -> Any: ...


@dataclass
class Hypothesis:
    tokens: list[int]  # without bos / eos
    score: float  # sum of log-probs (eos included), divided by len**len_penalty


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
) -> list[list[Hypothesis]]:
    """Decode a batch. enc (B, T, E), enc_padding_mask (B, T) True at padding.

    Returns, per sentence, its ``nbest`` best finished hypotheses, best first.
    ``max_len`` counts output tokens including eos.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    bsz = enc.shape[0]
    k = beam
    device = enc.device
    state = decoder.init_state(enc, enc_padding_mask)
    expand = torch.arange(bsz, device=device).repeat_interleave(k)
    state = decoder.reorder(state, expand)
    tokens = torch.full((bsz * k, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.full((bsz, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # only the first copy is live at the start
    finished: list[list[Hypothesis]] = [[] for _ in range(bsz)]
    done = [False] * bsz
    neg_inf = float("-inf")

    for t in range(max_len):
        logits = decoder.step(tokens[:, -1], state)
        logp = F.log_softmax(logits.float(), dim=-1)  # (B*k, V)
        vocab = logp.shape[-1]
        logp[:, bos_id] = neg_inf
        logp[:, pad_id] = neg_inf
        if t == max_len - 1:
            eos_col = logp[:, eos_id].clone()
            logp.fill_(neg_inf)
            logp[:, eos_id] = eos_col
        cand = (scores.view(-1, 1) + logp).view(bsz, k * vocab)
        n_top = min(2 * k, k * vocab)
        top_val, top_idx = cand.topk(n_top, dim=-1)
        top_val, top_idx = top_val.cpu(), top_idx.cpu()
        src_beam = top_idx // vocab
        new_tok = top_idx % vocab

        sel_rows: list[int] = []
        sel_tok: list[int] = []
        sel_score: list[float] = []
        prefix = tokens[:, 1:].cpu()
        for b in range(bsz):
            live: list[tuple[int, int, float]] = []
            if not done[b]:
                for j in range(n_top):
                    val = float(top_val[b, j])
                    if val == neg_inf:
                        break
                    row = b * k + int(src_beam[b, j])
                    tok = int(new_tok[b, j])
                    if tok == eos_id:
                        if j < k:
                            length = t + 1
                            finished[b].append(
                                Hypothesis(prefix[row].tolist(), val / (length**len_penalty) if len_penalty else val)
                            )
                    elif len(live) < k:
                        live.append((row, tok, val))
                best_live = live[0][2] if live else neg_inf
                if not live:
                    done[b] = True
                elif len_penalty == 0.0:
                    if finished[b] and max(h.score for h in finished[b]) >= best_live:
                        done[b] = True
                elif len(finished[b]) >= k:
                    done[b] = True
                if done[b]:
                    live = []
            while len(live) < k:
                live.append((b * k, pad_id, neg_inf))
            for row, tok, val in live:
                sel_rows.append(row)
                sel_tok.append(tok)
                sel_score.append(val)
        if all(done):
            break
        index = torch.tensor(sel_rows, dtype=torch.long, device=device)
        state = decoder.reorder(state, index)
        tokens = torch.cat([tokens.index_select(0, index), torch.tensor(sel_tok, device=device)[:, None]], dim=1)
        scores = torch.tensor(sel_score, device=device).view(bsz, k)

    out = []
    for b in range(bsz):
        hyps = sorted(finished[b], key=lambda h: h.score, reverse=True)
        out.append(hyps[:nbest] if hyps else [Hypothesis([], neg_inf)])
    return out
