"""The config of ``avsr pretrain`` (kept apart so that ``avsr pretrain --help`` stays light)."""

from __future__ import annotations

from dataclasses import dataclass, field

from avsr.data.config import DataConfig
from avsr.models.av.config import AVModelConfig
from avsr.train.config import OptimConfig, TrainConfig


@dataclass(kw_only=True)
class PretrainConfig:
    """Everything ``avsr pretrain`` reads (``configs/pretrain_*.yaml``, ``configs/stage0_tiny.yaml``)."""

    model: AVModelConfig = field(default_factory=AVModelConfig)
    """The AV model: audio encoder, lip encoder, fusion, masking."""
    data: DataConfig = field(default_factory=DataConfig)
    """Data loading and augmentation."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_updates=100))
    """Optimiser and learning-rate schedule."""
    train_split: str = "train"
    """Training split (``DATA/{split}.tsv`` with ``LABELS/{split}.km``)."""
    valid_split: str | None = "valid"
    """Validation split (skipped when its manifest or labels are missing)."""
    valid_max_batches: int | None = 50
    """Validate on at most this many batches (None: the whole split)."""
    stage0: bool = False
    """Audio-only stage 0 (also ``--stage0``): ``model.modalities=[audio]``, audio-only data."""
    dry_run_gpus: int = 8
    """GPU count of the ``--dry-run`` memory estimate (FSDP2)."""
