"""The training loop: one update = ``grad_accum`` micro-batches per process.

See the package docstring (:mod:`avsr.train`) for the contract and behaviour.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from avsr.checkpoint import load_model_dir, save_model_dir
from avsr.config import to_dict
from avsr.errors import UserError
from avsr.io import atomic_write_json
from avsr.logging_utils import get_logger
from avsr.step_output import StepOutput
from avsr.train.config import OptimConfig, TrainConfig
from avsr.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_object,
    init_distributed,
    is_dist,
)
from avsr.train.logger import MetricsLogger
from avsr.train.schedule import WarmupPolyDecay, build_optimizer
from avsr.train.state import (
    TRAINER_STATE,
    latest_checkpoint,
    load_pt,
    point_last,
    prune,
    rng_state,
    seed_everything,
    set_rng_state,
)

log = get_logger("avsr.train")


class TrainingDiverged(UserError):
    """Too many updates were skipped because of NaN/inf losses or gradients."""


@dataclass
class TrainResult:
    """Summary of :meth:`Trainer.fit`."""

    updates: int
    """Updates done in total (resumed ones included)."""
    losses: dict[int, float]
    """Loss per update done in this run (global, per target)."""
    nan_skips: int
    """Updates skipped for a NaN/inf loss or gradient norm (resumed ones included)."""
    last_checkpoint: Path | None
    """The newest ``checkpoints/step_N``."""
    resumed_from: Path | None
    """Checkpoint this run resumed from (None: a fresh start)."""
    best: dict[str, Any] | None
    """Record of ``checkpoints/best`` (metric, value, update, mode); None: no best kept."""


@dataclass
class _UpdateStats:
    """One update's sums over all processes and micro-batches."""

    loss: float
    """Summed loss."""
    sample_size: float
    """Number of targets in ``loss``."""
    logs: dict[str, float]
    """Summed ``StepOutput.logs``."""


