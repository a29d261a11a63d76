"""``avsr preprocess``: raw videos -> 96x96 mouth ROI at 25 fps, 16 kHz audio, MuAViC manifests.

Examples::

    avsr preprocess --input CORPUS/clips.tsv --out DATA --workers 2
    avsr preprocess --input my_videos/ --out DATA --lang en --split test --transcripts t.tsv
    avsr preprocess --input carphone.mp4 --out DATA --keep-video-only
    avsr preprocess --input CORPUS/clips.tsv --out DATA --shard 3/64   # one shard of 64 ...
    avsr preprocess --input CORPUS/clips.tsv --out DATA --merge-shards 64  # ... all merged
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preprocessing.clip import Clip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        help="a folder of videos (mp4/avi/mkv/webm/mov, searched recursively; a same-named .wav is used "
        "as the audio), a corpus clips.tsv, a text file with one video path per line, or one video",
    )
    parser.add_argument(
        "--out", required=True, help="output root DATA (video/, audio/, manifests, report.jsonl)"
    )
    parser.add_argument(
        "--transcripts",
        help="TSV 'id<TAB>text[<TAB>translation]' (or a clips.tsv) for the label files",
    )
    parser.add_argument(
        "--lang", default="und", help="language code for a folder/list input (default: und)"
    )
    parser.add_argument(
        "--split", default="test", help="split name for a folder/list input (default: test)"
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument(
        "--min-face-share",
        type=float,
        help="skip a clip when a face is found in fewer than this share of frames (default 0.5)",
    )
    parser.add_argument(
        "--keep-video-only",
        action="store_true",
        default=None,
        help="keep clips without audio (listed in {split}.video_only.tsv) instead of skipping them",
    )
    parser.add_argument(
        "--landmarks",
        metavar="DIR",
        help="folder of precomputed landmarks, one file per video, instead of face mesh: "
        "DIR/<id>.{npz,npy,pkl} or DIR/<video path below its folders>.pkl (AV-HuBERT's layout)",
    )
    parser.add_argument(
        "--landmarks-format",
        choices=("auto", "avhubert", "auto_avsr", "npy"),
        help="avhubert: pickled list of (68, 2) dlib points or None per frame (AV-HuBERT, MuAViC); "
        "auto_avsr: the same with 68 or 4 points; npy: (T, N, 2) .npy/.npz with NaN rows for "
        "no face; auto (default): by extension and point count",
    )
    parser.add_argument(
        "--redo-skipped",
        action="store_true",
        default=None,
        help="retry clips skipped by an earlier run",
    )
    parser.add_argument(
        "--save-landmarks",
        action="store_true",
        default=None,
        help="also write landmarks/{id}.npz (detected and smoothed landmarks, frame->ROI matrices)",
    )
    parser.add_argument("--config", help="YAML file with PreprocessConfig fields")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    shards = parser.add_mutually_exclusive_group()
    shards.add_argument(
        "--shard",
        metavar="K/N",
        help="process only shard K of N (K from 0 to N-1; clip i of the input goes to shard i mod N): "
        "media where an unsharded run puts them, report in OUT/shards/; no manifests (see --merge-shards)",
    )
    shards.add_argument(
        "--merge-shards",
        type=int,
        metavar="N",
        help="process nothing: check that shards 0..N-1 of this --input finished, then write the "
        "manifests, report.jsonl and preprocess.yaml an unsharded run writes",
    )


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avsr.config import ConfigError, load_config
    from avsr.errors import UserError
    from avsr.logging_utils import get_logger
    from preprocessing.clip import PreprocessConfig, read_input
    from preprocessing.landmarks_input import LANDMARK_FORMATS
    from preprocessing.pipeline import run
    from preprocessing.shards import Shard

    log = get_logger("preprocess")
    try:
        cfg = load_config(PreprocessConfig, args.config, args.set)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    flags = {
        "workers": args.workers,
        "min_face_share": args.min_face_share,
        "keep_video_only": args.keep_video_only,
        "landmarks_dir": args.landmarks,
        "landmarks_format": args.landmarks_format,
        "redo_skipped": args.redo_skipped,
        "save_landmarks": args.save_landmarks,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    if not 0.0 <= cfg.min_face_share <= 1.0:
        raise UserError(f"--min-face-share must be in [0, 1], got {cfg.min_face_share}")
    if cfg.workers < 1:
        raise UserError(f"--workers must be >= 1, got {cfg.workers}")
    if cfg.landmarks_dir and not Path(cfg.landmarks_dir).is_dir():
        raise UserError(f"{cfg.landmarks_dir}: landmarks folder not found")
    if cfg.landmarks_format not in LANDMARK_FORMATS:
        raise UserError(
            f"landmarks_format must be one of {', '.join(LANDMARK_FORMATS)}, got {cfg.landmarks_format!r}"
        )
    clips = read_input(args.input, split=args.split, lang=args.lang, transcripts=args.transcripts)
    if args.merge_shards is not None:
        return _merge(clips, args)
    shard = Shard.parse(args.shard) if args.shard else None
    summary = run(clips, args.out, cfg, show_progress=not args.no_progress, shard=shard)
    st = summary["statuses"]
    log.info(
        "%d clips: %s; %d frames in %.1f s (%.1f frames/s)",
        summary["clips"],
        ", ".join(f"{v} {k}" for k, v in sorted(st.items())),
        summary["frames"],
        summary["seconds"],
        summary["frames_per_s"],
    )
    if shard is not None:  # a finished shard succeeded, whatever its clips gave
        report = shard.report_path(Path(args.out))
        log.info("report: %s (then merge: --merge-shards %d)", report, shard.count)
        return 0
    log.info("manifests: %s", json.dumps(summary["manifests"]))
    log.info("report: %s", Path(args.out) / "report.jsonl")
    return 0 if st.get("ok", 0) > 0 or not clips else 1


def _merge(clips: list[Clip], args: argparse.Namespace) -> int:
    """``--merge-shards N``: merge the shards' outputs; 0 when some clip is ok (as a run)."""
    from pathlib import Path

    from avsr.logging_utils import get_logger
    from preprocessing.shard_merge import merge_shards

    log = get_logger("preprocess")
    summary = merge_shards(clips, args.out, args.merge_shards)
    st = summary["statuses"]
    log.info(
        "%d clips from %d shard(s): %s",
        summary["clips"],
        args.merge_shards,
        ", ".join(f"{v} {k}" for k, v in sorted(st.items())),
    )
    log.info("manifests: %s", json.dumps(summary["manifests"]))
    log.info("report: %s", Path(args.out) / "report.jsonl")
    return 0 if st.get("ok", 0) > 0 or not clips else 1
