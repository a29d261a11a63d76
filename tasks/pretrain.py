"""``avsr pretrain``: masked prediction of units with the AV XLAVS-R model.

Two uses:

- continued AV pretraining (XLAVS-R): ``--init`` an XLS-R encoder (project dir,
  HF dir, fairseq1 .pt) or an AV model dir, ``--labels`` the k-means units of
  that encoder's layer-N features; the lip encoder and fusion start fresh;
- stage 0 of the demo (``--stage0``): the same machinery audio-only (no lip
  encoder), trained from scratch on MFCC k-means units, saved as an XLS-R
  encoder dir (``RUN/encoder``) that every later stage loads like a real XLS-R.

Runs in one process or under ``torchrun`` (DDP, or FSDP2 with
``--set train.distributed=fsdp2``; gloo on CPU, nccl on GPU). BatchNorm of the
lip encoder is per process under DDP; ``model.visual.freeze_bn=true`` keeps it
in eval mode, ``train.sync_batchnorm=true`` syncs it across GPUs (CUDA only).

Outputs under ``--out RUN``: ``config.yaml`` (resolved), ``checkpoints/``
(``step_N`` AV model dirs + trainer state, ``last``, ``best``),
``metrics.jsonl``, ``tensorboard/``, and at the end ``model/`` (AV model dir
with the unit head) plus, for stage 0, ``encoder/``. A rerun with finished
outputs does nothing; an interrupted run resumes from ``checkpoints/last``.

``--dry-run`` builds the model on the meta device and prints parameter counts
and an estimate of the memory per GPU under FSDP2 (no data needed).

The training itself is :mod:`tasks.pretrain_run`, the dry run :mod:`tasks.pretrain_dry_run`
(both imported only when used: ``avsr pretrain --help`` stays light).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsr.checkpoint import is_model_dir
from avsr.errors import UserError
from tasks.cli_args import add_config_arg, add_set_arg, load_task_config

if TYPE_CHECKING:
    from tasks.pretrain_config import PretrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arg(parser, "YAML config (configs/pretrain_tiny.yaml, ...)", type=Path)
    parser.add_argument(
        "--data", type=Path, help="preprocessed data dir with {split}.tsv manifests"
    )
    parser.add_argument("--labels", type=Path, help="dir with {split}.km units and dict.km.txt")
    parser.add_argument(
        "--init",
        help="initial encoder: XLS-R project/HF dir, fairseq1 .pt, or an AV model dir "
        "(default: a fresh model.encoder.arch)",
    )
    parser.add_argument("--out", type=Path, help="run folder")
    add_set_arg(parser, "override a config field, e.g. train.max_updates=200 (repeatable)")
    parser.add_argument(
        "--stage0",
        action="store_true",
        help="audio-only stage 0; saves RUN/encoder in XLS-R format",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build on the meta device; print parameters and memory per GPU under FSDP2",
    )
    parser.add_argument(
        "--gpus", type=int, default=None, help="GPU count for --dry-run (default: dry_run_gpus)"
    )


def load_pretrain_config(
    path: Path | None, overrides: list[str], stage0: bool = False
) -> PretrainConfig:
    """Config file + ``--set`` overrides; stage 0 and audio-only models read audio only."""
    from tasks.pretrain_config import PretrainConfig

    cfg = load_task_config(PretrainConfig, path, overrides)
    if stage0:
        cfg.stage0 = True
    if cfg.stage0:
        cfg.model.modalities = ["audio"]
        cfg.data.modalities = "a"
    elif not cfg.model.has_video and cfg.data.modalities != "a":
        cfg.data.modalities = "a"
    return cfg


def _print_done(summary: dict[str, Any], final: Path) -> None:
    msg = f"pretrained {summary['updates']} updates -> {final}"
    valid = summary.get("valid")
    if valid:
        msg += (
            f" (valid: masked unit accuracy {valid['acc_masked']:.3f}, "
            f"unmasked {valid['acc_unmasked']:.3f}, masked loss {valid['loss_masked']:.3f})"
        )
    print(msg)


def main(args: argparse.Namespace) -> int:
    cfg = load_pretrain_config(args.config, args.overrides, stage0=args.stage0)
    if args.dry_run:
        from tasks.pretrain_dry_run import print_dry_run

        print_dry_run(cfg, args.gpus or cfg.dry_run_gpus)
        return 0
    for name in ("data", "labels", "out"):
        if getattr(args, name) is None:
            raise UserError(f"--{name} is required (unless --dry-run)")
    from avsr.data.config import check_noise_request  # torch-heavy package: keeps --help light

    check_noise_request(cfg.data, args.config)
    out: Path = args.out
    final = out / ("encoder" if cfg.stage0 else "model")
    if is_model_dir(final) and is_model_dir(out / "model"):
        print(f"{final}: already trained (remove {out} to train again)")
        return 0
    # torch-heavy modules: imported here so that ``avsr pretrain --help`` stays instant
    from avsr.train.distributed import cleanup_distributed, init_distributed
    from tasks.pretrain_run import run

    summary = run(cfg, data=args.data, labels=args.labels, out=out, init=args.init)
    if init_distributed(cfg.train.device).is_main:
        _print_done(summary, final)
    cleanup_distributed()
    return 0
