"""A plain torchrun training loop (not fairseq2's Trainer): DDP or FSDP2, bf16, exact resume.

Run with ``torchrun --nproc-per-node N ...`` (gloo on CPU, nccl on GPU) or as one
plain process. The model contract: ``forward(batch) -> StepOutput(loss, sample_size, logs)``
where ``loss`` is **summed** over the batch's targets. One update takes
``grad_accum`` micro-batches per process; the loop sums losses, all-reduces the
sample size and normalises the gradients by the **global** sample size, so
2 processes x half batch give the same update as 1 process x full batch.

Per update: bf16 autocast (CUDA; on CPU with ``bf16_cpu``), gradient accumulation
(DDP ``no_sync`` / FSDP2 ``set_requires_gradient_sync``), clipping (``clip_grad_norm_``; under FSDP2
its DTensor result is turned into a number with ``.full_tensor()`` on every
rank), a NaN/inf guard (the step is skipped and counted; past
``nan_max_skips`` the run stops with :class:`TrainingDiverged`), AdamW with
warmup + polynomial decay, optional freezing of parameter globs for the first
``freeze_updates`` updates. Checkpoints every ``save_every`` updates (see
:mod:`avsr.train.state`), last ``keep_last`` kept, ``best`` by a validation
metric; ``resume="auto"`` continues from ``checkpoints/last`` exactly (weights,
optimizer, scheduler, every rank's RNG, data epoch and position). Logs:
console, ``metrics.jsonl``, TensorBoard (``tensorboard/``).

BatchNorm under DDP: every process normalises with the statistics of its own
micro-batch, and DDP broadcasts rank 0's buffers (running mean/var) to the other
ranks at each forward, so N processes x B/N clips do **not** compute the same
BatchNorm outputs as 1 process x B clips (the lip encoder's BatchNorm layers
are the only place this matters in xlavsr). ``train.sync_batchnorm=true``
converts them to SyncBatchNorm (CUDA only; batch statistics over all ranks,
at the price of a collective per BatchNorm layer). Equivalence tests across
process counts therefore run BatchNorm in eval mode or frozen.
FSDP2 (``distributed=fsdp2``) shards ``model.fsdp_modules()`` (e.g. the
Transformer layers) and then the root; frozen parameters keep
``requires_grad`` there and have their gradients dropped before the step.
"""

from avsr.step_output import StepOutput
from avsr.train.config import OptimConfig, TrainConfig
from avsr.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_object,
    cleanup_distributed,
    init_distributed,
)
from avsr.train.logger import read_metrics
from avsr.train.schedule import WarmupPolyDecay, build_optimizer
from avsr.train.state import latest_checkpoint, seed_everything
from avsr.train.trainer import Trainer, TrainingDiverged, TrainResult, train

__all__ = [
    "DistInfo",
    "OptimConfig",
    "StepOutput",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "WarmupPolyDecay",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "build_optimizer",
    "cleanup_distributed",
    "init_distributed",
    "latest_checkpoint",
    "read_metrics",
    "seed_everything",
    "train",
]
