"""``avsr preprocess``: raw videos -> 96x96 mouth ROI at 25 fps, 16 kHz audio, MuAViC manifests.

Examples::

    avsr preprocess --input CORPUS/clips.tsv --out DATA --workers 2
    avsr preprocess --input my_videos/ --out DATA --lang en --split test --transcripts t.tsv
    avsr preprocess --input carphone.mp4 --out DATA --keep-video-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json


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
        help="folder of precomputed landmarks {id}.npz/.npy (T, 468, 2) instead of face mesh",
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


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avsr.config import ConfigError, load_config
    from avsr.errors import UserError
    from avsr.logging_utils import get_logger
    from preprocessing.clip import PreprocessConfig, read_input
    from preprocessing.pipeline import run

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
    clips = read_input(args.input, split=args.split, lang=args.lang, transcripts=args.transcripts)
    summary = run(clips, args.out, cfg, show_progress=not args.no_progress)
    st = summary["statuses"]
    log.info(
        "%d clips: %s; %d frames in %.1f s (%.1f frames/s)",
        summary["clips"],
        ", ".join(f"{v} {k}" for k, v in sorted(st.items())),
        summary["frames"],
        summary["seconds"],
        summary["frames_per_s"],
    )
    log.info("manifests: %s", json.dumps(summary["manifests"]))
    log.info("report: %s", Path(args.out) / "report.jsonl")
    return 0 if st.get("ok", 0) > 0 or not clips else 1
