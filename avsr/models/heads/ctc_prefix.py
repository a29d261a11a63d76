"""CTC prefix scores for joint CTC/attention beam search (ESPnet, auto_avsr), batched.

The prefix score of a label sequence ``h`` is the CTC probability that the
transcript *starts with* ``h``: the sum over every alignment of every label
sequence beginning with ``h``. It can only fall as ``h`` grows, and the score
of ``h`` followed by eos is the CTC probability of exactly ``h``.

For each live prefix the scorer keeps the forward variables of ``h``
(log-probabilities of the first ``t + 1`` frames emitting ``h``, ending in a
label ``r_n`` or in a blank ``r_b``), and computes every extension ``h + c`` at
once from them, for all rows (sentences x beams) and candidate tokens::

    phi_t(c)    = r_b_t(h)                      if c is the last label of h
                  r_n_t(h) (+) r_b_t(h)         otherwise
    r_n_t(h+c)  = (r_n_{t-1}(h+c) (+) phi_{t-1}(c)) + x_t(c)
    r_b_t(h+c)  = (r_n_{t-1}(h+c) (+) r_b_{t-1}(h+c)) + x_t(blank)
    psi(h+c)    = (+)_t phi_{t-1}(c) + x_t(c)       (r_n_0(h+c) = x_0(c) when h is empty)
    psi(h+eos)  = r_n_{T-1}(h) (+) r_b_{T-1}(h)

where ``(+)`` is log-add and ``x_t`` the CTC log-probabilities of frame ``t``.
Frames past a clip's end emit blank with probability 1, so one loop serves a
batch of clips of different lengths.
"""

from __future__ import annotations

import torch
from torch import Tensor

NEG_INF = float("-inf")


class CTCPrefixScorer:
    """Prefix scores of ``N = B * k`` live hypotheses (``k`` rows per clip, in beam order).

    Args:
        log_probs: (B, T, V) CTC log-probabilities of each clip.
        lens: (B,) valid frames per clip.
        k: rows per clip (the beam width).
        blank_id: the CTC blank (never a label: its extensions score -inf).
        eos_id: the end of sentence; its extension scores the whole hypothesis.
    """

    def __init__(self, log_probs: Tensor, lens: Tensor, *, k: int, blank_id: int, eos_id: int) -> None:
        bsz, frames, _ = log_probs.shape
        self.blank_id, self.eos_id = blank_id, eos_id
        x = log_probs.repeat_interleave(k, dim=0).transpose(0, 1).contiguous()  # (T, N, V)
        past = torch.arange(frames, device=x.device)[:, None] >= lens.to(x.device).repeat_interleave(k)[None, :]
        x = x.masked_fill(past[:, :, None], NEG_INF)
        x[:, :, blank_id] = x[:, :, blank_id].masked_fill(past, 0.0)
        self.x = x
        """(T, N, V) log-probabilities per frame and row; frames past the end emit blank."""
        rows = bsz * k
        self.r = torch.full((frames, 2, rows), NEG_INF, dtype=x.dtype, device=x.device)
        """(T, 2, N) forward variables of each live prefix: ending in a label / in blank."""
        self.r[:, 1] = x[:, :, blank_id].cumsum(dim=0)  # the empty prefix: blanks only
        self.psi = torch.zeros(rows, dtype=x.dtype, device=x.device)
        """(N,) prefix score of each live prefix (0 = log 1 for the empty one)."""
        self.last = torch.full((rows,), -1, dtype=torch.long, device=x.device)
        """(N,) last label of each prefix (-1: empty)."""
        self.length = 0
        """Labels in every live prefix (all rows grow together)."""
        self._cand: Tensor | None = None
        self._r_new: Tensor | None = None
        self._psi_new: Tensor | None = None

    def score(self, cand: Tensor | None = None) -> Tensor:
        """(N, C) prefix scores ``psi(h + c)`` of candidates ``cand`` (N, C) token ids (None:
        the whole vocabulary, C = V); remembered for :meth:`advance`."""
        frames, rows, vocab = self.x.shape
        if cand is None:
            cand = torch.arange(vocab, device=self.x.device).expand(rows, vocab)
        xc = self.x.gather(2, cand[None].expand(frames, -1, -1))  # (T, N, C)
        r_prev = self.r
        r_sum = torch.logaddexp(r_prev[:, 0], r_prev[:, 1])  # (T, N)
        same = cand == self.last[:, None]
        phi = torch.where(same[None], r_prev[:, 1, :, None], r_sum[:, :, None])  # (T, N, C)
        r = torch.full((frames, 2, *cand.shape), NEG_INF, dtype=xc.dtype, device=xc.device)
        if self.length == 0:
            r[0, 0] = xc[0]
        start = max(self.length, 1)
        x_blank = self.x[:, :, self.blank_id, None]
        for t in range(start, frames):
            r[t, 0] = torch.logaddexp(r[t - 1, 0], phi[t - 1]) + xc[t]
            r[t, 1] = torch.logaddexp(r[t - 1, 0], r[t - 1, 1]) + x_blank[t]
        terms = phi[start - 1 : frames - 1] + xc[start:]  # (T - start, N, C): c emitted at t
        if self.length == 0:
            terms = torch.cat([r[0, 0, None], terms], dim=0)
        psi = torch.logsumexp(terms, dim=0) if terms.shape[0] else torch.full_like(xc[0], NEG_INF)
        psi = torch.where(cand == self.eos_id, r_sum[-1, :, None], psi)
        psi = psi.masked_fill(cand == self.blank_id, NEG_INF)
        self._cand, self._r_new, self._psi_new = cand, r, psi
        return psi

    def advance(self, rows: Tensor, tokens: Tensor) -> None:
        """Keep the extensions ``h_rows + tokens`` (N,) scored by the last :meth:`score` call as
        the live prefixes; a token that was not a candidate (a dead slot) gets psi = -inf."""
        assert self._cand is not None and self._r_new is not None and self._psi_new is not None
        cand = self._cand.index_select(0, rows)
        hit = cand == tokens[:, None]
        col = hit.to(torch.long).argmax(dim=1)
        self.r = self._r_new[:, :, rows, col]
        self.psi = self._psi_new[rows, col].masked_fill(~hit.any(dim=1), NEG_INF)
        self.last = tokens.clone()
        self.length += 1
        self._cand = self._r_new = self._psi_new = None

    def increments(self, cand: Tensor | None = None) -> Tensor:
        """(N, C) ``psi(h + c) - psi(h)``: the CTC log-score of each extension (-inf where
        ``h`` itself is dead)."""
        psi = self.score(cand)
        inc = psi - self.psi[:, None]
        return inc.masked_fill(~torch.isfinite(self.psi)[:, None], NEG_INF)
