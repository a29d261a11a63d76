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
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsr.config import ConfigError, load_config, save_config, to_dict
from avsr.errors import UserError

if TYPE_CHECKING:
    import torch

    from avsr.models.av.model import AVPretrainModel
    from tasks.pretrain_config import PretrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (configs/pretrain_tiny.yaml, ...)")
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
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. train.max_updates=200 (repeatable)",
    )
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
    from tasks.pretrain_config import PretrainConfig

    try:
        cfg = load_config(PretrainConfig, path, overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    if stage0:
        cfg.stage0 = True
    if cfg.stage0:
        cfg.model.modalities = ["audio"]
        cfg.data.modalities = "a"
    elif not cfg.model.has_video and cfg.data.modalities != "a":
        cfg.data.modalities = "a"
    return cfg


def read_num_units(labels: Path) -> int:
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


def build_model(cfg: PretrainConfig, num_units: int, init: str | None) -> AVPretrainModel:
    """The pretraining model: fresh (``init`` None), around an encoder, or from an AV dir."""
    from avsr.models.av.io import is_av_dir, load_av_encoder, load_av_pretrain_model
    from avsr.models.av.model import AVPretrainModel, build_av_encoder

    if init is None:
        model = AVPretrainModel(build_av_encoder(cfg.model), num_units)
    elif Path(init).is_dir() and is_av_dir(init):
        model = load_av_pretrain_model(init, cfg.model, num_units)
    else:
        model = AVPretrainModel(load_av_encoder(init, cfg.model), num_units)
    if model.encoder.visual is not None:
        model.encoder.visual.freeze_bn = cfg.model.visual.freeze_bn
    return model


def _dataset(
    cfg: PretrainConfig, data: Path, labels: Path, split: str, *, train: bool, required: bool
) -> Any:
    from avsr.data import AVDataset

    manifest = data / f"{split}.tsv"
    units = labels / f"{split}.km"
    if not manifest.is_file() or not units.is_file():
        if required:
            missing = manifest if not manifest.is_file() else units
            raise UserError(f"{missing}: not found (the {split} split is needed)")
        return None
    return AVDataset(manifest, cfg.data, train=train, labels=units, langs=None)


def make_validate_fn(cfg: PretrainConfig, dataset: Any, rank: int, world: int) -> Any:
    """validate_fn(model) -> {loss_masked, acc_masked, acc_unmasked, n_masked}: masked
    prediction on the validation split (masks seeded per clip: the same every time)."""
    import torch

    from avsr.data import make_batch_sampler, make_dataloader
    from avsr.train.distributed import all_reduce_sum

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


def run(
    cfg: PretrainConfig, *, data: Path, labels: Path, out: Path, init: str | None
) -> dict[str, Any]:
    """Train; returns a summary (updates, final metrics, output dirs). Callable under torchrun."""
    import torch

    from avsr.data import make_dataloader
    from avsr.models.av.io import save_av_model, save_stage0_encoder
    from avsr.train.distributed import barrier, init_distributed
    from avsr.train.trainer import Trainer

    num_units = read_num_units(labels)
    dist = init_distributed(cfg.train.device)
    train_set = _dataset(cfg, data, labels, cfg.train_split, train=True, required=True)
    valid_set = None
    if cfg.valid_split:
        valid_set = _dataset(cfg, data, labels, cfg.valid_split, train=False, required=False)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, num_units, init)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
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
    trainer = Trainer(
        model,
        loader,
        cfg=cfg.train,
        optim=cfg.optim,
        out_dir=out,
        validate_fn=validate_fn,
        dist=dist,
        model_config=model_meta(model),
        model_kind="av",
    )
    result = trainer.fit()
    summary: dict[str, Any] = {"updates": result.updates, "nan_skips": result.nan_skips}
    if result.losses:
        summary["last_loss"] = result.losses[max(result.losses)]
    if trainer.is_fsdp:
        full = trainer.model_state_dict()  # collective: every rank gathers
        if dist.is_main:
            from avsr.checkpoint import save_model_dir

            save_model_dir(out / "model", full, model_meta(model), kind="av")
    elif dist.is_main:
        model = model.cpu()
        save_av_model(model, out / "model")
        if cfg.stage0:
            save_stage0_encoder(model, out / "encoder")
    barrier()
    summary["model"] = str(out / "model")
    if dist.is_main and validate_fn is not None:
        from avsr.train import read_metrics

        valid = read_metrics(out / "metrics.jsonl", "valid")
        if valid:
            summary["valid"] = valid[max(valid)]
    if cfg.stage0:
        summary["encoder"] = str(out / "encoder")
    return summary


# ----------------------------------------------------------------------------- dry run


def _leaf_output_elements(model: torch.nn.Module, run: Any) -> int:
    """Sum of the output sizes of every leaf module during ``run()`` (meta tensors)."""
    import torch

    total = 0

    def hook(_m: torch.nn.Module, _inp: Any, output: Any) -> None:
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        for o in outs:
            if isinstance(o, torch.Tensor):
                total += o.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


