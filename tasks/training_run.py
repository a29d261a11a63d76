"""What the training commands (``avsr pretrain``, ``avsr finetune``) share: the run folder's
resolved config and one run of the training loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from avsr.config import save_config
from avsr.train import DistInfo, OptimConfig, TrainConfig, Trainer, TrainResult


class RunConfig(Protocol):
    """A command config with a training-loop and an optimiser section."""

    train: TrainConfig
    optim: OptimConfig


def write_run_config(cfg: Any, out: Path, main: bool) -> None:
    """Create the run folder and write the resolved ``config.yaml`` there (rank 0 only)."""
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")


def fit(
    model: nn.Module,
    loader: Iterable[Any],
    cfg: RunConfig,
    *,
    out: Path,
    dist: DistInfo,
    validate_fn: Callable[[nn.Module], dict[str, float]] | None,
    model_config: dict[str, Any],
    model_kind: str,
) -> tuple[Trainer, TrainResult]:
    """Train ``model`` with ``cfg.train`` / ``cfg.optim`` into ``out``; returns the trainer
    (for its weights) and its result."""
    trainer = Trainer(model, loader, cfg=cfg.train, optim=cfg.optim, out_dir=out,
                      validate_fn=validate_fn, dist=dist, model_config=model_config,
                      model_kind=model_kind)
    return trainer, trainer.fit()
