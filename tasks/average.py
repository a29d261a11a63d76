"""``avsr average``: average the weights of a run's checkpoints into one model directory.

Examples::

    avsr average --run RUN --last 3 --out RUN/avg3
    avsr average --run RUN --best 3 --metric valid_wer --out RUN/best3

``--last N`` takes the newest N ``RUN/checkpoints/step_*``; ``--best N`` the N with the
best validation metric in ``RUN/metrics.jsonl`` (``valid_loss``, ``valid_wer``,
``valid_bleu``, ...; lower is better except for BLEU). The output is a model directory
that ``avsr evaluate --model`` and ``avsr transcribe --model`` load.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, type=Path, help="training run folder (with checkpoints/)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--last", type=int, metavar="N", help="average the newest N checkpoints")
    group.add_argument("--best", type=int, metavar="N", help="average the N best by --metric")
    parser.add_argument(
        "--metric",
        default="valid_loss",
        help="validation metric ranking --best (default valid_loss; e.g. valid_wer, valid_bleu)",
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")


def main(args: argparse.Namespace) -> int:
    from avsr.checkpoint_average import select_best, select_last, write_average

    if args.last is not None:
        selected = select_last(args.run, args.last)
        how = f"last {args.last}"
    else:
        selected = select_best(args.run, args.best, args.metric)
        how = f"best {args.best} by {args.metric}"
    out = write_average(args.run, selected, args.out, how=how)
    names = ", ".join(
        f"step_{s.step}" + ("" if s.value is None else f" ({args.metric} {s.value:.4g})") for s in selected
    )
    print(f"averaged {len(selected)} checkpoints ({how}): {names} -> {out}")
    return 0