def dry_run(cfg: PretrainConfig, gpus: int, num_units: int = 2000) -> dict[str, Any]:
    """Parameters and estimated memory per GPU under FSDP2 (bytes), built on the meta device.

    Per GPU: fp32 parameters + fp32 gradients + Adam moments (16 bytes/param) sharded
    over ``gpus``; two unsharded Transformer blocks in flight (prefetch) plus the
    unsharded root (CNN, fusion, head); activations of one batch of
    ``data.max_frames_per_batch`` video frames (bf16 outputs of every leaf module,
    measured by a meta-device forward; attention scores excluded: SDPA kernels).
    """
    import torch

    from avsr.models.av.model import AVEncoder, AVPretrainModel
    from avsr.models.xlsr import arch_config, build_encoder

    enc_cfg = arch_config(cfg.model.encoder.arch, **cfg.model.encoder.overrides)
    xlsr = build_encoder(enc_cfg, device="meta")
    with torch.device("meta"):
        model = AVPretrainModel(AVEncoder(cfg.model, xlsr), num_units)
    params = sum(p.numel() for p in model.parameters())
    parts = {
        "xlsr_cnn": sum(p.numel() for p in xlsr.frontend.feature_extractor.parameters())
        if xlsr.frontend.feature_extractor is not None
        else 0,
        "transformer": sum(p.numel() for p in xlsr.encoder.parameters())
        + sum(p.numel() for p in xlsr.frontend.pos_encoder.parameters()),
        "lip_encoder": sum(p.numel() for p in model.encoder.visual.parameters())
        if model.encoder.visual is not None
        else 0,
        "fbank": sum(p.numel() for p in model.encoder.fbank.parameters())
        if model.encoder.fbank is not None
        else 0,
        "head": sum(p.numel() for p in model.head.parameters()),
    }
    parts["fusion_and_rest"] = params - sum(parts.values())
    layer = max(sum(p.numel() for p in blk.parameters()) for blk in xlsr.encoder.layers)
    shard_units = [*xlsr.encoder.layers] + (
        [model.encoder.visual] if model.encoder.visual is not None else []
    )
    root = params - sum(sum(p.numel() for p in m.parameters()) for m in shard_units)

    frames = cfg.data.max_frames_per_batch
    crop = cfg.data.crop_size
    n_samples = frames * 640
    audio_lens = torch.tensor([n_samples])
    video_lens = torch.tensor([frames])

    def fwd() -> None:
        audio = torch.zeros(1, n_samples, device="meta")
        video = (
            torch.zeros(1, 1, frames, crop, crop, device="meta")
            if model.encoder.visual is not None
            else None
        )
        model.encoder(
            audio,
            audio_lens,
            video,
            video_lens,
            modality="av",
            apply_mask=True,
            modality_dropout=False,
        )

    try:
        act_elems = _leaf_output_elements(model, fwd)
        act_note = "measured on the meta device"
    except Exception as exc:  # noqa: BLE001 - fall back to a formula
        d, n_layers = enc_cfg.model_dim, enc_cfg.num_layers
        act_elems = n_layers * 2 * frames * d * 17
        act_note = f"formula (meta forward failed: {type(exc).__name__})"
    act_bytes = act_elems * 2
    states = 16 * params / gpus
    gathered = 2 * 4 * layer + 4 * root
    per_gpu = states + gathered + act_bytes
    return {
        "params": params,
        "parts": parts,
        "largest_block": layer,
        "gpus": gpus,
        "bytes": {
            "params_grads_adam_sharded": states,
            "unsharded_in_flight": gathered,
            "activations": act_bytes,
            "total_per_gpu": per_gpu,
        },
        "activations_note": act_note,
        "batch_frames": frames,
    }


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def print_dry_run(cfg: PretrainConfig, gpus: int) -> None:
    rep = dry_run(cfg, gpus)
    print(
        f"model: encoder {cfg.model.encoder.arch}, modalities {cfg.model.modalities}, audio front end {cfg.model.audio_frontend}"
    )
    print(f"parameters: {rep['params'] / 1e6:.2f} M")
    for k, v in rep["parts"].items():
        print(f"  {k:16s} {v / 1e6:10.2f} M")
    b = rep["bytes"]
    print(
        f"memory per GPU, FSDP2 over {gpus} GPUs, batch of {rep['batch_frames']} video frames (bf16 autocast):"
    )
    print(f"  params + grads + Adam (fp32, sharded) {_gib(b['params_grads_adam_sharded'])}")
    print(f"  unsharded blocks in flight           {_gib(b['unsharded_in_flight'])}")
    print(f"  activations ({rep['activations_note']}) {_gib(b['activations'])}")
    print(f"  total (rough)                        {_gib(b['total_per_gpu'])}")
    others = [n for n in (1, 8, 16, 32, 64) if n != gpus]
    row = ", ".join(f"{n}: {_gib(dry_run_total(rep, n))}" for n in others)
    print(f"  other GPU counts: {row}")


def dry_run_total(rep: dict[str, Any], gpus: int) -> float:
    b = rep["bytes"]
    return 16 * rep["params"] / gpus + b["unsharded_in_flight"] + b["activations"]


def main(args: argparse.Namespace) -> int:
    cfg = load_pretrain_config(args.config, args.overrides, stage0=args.stage0)
    if args.dry_run:
        print_dry_run(cfg, args.gpus or cfg.dry_run_gpus)
        return 0
    for name in ("data", "labels", "out"):
        if getattr(args, name) is None:
            raise UserError(f"--{name} is required (unless --dry-run)")
    out: Path = args.out
    final = out / ("encoder" if cfg.stage0 else "model")
    from avsr.checkpoint import is_model_dir

    if is_model_dir(final) and is_model_dir(out / "model"):
        print(f"{final}: already trained (remove {out} to train again)")
        return 0
    summary = run(cfg, data=args.data, labels=args.labels, out=out, init=args.init)
    from avsr.train.distributed import cleanup_distributed, init_distributed

    if init_distributed(cfg.train.device).is_main:
        msg = f"pretrained {summary['updates']} updates -> {final}"
        valid = summary.get("valid")
        if valid:
            msg += (
                f" (valid: masked unit accuracy {valid['acc_masked']:.3f}, "
                f"unmasked {valid['acc_unmasked']:.3f}, masked loss {valid['loss_masked']:.3f})"
            )
        print(msg)
    cleanup_distributed()
    return 0
