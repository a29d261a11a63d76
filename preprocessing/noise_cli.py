"""``avsr noise prepare`` / ``avsr noise babble``: noise folders for training and evaluation.

    avsr noise prepare --musan MUSAN --out NOISE      # MUSAN -> pieces + train/valid/test lists
    avsr noise babble --data DATA --out NOISE/babble  # babble from a manifest's training speakers

Both write ``{category}/{split}.tsv`` lists that ``data.noise_dir=NOISE`` (training,
``data.noise_split``) and ``avsr evaluate --noise-dir NOISE`` read.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from preprocessing.noise_babble import BabbleOptions, count_summary, make_babble
from preprocessing.noise_prep import PrepareOptions, prepare_musan

T = TypeVar("T")

_PREPARE_HELP = "MUSAN as distributed -> noise folder with train/valid/test lists"
_PREPARE_DESCRIPTION = (
    "Cuts MUSAN/{music,noise,speech}/<source>/*.wav into 3-11 s pieces (16 kHz mono), deals "
    "the recordings of each category 0.8/0.1/0.1 to train/valid/test (disjoint, by --seed), "
    "mixes babble from each split's speech pieces and writes NOISE/{all,babble,music,noise,"
    "speech}/{split}.tsv and NOISE/prepare.json (skipped and resampled files)."
)
_BABBLE_HELP = "babble from a manifest folder's training speakers"
_BABBLE_DESCRIPTION = (
    "Babble files (mean of 30 streams of at least 15 s, round-robin over the languages of "
    "DATA/train.lang) from DATA/train.tsv only. A share of each language's training speakers "
    "is held out for the valid/test babble, so test babble is disjoint from training babble. "
    "Writes OUT/{train,valid,test}/*.wav, OUT/{split}.tsv and OUT/babble.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    prep = sub.add_parser("prepare", help=_PREPARE_HELP, description=_PREPARE_DESCRIPTION)
    prep.add_argument("--musan", type=Path, required=True, help="the unpacked MUSAN folder")
    prep.add_argument("--out", type=Path, required=True, help="noise folder to write (NOISE)")
    prep.add_argument("--babble-files", type=int, default=100, help="babble files, all splits (default 100)")
    prep.add_argument("--piece-seconds", type=float, default=10.0, help="piece length (default 10)")
    prep.add_argument("--seed", type=int, default=0, help="split and babble seed (default 0)")
    bab = sub.add_parser("babble", help=_BABBLE_HELP, description=_BABBLE_DESCRIPTION)
    bab.add_argument("--data", type=Path, required=True, help="manifest folder with train.tsv (+ train.lang)")
    bab.add_argument("--out", type=Path, required=True, help="babble folder, e.g. NOISE/babble")
    bab.add_argument("--split", default="train", help="manifest split to draw from (default train)")
    bab.add_argument("--train-files", type=int, default=20, help="training babble files (default 20)")
    bab.add_argument("--eval-files", type=int, default=5, help="valid and test babble files each (default 5)")
    bab.add_argument("--seconds", type=float, default=15.0, help="stream and file length (default 15)")
    bab.add_argument("--streams", type=int, default=30, help="streams per babble file (default 30)")
    bab.add_argument("--heldout-share", type=float, default=0.2,
                     help="share of each language's speakers kept for valid/test babble (default 0.2)")  # fmt: skip
    bab.add_argument("--seed", type=int, default=0, help="hold-out and mixing seed (default 0)")


def _options(cls: type[T], args: argparse.Namespace) -> T:
    """``cls`` with every field that has a same-named command-line option taken from ``args``."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def main(args: argparse.Namespace) -> int:
    if args.verb == "prepare":
        report = prepare_musan(args.musan, args.out, _options(PrepareOptions, args))
        counts = report.summary()
        pieces = ", ".join(f"{c} {sum(v.values())}" for c, v in counts["pieces"].items())
        print(
            f"{args.out}: pieces {pieces}; skipped {counts['skipped']}, resampled "
            f"{counts['resampled']} (see {args.out / 'prepare.json'})"
        )
        return 0
    written = make_babble(args.data, args.out, _options(BabbleOptions, args))
    print(f"{args.out}: babble files {count_summary(written)} (see {args.out / 'babble.json'})")
    return 0
