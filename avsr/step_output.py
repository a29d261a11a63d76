"""The contract between a model and the training loop: what ``forward(batch)`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class StepOutput:
    """What a model's ``forward(batch)`` returns to the loop."""

    loss: torch.Tensor
    """Scalar tensor, the loss **summed** over the batch's targets (not averaged)."""
    sample_size: int | float | torch.Tensor
    """Number of targets in ``loss`` (frames, tokens, ...)."""
    logs: dict[str, float] = field(default_factory=dict)
    """Additive floats, summed over micro-batches and processes, then reported as
    ``value / sample_size``; keys starting with ``n_`` are reported as plain sums; a pair
    ``"x:num"``/``"x:den"`` is reported as ``x = sum(num) / sum(den)``. Every process
    must return the same keys."""
