"""CTC head: a linear layer over encoder frames, CTC loss and greedy decoding.

The blank is the tokenizer's pad id (1), as in wav2vec 2.0 / HF
``Wav2Vec2ForCTC`` (``blank = pad_token_id``), so a CTC model can be exported
to that format.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(kw_only=True)
class CTCHeadConfig:
    """The CTC head."""

    dropout: float = 0.1
    """Dropout on the encoder features before the projection."""
    blank_id: int = 1
    """Id of the CTC blank (set to the tokenizer's pad id by the fine-tuned model)."""
    zero_infinity: bool = True
    """Zero the infinite losses of targets longer than the input (and their gradients)."""


class CTCHead(nn.Module):
    """Linear projection (D -> V) of encoder features, with a CTC loss."""

    def __init__(self, model_dim: int, vocab_size: int, config: CTCHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or CTCHeadConfig()
        self.dropout = nn.Dropout(self.config.dropout)
        self.proj = nn.Linear(model_dim, vocab_size)
        self.blank_id = self.config.blank_id

    def forward(self, feats: Tensor) -> Tensor:
        """feats (B, T, D) -> logits (B, T, V)."""
        return self.proj(self.dropout(feats))

    def loss(self, logits: Tensor, lens: Tensor, targets: list[list[int]]) -> Tensor:
        """Summed CTC loss over the batch. logits (B, T, V), lens (B,)."""
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        tgt_lens = torch.tensor([len(t) for t in targets], dtype=torch.long)
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        return F.ctc_loss(
            log_probs,
            flat.to(logits.device),
            lens.to(torch.long).cpu(),
            tgt_lens,
            blank=self.blank_id,
            reduction="sum",
            zero_infinity=self.config.zero_infinity,
        )


def ctc_greedy_decode(logits: Tensor, lens: Tensor, *, blank_id: int = 1) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks. logits (B, T, V), lens (B,)."""
    best = logits.argmax(dim=-1).cpu()
    out: list[list[int]] = []
    for b in range(best.shape[0]):
        seq = best[b, : int(lens[b])].tolist()
        ids: list[int] = []
        prev = None
        for tok in seq:
            if tok != prev and tok != blank_id:
                ids.append(int(tok))
            prev = tok
        out.append(ids)
    return out
