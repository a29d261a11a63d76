"""Optimiser and learning-rate schedule."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import torch

from avsr.errors import UserError
from avsr.train.config import OptimConfig


def param_groups(
    named: Iterable[tuple[str, torch.nn.Parameter]], lr_scales: dict[str, float]
) -> list[dict[str, Any]]:
    """Parameters grouped by ``optim.lr_scales`` (first matching glob wins; the rest
    scale 1), each group with its ``lr_scale``; a glob that matches nothing is an error."""
    named = list(named)
    if not lr_scales:
        return [{"params": [p for _, p in named], "lr_scale": 1.0}]
    pats = list(lr_scales.items())
    groups: dict[int, list[torch.nn.Parameter]] = {}
    hits = [0] * len(pats)
    for name, p in named:
        idx = next((i for i, (pat, _) in enumerate(pats) if fnmatch.fnmatchcase(name, pat)), -1)
        if idx >= 0:
            hits[idx] += 1
        groups.setdefault(idx, []).append(p)
    unused = [pat for (pat, _), n in zip(pats, hits) if n == 0]
    if unused:
        raise UserError(
            f"optim.lr_scales: {unused} match no parameter (names look like {[n for n, _ in named[:3]]})"
        )
    return [
        {"params": ps, "lr_scale": 1.0 if i < 0 else float(pats[i][1])}
        for i, ps in sorted(groups.items())
    ]


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[tuple[str, torch.nn.Parameter]],
    cfg: OptimConfig,
) -> torch.optim.Optimizer:
    """AdamW with the config's betas, eps and (decoupled) weight decay; lr starts at the peak.
    Given ``named_parameters()``, ``cfg.lr_scales`` splits them into groups."""
    items = list(params)
    if items and isinstance(items[0], tuple):
        groups = param_groups(items, cfg.lr_scales)  # type: ignore[arg-type]
    else:
        if cfg.lr_scales:
            raise ValueError("optim.lr_scales needs named parameters")
        groups = [{"params": items, "lr_scale": 1.0}]
    for g in groups:
        g["lr"] = cfg.lr * g["lr_scale"]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
    )


class WarmupPolyDecay:
    """lr for update ``u`` (0-based): ``lr * (u+1)/warmup`` during warmup, then
    ``end + (lr - end) * (1 - (u - warmup) / (decay - warmup)) ** power``, then ``end``.

    ``step()`` after each update sets the lr of the next one on every param group
    (times the group's ``lr_scale``, see ``optim.lr_scales``).
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
            g["lr"] = lr * float(g.get("lr_scale", 1.0))

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
