"""Training-loop and optimiser options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(kw_only=True)
class OptimConfig:
    """AdamW (decoupled weight decay), linear warmup then polynomial decay to ``end_lr``."""

    lr: float = 5e-4
    """Peak learning rate (reached at the end of warmup)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW moment decay rates."""
    eps: float = 1e-6
    """AdamW denominator term."""
    weight_decay: float = 0.01
    """Decoupled weight decay."""
    warmup_updates: int = 0
    """Updates of linear warmup from 0 to ``lr``."""
    end_lr: float = 0.0
    """Learning rate at the end of the decay."""
    power: float = 1.0
    """Polynomial decay power (1.0 = linear)."""
    decay_updates: int | None = None
    """Update at which the decay reaches ``end_lr`` (None: ``train.max_updates``)."""
    lr_scales: dict[str, float] = field(default_factory=dict)
    """Parameter-name glob (fnmatch) -> multiplier of the scheduled lr, first match in
    order wins, e.g. ``{"encoder.*": 0.1}``: a pretrained encoder learns 10x slower
    than a fresh head (discriminative fine-tuning). Unmatched parameters: 1."""


@dataclass(kw_only=True)
class TrainConfig:
    """The torchrun training loop (see :mod:`avsr.train`)."""

    max_updates: int = 1000
    """Optimizer steps of the whole run (resumed ones included)."""
    grad_accum: int = 1
    """Micro-batches per update and per process."""
    clip_norm: float = 10.0
    """Gradient-norm clipping (0: no clipping; the norm is still computed and logged)."""
    seed: int = 1
    """Seed of the training RNG streams (offset per rank)."""
    save_every: int = 1000
    """Write ``checkpoints/step_N`` every this many updates (and at the end)."""
    keep_last: int = 3
    """How many ``step_N`` checkpoints are kept."""
    log_every: int = 10
    """Log a ``train`` record every this many updates (and at the end)."""
    valid_every: int = 1000
    """Validate every this many updates (and at the end)."""
    best_metric: str | None = None
    """Validation metric that selects ``checkpoints/best`` (None: keep no best)."""
    best_mode: Literal["min", "max"] = "min"
    """Whether a lower (``min``) or higher (``max``) ``best_metric`` is better."""
    bf16: bool = True
    """bf16 autocast on CUDA (forward and loss; weights, gradients and Adam stay fp32)."""
    bf16_cpu: bool = False
    """Also autocast to bf16 on CPU (with ``bf16``): PyTorch's CPU autocast applies the same
    per-op dtype policy as CUDA's, so the bf16 path can be tested without a GPU. Off by
    default: CPU runs stay fp32."""
    distributed: Literal["ddp", "fsdp2"] = "ddp"
    """How several processes share the model: replicated (DDP) or sharded (FSDP2)."""
    sync_batchnorm: bool = False
    """Convert BatchNorm to SyncBatchNorm under DDP (CUDA only)."""
    find_unused_parameters: bool = False
    """DDP: needed when some trainable parameters get no gradient in a step (e.g. a lip
    encoder that audio-only batches never call); freeze such parts instead when possible."""
    nan_max_skips: int = 20
    """Stop (with an error) once more than this many updates were skipped for NaN/inf."""
    num_workers: int = 2
    """DataLoader worker processes per training process."""
    freeze: list[str] = field(default_factory=list)
    """Parameter-name globs (fnmatch) to freeze."""
    freeze_updates: int | None = None
    """Freeze the ``freeze`` parameters for the first N updates (None: the whole run)."""
    frozen: list[str] = field(default_factory=list)
    """Parameter-name globs frozen for the whole run, on top of ``freeze`` (e.g. the audio
    CNN, ``encoder.xlsr.frontend.feature_extractor.*``, as wav2vec 2.0 fine-tuning does:
    no gradient flows through it, so each update is cheaper)."""
    tensorboard: bool = True
    """Also write TensorBoard logs under ``tensorboard/``."""
    resume: str = "auto"
    """'auto' (resume from out/checkpoints/last when present), 'never', or a checkpoint dir."""
    device: str | None = None
    """None: cuda:LOCAL_RANK when CUDA is available, else cpu."""
