"""``avsr features``: dump layer-N encoder features of a manifest (HuBERT layout)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run an XLS-R-family encoder (or MFCC) over the audio of a MuAViC manifest and write "
        "OUT/{split}_{rank}_{world}.npy + .len (HuBERT layout). Early exit at --layer, "
        "length-sorted padded batches, resumable, sharded by --rank/--world or torchrun's RANK/WORLD_SIZE."
    )
    parser.add_argument("--manifest", type=Path, required=True, help="DATA/{split}.tsv")
    parser.add_argument(
        "--encoder",
        required=True,
        help="checkpoint (project dir, HF dir, fairseq1 .pt), arch name (random weights), or 'mfcc'",
    )
    parser.add_argument(
        "--layer",
        type=int,
        default=None,
        help="dump block N's output without the final LayerNorm (fairseq layer=N-1); "
        "default: the whole stack with the final LayerNorm (ignored for mfcc)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--rank", type=int, default=None, help="shard index (default: $RANK or 0)")
    parser.add_argument(
        "--world", type=int, default=None, help="number of shards (default: $WORLD_SIZE or 1)"
    )
    parser.add_argument(
        "--batch-frames",
        type=int,
        default=None,
        help="max encoder frames per batch, padding included",
    )
    parser.add_argument("--max-batch-size", type=int, default=None)
    parser.add_argument(
        "--no-normalize", action="store_true", help="skip per-utterance waveform normalisation"
    )
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default=None)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--config", type=Path, default=None, help="YAML FeatureDumpConfig")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )


def main(args: argparse.Namespace) -> int:
    from avsr.config import load_config, save_config
    from clustering.features import FeatureDumpConfig, dump_features, rank_world_from_env

    cfg = load_config(FeatureDumpConfig, args.config, args.set)
    cfg.rank, cfg.world = rank_world_from_env(args.rank, args.world)
    cfg.manifest, cfg.encoder, cfg.out, cfg.layer = args.manifest, str(args.encoder), args.out, args.layer
    for key in ("batch_frames", "max_batch_size", "dtype", "device"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if args.no_normalize:
        cfg.normalize = False
    result = dump_features(cfg)
    save_config(cfg, Path(cfg.out) / f"features_{Path(cfg.manifest).stem}_{cfg.rank}_{cfg.world}.yaml")
    state = "already done" if result.skipped else "written"
    print(f"{result.npy} ({state}): {result.rows} rows, {result.frames} frames x {result.dim}")
    return 0
