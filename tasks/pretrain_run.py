"""The body of ``avsr pretrain`` (see :mod:`tasks.pretrain`): data, model, training, outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from avsr.checkpoint import save_model_dir
from avsr.config import to_dict
from avsr.data import AVDataset, make_batch_sampler, make_dataloader
from avsr.errors import UserError
from avsr.models.av.io import (
    is_av_dir,
    load_av_encoder,
    load_av_pretrain_model,
    save_av_model,
    save_stage0_encoder,
)
from avsr.models.av.model import AVPretrainModel, build_av_encoder
from avsr.train import Trainer, TrainResult, barrier, init_distributed, read_metrics
from avsr.train.distributed import all_reduce_sum
from tasks.pretrain_config import PretrainConfig
from tasks.training_run import fit, write_run_config


def read_num_units(labels: Path) -> int:
    """Number of units in ``labels/dict.km.txt`` (the k-means dictionary)."""
    path = labels / "dict.km.txt"
    if not path.is_file():
        raise UserError(f"{labels}: no dict.km.txt (the k-means dictionary)")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) < 2:
        raise UserError(f"{path}: needs at least 2 units, found {len(lines)}")
    return len(lines)


def model_meta(model: AVPretrainModel) -> dict[str, Any]:
    """The ``config.yaml`` fields of an AV model dir (what :func:`load_av_encoder` reads)."""
    enc = model.encoder
    return {
        "av": to_dict(enc.cfg),
        "encoder": enc.xlsr.config.to_dict(),
        "num_units": model.num_units,
        "frame_rate": enc.frame_rate,
    }


def check_loss_weights(cfg: PretrainConfig) -> None:
    """UserError naming the key when a ``model.loss`` weight is negative, or when a
    ``consistency_*`` switch is on while ``consistency_weight`` is 0 (it would do nothing)."""
    loss = cfg.model.loss
    for name, value in vars(loss).items():
        if isinstance(value, bool):
            if value and name.startswith("consistency_") and loss.consistency_weight == 0:
                raise UserError(f"model.loss.{name} is on but model.loss.consistency_weight is 0: "
                                "set the weight (> 0) for the consistency loss, or leave the switch off")
        elif value < 0:
            raise UserError(f"model.loss.{name} is {value:g}: a loss weight must be >= 0")


def build_model(cfg: PretrainConfig, num_units: int, init: str | None) -> AVPretrainModel:
    """The pretraining model: fresh (``init`` None), around an encoder, or from an AV dir."""
    check_loss_weights(cfg)
    if init is None:
        model = AVPretrainModel(build_av_encoder(cfg.model), num_units)
    elif Path(init).is_dir() and is_av_dir(init):
        model = load_av_pretrain_model(init, cfg.model, num_units)
    else:
        model = AVPretrainModel(load_av_encoder(init, cfg.model), num_units)
    if model.encoder.visual is not None:
        model.encoder.visual.freeze_bn = cfg.model.visual.freeze_bn
    if cfg.model.loss.consistency_weight > 0 and cfg.model.loss.consistency_frozen_teacher:
        model.freeze_teacher()
    return model


def _dataset(
    cfg: PretrainConfig, data: Path, labels: Path, split: str, *, train: bool, required: bool
) -> AVDataset | None:
    """``split`` with its units (None when missing and not ``required``)."""
    manifest = data / f"{split}.tsv"
    units = labels / f"{split}.km"
    if not manifest.is_file() or not units.is_file():
        if required:
            missing = manifest if not manifest.is_file() else units
            raise UserError(f"{missing}: not found (the {split} split is needed)")
        return None
    loss = cfg.model.loss
    keep_clean = train and (
        cfg.model.modality_dropout.reads_clean_audio
        or loss.lip_regression_weight > 0
        or loss.consistency_weight > 0
    )
    return AVDataset(manifest, cfg.data, train=train, labels=units, langs=None, keep_clean_audio=keep_clean)


def make_validate_fn(
    cfg: PretrainConfig, dataset: AVDataset, rank: int, world: int
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """validate_fn(model) -> {loss_masked, acc_masked, acc_unmasked, n_masked}: masked
    prediction on the validation split (masks seeded per clip: the same every time)."""
    sampler = make_batch_sampler(dataset, rank=rank, world_size=world, shuffle=False)
    loader = make_dataloader(dataset, sampler, num_workers=0)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        keys = ["loss_masked:num", "acc_masked:num", "n_masked", "acc_unmasked:num", "n_unmasked"]
        sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
        for i, batch in enumerate(loader):
            if cfg.valid_max_batches is not None and i >= cfg.valid_max_batches:
                break
            out = model(batch.to(device))
            sums += torch.tensor([out.logs[k] for k in keys], dtype=torch.float64, device=device)
        sums = all_reduce_sum(sums)
        s = dict(zip(keys, sums.tolist()))
        nm, nu = max(s["n_masked"], 1.0), max(s["n_unmasked"], 1.0)
        return {
            "loss_masked": s["loss_masked:num"] / nm,
            "acc_masked": s["acc_masked:num"] / nm,
            "acc_unmasked": s["acc_unmasked:num"] / nu,
            "n_masked": s["n_masked"],
        }

    return validate


def _save_models(
    cfg: PretrainConfig, trainer: Trainer, model: AVPretrainModel, out: Path, main: bool
) -> None:
    """``out/model`` (AV model dir with the unit head) and, for stage 0, ``out/encoder``."""
    if trainer.is_fsdp:
        full = trainer.model_state_dict()  # collective: every rank gathers
        if main:
            save_model_dir(out / "model", full, model_meta(model), kind="av")
    elif main:
        model = model.cpu()
        save_av_model(model, out / "model")
        if cfg.stage0:
            save_stage0_encoder(model, out / "encoder")


def _summary(
    cfg: PretrainConfig, result: TrainResult, out: Path, *, main: bool, validated: bool
) -> dict[str, Any]:
    """Updates, NaN skips, last loss, output dirs and (rank 0) the last validation metrics."""
    summary: dict[str, Any] = {"updates": result.updates, "nan_skips": result.nan_skips}
    if result.losses:
        summary["last_loss"] = result.losses[max(result.losses)]
    summary["model"] = str(out / "model")
    if main and validated:
        valid = read_metrics(out / "metrics.jsonl", "valid")
        if valid:
            summary["valid"] = valid[max(valid)]
    if cfg.stage0:
        summary["encoder"] = str(out / "encoder")
    return summary


def run(
    cfg: PretrainConfig, *, data: Path, labels: Path, out: Path, init: str | None
) -> dict[str, Any]:
    """Train; returns a summary (updates, final metrics, output dirs). Callable under torchrun."""
    num_units = read_num_units(labels)
    dist = init_distributed(cfg.train.device)
    train_set = _dataset(cfg, data, labels, cfg.train_split, train=True, required=True)
    valid_set = None
    if cfg.valid_split:
        valid_set = _dataset(cfg, data, labels, cfg.valid_split, train=False, required=False)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, num_units, init)
    write_run_config(cfg, out, dist.is_main)
    loader = make_dataloader(
        train_set,
        rank=dist.rank,
        world_size=dist.world_size,
        num_workers=cfg.train.num_workers,
        pin_memory=dist.device.type == "cuda",
        persistent_workers=cfg.train.num_workers > 0,
    )
    validate_fn = (
        make_validate_fn(cfg, valid_set, dist.rank, dist.world_size)
        if valid_set is not None
        else None
    )
    trainer, result = fit(model, loader, cfg, out=out, dist=dist, validate_fn=validate_fn,
                          model_config=model_meta(model), model_kind="av")
    _save_models(cfg, trainer, model, out, dist.is_main)
    barrier()
    return _summary(cfg, result, out, main=dist.is_main, validated=validate_fn is not None)
