"""``avsr kmeans fit`` / ``avsr kmeans apply``: faiss k-means centroids and unit labels."""

from __future__ import annotations

import argparse
from pathlib import Path

_FIT_HELP = "fit centroids on a sample of dumped frames"
_FIT_DESCRIPTION = (
    "faiss k-means (GPU when faiss sees one) on a random share of the frames of "
    "FEATS/{split}_*_*.npy; writes OUT/centroids.npy and OUT/kmeans.json."
)
_APPLY_HELP = "assign units to every frame of one or more splits"
_APPLY_DESCRIPTION = (
    "Nearest-centroid units for every frame: OUT/{split}.km (one line per manifest row), "
    "OUT/dict.km.txt (every cluster 0..k-1) and OUT/{split}.km.json (usage, entropy, empty "
    "clusters, purity/PNMI when frame labels are given)."
)
# ``avsr kmeans fit`` flags that override a KMeansConfig field: (flag, type, help).
_FIT_OVERRIDES: tuple[tuple[str, type, str | None], ...] = (
    ("--k", int, "clusters (default 2000)"),
    ("--sample-share", float, "share of frames to fit on (default 0.1)"),
    ("--max-frames", int, "cap on the sample (default 2,000,000; 0 = none)"),
    ("--niter", int, "iterations (default 50)"),
    ("--seed", int, None),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_fit_arguments(sub.add_parser("fit", help=_FIT_HELP, description=_FIT_DESCRIPTION))
    _add_apply_arguments(sub.add_parser("apply", help=_APPLY_HELP, description=_APPLY_DESCRIPTION))


def _add_fit_arguments(fit: argparse.ArgumentParser) -> None:
    fit.add_argument("--feats", type=Path, required=True, help="feature folder of 'avsr features'")
    fit.add_argument(
        "--split", action="append", default=None, help="split(s) to fit on (default: train)"
    )
    fit.add_argument("--out", type=Path, required=True, help="k-means model folder")
    for flag, tp, help_text in _FIT_OVERRIDES:
        fit.add_argument(flag, type=tp, default=None, help=help_text)
    fit.add_argument(
        "--init", choices=["kmeans++", "random"], default=None, help="seeding (default kmeans++)"
    )
    fit.add_argument(
        "--threads", type=int, default=None, help="faiss OpenMP threads (default: all cores)"
    )
    fit.add_argument("--gpu", choices=["auto", "yes", "no"], default=None)
    fit.add_argument(
        "--force", action="store_true", help="refit even if OUT already holds centroids"
    )
    fit.add_argument("--config", type=Path, default=None, help="YAML KMeansConfig")
    fit.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )


def _add_apply_arguments(app: argparse.ArgumentParser) -> None:
    app.add_argument(
        "--model", type=Path, required=True, help="k-means folder of 'avsr kmeans fit'"
    )
    app.add_argument("--feats", type=Path, required=True, help="feature folder of 'avsr features'")
    app.add_argument(
        "--split", action="append", default=None, help="split(s) (default: every split in FEATS)"
    )
    app.add_argument("--out", type=Path, required=True, help="label folder (LAB)")
    app.add_argument(
        "--data",
        type=Path,
        default=None,
        help="DATA folder with {split}.tsv: check row counts, name utterances",
    )
    app.add_argument(
        "--alignments",
        type=Path,
        default=None,
        help="CORPUS/alignments: frame labels for purity/PNMI",
    )
    app.add_argument(
        "--label-level", choices=["char", "word"], default="char", help="alignment labels per frame"
    )
    app.add_argument(
        "--frame-labels",
        type=Path,
        default=None,
        help="file with one line of frame labels per row (one split only)",
    )
    app.add_argument("--gpu", choices=["auto", "yes", "no"], default="auto")


def _splits_in(feats: Path) -> list[str]:
    splits = set()
    for p in feats.glob("*_*_*.npy"):
        parts = p.stem.rsplit("_", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            splits.add(parts[0])
    return sorted(splits)


def _fit(args: argparse.Namespace) -> int:
    from avsr.config import load_config, save_config
    from avsr.errors import UserError
    from clustering.kmeans import CENTROIDS, KMeansConfig, fit_kmeans

    cfg = load_config(KMeansConfig, args.config, args.set)
    for key in ("k", "sample_share", "max_frames", "niter", "seed", "init", "threads", "gpu"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if (args.out / CENTROIDS).is_file() and not args.force:
        raise UserError(f"{args.out}: already holds {CENTROIDS} (use --force to refit)")
    splits = args.split or ["train"]
    meta = fit_kmeans([(args.feats, s) for s in splits], args.out, cfg)
    save_config(cfg, args.out / "kmeans_config.yaml")
    print(
        f"{args.out / CENTROIDS}: k={meta['k']} dim={meta['dim']} on {meta['sample_frames']} of "
        f"{meta['total_frames']} frames, inertia/frame {meta['inertia_per_frame']:.4g}, {meta['seconds']}s"
    )
    return 0


def _apply(args: argparse.Namespace) -> int:
    from avsr.errors import UserError
    from clustering.kmeans import apply_kmeans

    splits = args.split or _splits_in(args.feats)
    if not splits:
        raise UserError(f"{args.feats}: no feature shards ({{split}}_RANK_WORLD.npy)")
    if args.frame_labels is not None and len(splits) != 1:
        raise UserError("--frame-labels belongs to one split: give exactly one --split")
    for split in splits:
        manifest = None
        if args.data is not None:
            manifest = args.data / f"{split}.tsv"
            if not manifest.is_file():
                raise UserError(f"{manifest}: manifest not found")
        rep = apply_kmeans(
            args.model,
            args.feats,
            split,
            args.out,
            manifest=manifest,
            alignments=args.alignments,
            frame_labels=args.frame_labels,
            label_level=args.label_level,
            gpu=args.gpu,
        )
        line = (
            f"{split}: {rep['utterances']} utterances, {rep['frames']} frames, "
            f"{rep['used_clusters']}/{rep['k']} clusters used ({rep['empty_clusters']} empty), "
            f"entropy {rep['entropy_bits']:.2f}/{rep['max_entropy_bits']:.2f} bits"
        )
        if "labels" in rep:
            q = rep["labels"]
            line += f", PNMI {q['pnmi']:.3f}, cluster purity {q['cluster_purity']:.3f}, label purity {q['label_purity']:.3f}"
        print(line)
    return 0


def main(args: argparse.Namespace) -> int:
    return _fit(args) if args.verb == "fit" else _apply(args)
