"""Optimiser and learning-rate schedule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from avsr.train.config import OptimConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimConfig
) -> torch.optim.Optimizer:
    """AdamW with the config's betas, eps and (decoupled) weight decay; lr starts at the peak."""
    return torch.optim.AdamW(
        list(params), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
    )


class WarmupPolyDecay:
    """lr for update ``u`` (0-based): ``lr * (u+1)/warmup`` during warmup, then
    ``end + (lr - end) * (1 - (u - warmup) / (decay - warmup)) ** power``, then ``end``.

    ``step()`` after each update sets the lr of the next one on every param group.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_updates: int
    ) -> None:
        self.optimizer = optimizer
        self.peak = cfg.lr
        self.end = cfg.end_lr
        self.warmup = max(0, cfg.warmup_updates)
        self.decay = max(self.warmup + 1, cfg.decay_updates or max_updates)
        self.power = cfg.power
        self.update = 0
        self._apply()

    def lr_at(self, u: int) -> float:
        if u < self.warmup:
            return self.peak * (u + 1) / self.warmup
        frac = min(1.0, (u - self.warmup) / (self.decay - self.warmup))
        return self.end + (self.peak - self.end) * (1.0 - frac) ** self.power

    def _apply(self) -> None:
        lr = self.lr_at(self.update)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def get_last_lr(self) -> float:
        return self.lr_at(self.update)

    def step(self) -> None:
        self.update += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"update": self.update}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update = int(state["update"])
        self._apply()
