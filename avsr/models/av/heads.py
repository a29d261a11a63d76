"""HuBERT-style unit prediction head: project to ``proj_dim`` (256), cosine
similarity against one learned embedding per unit, divided by a temperature
(0.1), cross entropy against the unit id."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class UnitPredictionHead(nn.Module):
    """feats (..., D) -> logits (..., num_units)."""

    def __init__(
        self, model_dim: int, num_units: int, *, proj_dim: int = 256, temperature: float = 0.1
    ) -> None:
        super().__init__()
        if num_units < 2:
            raise ValueError(f"need at least 2 units, got {num_units}")
        self.num_units = num_units
        self.temperature = temperature
        self.final_proj = nn.Linear(model_dim, proj_dim)
        self.label_embs = nn.Parameter(torch.empty(num_units, proj_dim))
        nn.init.normal_(self.label_embs)

    def forward(self, feats: Tensor) -> Tensor:
        proj = F.normalize(self.final_proj(feats).float(), dim=-1)
        embs = F.normalize(self.label_embs.float(), dim=-1)
        return proj @ embs.t() / self.temperature
