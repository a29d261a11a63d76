"""The ``avsr`` command: one subcommand per pipeline stage.

Each subcommand lives in its own module, imported only when that subcommand
runs (so ``avsr --help`` is instant and one broken stage cannot break the
others). A module provides::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from avsr import __version__
from avsr.errors import UserError

# name -> (module, one-line description), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "env": ("tasks.env", "print versions, GPU visibility, face-mesh and espeak-ng checks"),
    "media": ("avsr.media", "find or fetch the real test media (carphone, LibriVox, sonic-pi)"),
    "corpus": ("avsr.corpus.cli", "build the embedded multilingual talking-face corpus"),
    "data": ("avsr.data.muavic_cli", "published corpora (MuAViC) -> merged DATA manifests, checked"),
    "preprocess": ("preprocessing.cli", "raw videos -> 96x96 mouth ROI @25 fps, 16 kHz audio, manifests"),
    "noise": ("preprocessing.noise_cli", "noise folders: MUSAN -> split lists (prepare), babble from DATA (babble)"),
    "model": ("avsr.models.cli", "encoder checkpoints: info, convert"),
    "features": ("clustering.features_cli", "dump layer-N encoder features (HuBERT layout)"),
    "kmeans": ("clustering.kmeans_cli", "faiss k-means: fit centroids, apply to get unit labels"),
    "launch": ("tasks.launch", "on SLURM (or locally): preprocess/features shards as a job array, pretrain/finetune on N nodes x G GPUs"),
    "pretrain": ("tasks.pretrain", "masked-prediction pretraining (audio-only stage 0 or AV on units)"),
    "finetune": ("tasks.finetune", "fine-tune for AVSR / AVST with CTC or seq2seq heads"),
    "average": ("tasks.average", "average a run's last / best N checkpoints into one model"),
    "export": ("tasks.export", "export a fine-tuned CTC model to ONNX (audio + video inputs)"),
    "evaluate": ("tasks.evaluate", "WER/BLEU over noise type x SNR x modality x language"),
    "zeroshot": ("tasks.zeroshot", "audio-only fine-tuning, then A vs AV evaluation"),
    "transcribe": ("tasks.transcribe", "transcribe or translate your own videos"),
    "experiments": ("tasks.experiments", "the paper's ablations as reproducible reports"),
    "demo": ("tasks.demo", "the whole pipeline on the embedded corpus"),
}


class _MissingStage(Exception):
    pass


def _load(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise _MissingStage(f"'avsr {name}' is not available yet (module {module_name} is missing)") from exc
        raise


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avsr",
        description="xlavsr: noise-robust audio-visual speech recognition and translation.",
        epilog="Run 'avsr COMMAND --help' for the options of one stage.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xlavsr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    try:
        parser = build_parser(command)
    except _MissingStage as exc:
        print(f"avsr: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from avsr.logging_utils import setup_logging

    setup_logging(verbose=args.verbose, quiet=args.quiet)
    module = _load(args.command)
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        print("avsr: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"avsr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