@dataclass
class _Progress:
    """Book-keeping of one :meth:`Trainer.fit` call."""

    last_saved: int
    """Update of the last checkpoint written (-1: none yet)."""
    losses: dict[int, float] = field(default_factory=dict)
    """Loss per update done in this call."""
    last_valid: int = -1
    """Update of the last validation (-1: none yet)."""
    t_log: float = 0.0
    """``time.perf_counter()`` at the last train log."""
    n_log: int = 0
    """Updates since the last train log."""
    empty_streak: int = 0
    """Consecutive updates skipped for having no targets."""


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def _reduce_logs(sums: dict[str, float], sample_size: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in sums.items():
        if k.endswith(":num"):
            name = k[: -len(":num")]
            den = sums.get(name + ":den", 0.0)
            out[name] = v / den if den else float("nan")
        elif k.endswith(":den"):
            continue
        elif k.startswith("n_"):
            out[k] = v
        else:
            out[k] = v / sample_size if sample_size else float("nan")
    return out


class Trainer:
    """A plain torchrun training loop (DDP or FSDP2), see :mod:`avsr.train`.

    Args:
        model: module whose ``forward(batch)`` returns a :class:`StepOutput`. Optional
            hooks: ``set_num_updates(n)`` (called before every update) and
            ``fsdp_modules() -> list[nn.Module]`` (sub-modules sharded separately under FSDP2).
        train_data: re-iterable batches, normally a DataLoader over an
            :class:`avsr.data.AVDataset` with a :class:`avsr.data.LengthBatchSampler`
            (exact resume); any iterable works (resume then skips consumed batches).
        cfg, optim: loop and optimiser options.
        out_dir: run folder (``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``).
        validate_fn: ``validate_fn(model) -> dict[str, float]``, called on every rank
            (eval mode, no_grad) with the unwrapped (or FSDP2-sharded) model; rank 0's
            result is logged and selects the best checkpoint.
        dist: from :func:`init_distributed` (called here when omitted).
        model_config, model_kind: stored in each checkpoint's ``config.yaml``.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Iterable[Any],
        *,
        cfg: TrainConfig,
        optim: OptimConfig,
        out_dir: str | Path,
        validate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        dist: DistInfo | None = None,
        model_config: dict[str, Any] | None = None,
        model_kind: str = "model",
    ) -> None:
        if cfg.grad_accum < 1 or cfg.max_updates < 0 or cfg.save_every < 1 or cfg.log_every < 1:
            raise UserError("train config: grad_accum, save_every and log_every must be >= 1")
        self.cfg = cfg
        self.optim_cfg = optim
        self.out_dir = Path(out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.validate_fn = validate_fn
        self.dist = dist or init_distributed(cfg.device)
        self.device = self.dist.device
        self.model_config = dict(model_config or {})
        self.model_kind = model_kind
        self.train_data = train_data
        self.use_bf16 = cfg.bf16 and (
            self.device.type == "cuda" or (cfg.bf16_cpu and self.device.type == "cpu")
        )

        self.model = model.to(self.device)
        seed_everything(cfg.seed + 1_000_003 * self.dist.rank)
        self.frozen = self._match_frozen(self.cfg.freeze, "train.freeze")
        self.always_frozen = self._match_frozen(self.cfg.frozen, "train.frozen")
        if self.always_frozen and self.dist.is_main:
            log.info("%d parameters matching %s are frozen for the whole run", len(self.always_frozen), self.cfg.frozen)
        self.update = 0
        self.epoch = 0
        self.position = 0
        self.nan_skips = 0
        self.best: dict[str, Any] | None = None
        self._freeze_active = False
        self._fsdp = cfg.distributed == "fsdp2" and self.dist.distributed

        self._sync_or_shard()
        self.wrapped: nn.Module = self.model
        self.optimizer = build_optimizer(self.model.named_parameters(), optim)
        self.scheduler = WarmupPolyDecay(self.optimizer, optim, cfg.max_updates)
        self.metrics = MetricsLogger(
            self.out_dir, enabled=self.dist.is_main, tensorboard=cfg.tensorboard
        )
        self.resumed_from = self._resume()
        self._apply_freeze(self._freeze_wanted(self.update), force=True)

    def _sync_or_shard(self) -> None:
        """SyncBatchNorm (``train.sync_batchnorm``, several processes) and FSDP2 sharding:
        ``model.fsdp_modules()`` each, then the root."""
        if self.cfg.sync_batchnorm and self.dist.distributed:
            if self.device.type != "cuda":
                raise UserError(
                    "train.sync_batchnorm needs CUDA (SyncBatchNorm has no CPU kernels)"
                )
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if self._fsdp:
            from torch.distributed.fsdp import fully_shard  # needs a torch with distributed

            subs = getattr(self.model, "fsdp_modules", None)
            for sub in subs() if callable(subs) else []:
                fully_shard(sub)
            fully_shard(self.model)

    # ---------------------------------------------------------------- freezing
    def _match_frozen(self, patterns: list[str], key: str) -> set[str]:
        names = [n for n, _ in self.model.named_parameters()]
        frozen: set[str] = set()
        for pat in patterns:
            hit = [n for n in names if fnmatch.fnmatchcase(n, pat)]
            if not hit:
                raise UserError(f"{key}: pattern {pat!r} matches no parameter (e.g. {names[:3]})")
            frozen.update(hit)
        return frozen

    def _freeze_wanted(self, update: int) -> bool:
        if not self.frozen:
            return False
        return self.cfg.freeze_updates is None or update < self.cfg.freeze_updates

    def _apply_freeze(self, active: bool, force: bool = False) -> None:
        """Frozen params get ``requires_grad=False`` (DDP is re-wrapped on a change);
        under FSDP2 they keep it and their gradients are dropped before the step."""
        if active == self._freeze_active and not force:
            return
        self._freeze_active = active
        if not self._fsdp:
            for n, p in self.model.named_parameters():
                if n in self.always_frozen:
                    p.requires_grad_(False)
                elif n in self.frozen:
                    p.requires_grad_(not active)
        if self.dist.distributed and not self._fsdp:
            if isinstance(self.wrapped, DDP):
                del self.wrapped
            self.wrapped = DDP(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.cfg.find_unused_parameters,
            )
        if self.frozen and self.dist.is_main:
            state = "frozen" if active else "trainable"
            log.info(
                "%d parameters matching %s are %s from update %d",
                len(self.frozen),
                self.cfg.freeze,
                state,
                self.update,
            )

    # ---------------------------------------------------------------- data
    def _iterate(self, epoch: int, position: int) -> Iterator[Any]:
        data = self.train_data
        bs = getattr(data, "batch_sampler", None)
        skip = 0
        if bs is not None and hasattr(bs, "set_epoch") and hasattr(bs, "load_state_dict"):
            bs.set_epoch(epoch, position)
        else:
            sampler = getattr(data, "sampler", None)
            if sampler is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            skip = position
        with torch.random.fork_rng(
            devices=[]
        ):  # DataLoader draws its worker seed from the global RNG
            it = iter(data)
        for _ in range(skip):
            next(it, None)
        return it

    def _batches(self) -> Iterator[Any]:
        empty_epochs = 0
        while True:
            got = False
            for batch in self._iterate(self.epoch, self.position):
                self.position += 1
                got = True
                yield batch
            if not got:
                empty_epochs += 1
                if empty_epochs > 1:
                    raise UserError("training data yields no batches")
            else:
                empty_epochs = 0
            self.epoch += 1
            self.position = 0

    # ---------------------------------------------------------------- state
    @property
    def is_fsdp(self) -> bool:
        """True when the model is sharded with FSDP2."""
        return self._fsdp

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """Full (unsharded, CPU) model weights; collective: call on every rank (FSDP2 gathers;
        non-main ranks may get an empty dict)."""
        return self._state_dicts()[0]

    def _state_dicts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(
            self.model,
            self.optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True),
        )

    def save(self) -> Path:
        """Write ``checkpoints/step_{update}`` atomically (collective: every rank calls it)."""
        name = f"step_{self.update}"
        tmp = self.ckpt_root / f".{name}.tmp"
        final = self.ckpt_root / name
        model_sd, optim_sd = self._state_dicts()
        if self.dist.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        barrier()
        torch.save(rng_state(), tmp / f"rng_rank{self.dist.rank}.pt")
        barrier()
        if self.dist.is_main:
            save_model_dir(tmp, model_sd, self.model_config, kind=self.model_kind)
            torch.save(
                {
                    "update": self.update,
                    "optimizer": optim_sd,
                    "scheduler": self.scheduler.state_dict(),
                    "data": {"epoch": self.epoch, "position": self.position},
                    "nan_skips": self.nan_skips,
                    "best": self.best,
                    "world_size": self.dist.world_size,
                },
                tmp / TRAINER_STATE,
            )
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            point_last(self.ckpt_root, final)
            prune(self.ckpt_root, self.cfg.keep_last)
        barrier()
        return final

    def _resume(self) -> Path | None:
        """Load the checkpoint chosen by ``train.resume`` (None: start fresh)."""
        path = self._resume_path()
        if path is None:
            return None
        model_sd, _ = load_model_dir(path)
        state = load_pt(path / TRAINER_STATE)
        self.update = int(state["update"])
        # The optimizer must see the same trainable set as when it was saved.
        self._apply_freeze(self._freeze_wanted(self.update), force=True)
        self._load_weights(model_sd, state["optimizer"])
        self._load_loop_state(path, state)
        self._load_rng(path)
        if self.dist.is_main:
            log.info(
                "resumed from %s at update %d (epoch %d, batch %d)",
                path,
                self.update,
                self.epoch,
                self.position,
            )
        return path

    def _resume_path(self) -> Path | None:
        """``checkpoints/last`` for ``auto`` (None when absent), None for ``never``, else the dir."""
        choice = self.cfg.resume
        if choice == "never":
            return None
        if choice == "auto":
            return latest_checkpoint(self.ckpt_root)
        path = Path(choice)
        if not (path / TRAINER_STATE).is_file():
            raise UserError(f"{path}: not a training checkpoint (no {TRAINER_STATE})")
        return path

    def _load_weights(self, model_sd: dict[str, Any], optim_sd: dict[str, Any]) -> None:
        """Load full (unsharded) model and optimizer state into the (possibly sharded) model."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        # Parameters without saved optimizer state (frozen or unused so far) must not be
        # matched against it: hide them from the loader for the moment.
        saved = set(optim_sd.get("state", {}))
        hidden = [p for n, p in self.model.named_parameters() if p.requires_grad and n not in saved]
        for p in hidden:
            p.requires_grad_(False)
        try:
            set_state_dict(
                self.model,
                self.optimizer,
                model_state_dict=model_sd,
                optim_state_dict=optim_sd,
                options=StateDictOptions(full_state_dict=True),
            )
        finally:
            for p in hidden:
                p.requires_grad_(True)

    def _load_loop_state(self, path: Path, state: dict[str, Any]) -> None:
        """Scheduler, data position, NaN-skip count and best record of a trainer state."""
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["data"]["epoch"])
        self.position = int(state["data"]["position"])
        self.nan_skips = int(state["nan_skips"])
        self.best = state.get("best")
        if int(state.get("world_size", 1)) != self.dist.world_size:
            log.warning(
                "%s was written by %s processes, resuming with %d: data order will differ",
                path,
                state.get("world_size"),
                self.dist.world_size,
            )

    def _load_rng(self, path: Path) -> None:
        """This rank's RNG streams as saved (a fresh seed is kept when the file is missing)."""
        rng_file = path / f"rng_rank{self.dist.rank}.pt"
        if rng_file.is_file():
            set_rng_state(load_pt(rng_file))
        else:
            log.warning("%s: no RNG state for rank %d; keeping a fresh seed", path, self.dist.rank)

    def _save_best(self, metrics: dict[str, float]) -> None:
        metric = self.cfg.best_metric
        if metric is None:
            return
        if metric not in metrics:
            raise UserError(
                f"train.best_metric {metric!r} is not among the validation metrics {sorted(metrics)}"
            )
        value = float(metrics[metric])
        if not math.isfinite(value):
            return
        old = None if self.best is None else self.best["value"]
        better = old is None or (value < old if self.cfg.best_mode == "min" else value > old)
        if not better:
            return
        self.best = {
            "metric": metric,
            "value": value,
            "update": self.update,
            "mode": self.cfg.best_mode,
        }
        model_sd, _ = self._state_dicts()
        if self.dist.is_main:
            tmp = self.ckpt_root / ".best.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            save_model_dir(tmp, model_sd, self.model_config, kind=self.model_kind)
            atomic_write_json(tmp / "best.json", {**self.best, "metrics": metrics})
            final = self.ckpt_root / "best"
            old_dir = self.ckpt_root / ".best.old"
            if final.exists():
                if old_dir.exists():
                    shutil.rmtree(old_dir)
                final.rename(old_dir)
            tmp.rename(final)
            shutil.rmtree(old_dir, ignore_errors=True)
        barrier()

    # ---------------------------------------------------------------- loop
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.use_bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def validate(self) -> dict[str, float]:
        """Run ``validate_fn`` (all ranks), log rank 0's metrics, update the best checkpoint."""
        assert self.validate_fn is not None
        self.model.eval()
        saved_rng = rng_state()  # validation must not move the training RNG streams
        try:
            with torch.no_grad(), self._autocast():
                metrics = self.validate_fn(self.model)
        finally:
            set_rng_state(saved_rng)
            self.model.train()
        metrics = dict(broadcast_object({k: float(v) for k, v in metrics.items()}))  # type: ignore[call-overload]
        self.metrics.write("valid", self.update, metrics)
        self.metrics.console("valid", self.update, self.cfg.max_updates, metrics)
        self._save_best(metrics)
        return metrics

    def _micro_step(self, batch: Any, sync: bool) -> StepOutput:
        ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if isinstance(self.wrapped, DDP) and not sync:
            ctx = self.wrapped.no_sync()
        if self._fsdp:
            self.model.set_requires_gradient_sync(sync)  # type: ignore[operator]
        with ctx:
            with self._autocast():
                out = self.wrapped(_to_device(batch, self.device))
            if not isinstance(out, StepOutput):
                raise TypeError(
                    f"model forward must return avsr.train.StepOutput, got {type(out).__name__}"
                )
            out.loss.float().backward()
        return out

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.grad is not None]

    def fit(self) -> TrainResult:
        """Train until ``max_updates``; returns a :class:`TrainResult`."""
        progress = _Progress(last_saved=self.update if self.resumed_from is not None else -1)
        batches = self._batches()
        self.model.train()
        progress.t_log = time.perf_counter()
        while self.update < self.cfg.max_updates:
            self._apply_freeze(self._freeze_wanted(self.update))
            hook = getattr(self.model, "set_num_updates", None)
            if callable(hook):
                hook(self.update)
            stats = self._global_stats(*self._accumulate(batches))
            self._drop_frozen_grads()
            if not self._has_targets(stats, progress):
                continue
            gnorm = self._scale_and_clip(stats.sample_size)
            loss = stats.loss / stats.sample_size
            if not self._is_finite(loss, gnorm):
                continue
            lr = self._step()
            progress.n_log += 1
            progress.losses[self.update] = loss
            self._log_update(progress, loss=loss, lr=lr, gnorm=gnorm, stats=stats)
            self._validate_and_save(progress)
        return self._finish(progress)

    def _accumulate(self, batches: Iterator[Any]) -> tuple[torch.Tensor, float, dict[str, float]]:
        """Forward/backward ``grad_accum`` micro-batches: this process's summed loss
        (float64 scalar), sample size and logs."""
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        sample_size = 0.0
        log_sums: dict[str, float] = {}
        for k in range(self.cfg.grad_accum):
            out = self._micro_step(next(batches), sync=k == self.cfg.grad_accum - 1)
            loss_sum += out.loss.detach().to(torch.float64)
            sample_size += float(out.sample_size)
            for key, v in out.logs.items():
                log_sums[key] = log_sums.get(key, 0.0) + float(v)
        return loss_sum, sample_size, log_sums

    def _global_stats(
        self, loss_sum: torch.Tensor, sample_size: float, log_sums: dict[str, float]
    ) -> _UpdateStats:
        """Sum loss, sample size and logs over all processes (one all-reduce)."""
        keys = sorted(log_sums)
        if is_dist():
            all_keys = [None] * self.dist.world_size
            torch.distributed.all_gather_object(all_keys, keys)
            if any(k != keys for k in all_keys):
                raise RuntimeError(f"ranks returned different log keys: {all_keys}")
        stats = torch.tensor(
            [sample_size, *[log_sums[k] for k in keys]], dtype=torch.float64, device=self.device
        )
        stats = all_reduce_sum(torch.cat([loss_sum.reshape(1), stats]))
        return _UpdateStats(
            loss=float(stats[0]),
            sample_size=float(stats[1]),
            logs=dict(zip(keys, stats[2:].tolist())),
        )

    def _drop_frozen_grads(self) -> None:
        """FSDP2 keeps frozen parameters trainable: drop their gradients before the step."""
        if self._fsdp:
            drop = self.always_frozen | (self.frozen if self._freeze_active else set())
            for n, p in self.model.named_parameters():
                if n in drop:
                    p.grad = None

    def _has_targets(self, stats: _UpdateStats, progress: _Progress) -> bool:
        """False (gradients dropped, update skipped) when no process had a target."""
        if stats.sample_size <= 0:
            self.optimizer.zero_grad(set_to_none=True)
            progress.empty_streak += 1
            if progress.empty_streak > 1000:
                raise UserError("1000 consecutive updates had no targets (sample_size 0)")
            log.warning(
                "update %d: no targets in the batch (sample size 0); skipped", self.update + 1
            )
            return False
        progress.empty_streak = 0
        return True

    def _scale_and_clip(self, global_size: float) -> float:
        """Normalise the gradients by the global sample size, clip them; returns their norm."""
        factor = (self.dist.world_size if self.dist.distributed else 1) / global_size
        params = self._trainable()
        for p in params:
            p.grad.mul_(factor)  # type: ignore[union-attr]
        max_norm = self.cfg.clip_norm if self.cfg.clip_norm > 0 else float("inf")
        gnorm_t = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
        if hasattr(gnorm_t, "full_tensor"):
            gnorm_t = gnorm_t.full_tensor()  # FSDP2: every rank must call this
        return float(gnorm_t)

    def _is_finite(self, loss: float, gnorm: float) -> bool:
        """False (gradients dropped, skip counted) on a NaN/inf loss or gradient norm;
        raises :class:`TrainingDiverged` past ``nan_max_skips``."""
        if math.isfinite(loss) and math.isfinite(gnorm):
            return True
        self.optimizer.zero_grad(set_to_none=True)
        self.nan_skips += 1
        log.warning(
            "update %d: non-finite loss (%s) or gradient norm (%s); step skipped (%d so far)",
            self.update + 1,
            loss,
            gnorm,
            self.nan_skips,
        )
        if self.nan_skips > self.cfg.nan_max_skips:
            raise TrainingDiverged(
                f"{self.out_dir}: stopped at update {self.update}: {self.nan_skips} updates had NaN/inf "
                f"losses or gradients (train.nan_max_skips={self.cfg.nan_max_skips}); lower the learning "
                "rate, raise warmup or check the data, then resume from the last checkpoint"
            )
        return False

    def _step(self) -> Any:
        """Optimizer and scheduler step; returns the learning rate(s) the step used."""
        lr = self.scheduler.get_last_lr()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.update += 1
        return lr

    def _log_update(
        self, progress: _Progress, *, loss: float, lr: Any, gnorm: float, stats: _UpdateStats
    ) -> None:
        """Every ``log_every`` updates (and the last): one ``train`` record, file and console."""
        if self.update % self.cfg.log_every != 0 and self.update != self.cfg.max_updates:
            return
        now = time.perf_counter()
        rec = {
            "loss": loss,
            "lr": lr,
            "gnorm": gnorm,
            "sample_size": stats.sample_size,
            "ups": progress.n_log / max(now - progress.t_log, 1e-9),
            "epoch": self.epoch,
            "nan_skips": self.nan_skips,
            **_reduce_logs(stats.logs, stats.sample_size),
        }
        self.metrics.write("train", self.update, rec)
        self.metrics.console("train", self.update, self.cfg.max_updates, rec)
        progress.t_log, progress.n_log = now, 0

    def _validate_and_save(self, progress: _Progress) -> None:
        """Validation every ``valid_every`` updates, a checkpoint every ``save_every``."""
        if self.validate_fn is not None and self.update % self.cfg.valid_every == 0:
            self.validate()
            progress.last_valid = self.update
        if self.update % self.cfg.save_every == 0:
            self.save()
            progress.last_saved = self.update

    def _finish(self, progress: _Progress) -> TrainResult:
        """Validate and save the final update unless just done; close the logs."""
        if self.validate_fn is not None and progress.losses and progress.last_valid != self.update:
            self.validate()
        if progress.last_saved != self.update:
            self.save()
        self.metrics.close()
        return TrainResult(
            updates=self.update,
            losses=progress.losses,
            nan_skips=self.nan_skips,
            last_checkpoint=latest_checkpoint(self.ckpt_root),
            resumed_from=self.resumed_from,
            best=self.best,
        )


def train(model: nn.Module, train_data: Iterable[Any], **options: Any) -> TrainResult:
    """Build a :class:`Trainer` (same arguments) and run it."""
    return Trainer(model, train_data, **options).fit()


def config_record(cfg: TrainConfig, optim: OptimConfig) -> dict[str, Any]:
    """Plain dict of both configs (for logs / run metadata)."""
    return {"train": to_dict(cfg), "optim": to_dict(optim)}
