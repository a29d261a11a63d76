"""``avsr evaluate``: WER/BLEU of a fine-tuned model over noise type x SNR x modality x language.

Example::

    avsr evaluate --model RUN/best --data DATA --split test --noise-dir CORPUS/noise \\
        --snr clean,-10,-5,0,5,10 --noise babble,music,noise,speech --modality a,v,av \\
        --seed 0 --out EVAL

A CTC model decodes greedily unless ``--decoder beam`` (prefix beam search, with
``--lm LM.arpa|LM.bin``, ``--lexicon``, ``--lm-weight``, ``--word-score``).

Writes ``EVAL/results.json`` (every cell with its counts), ``EVAL/results.md``,
``EVAL/wer_vs_snr.png`` (``bleu_vs_snr.png`` for translation) and the
hypotheses under ``EVAL/hyps/``. The test noise of each clip is chosen and
offset from its id and ``--seed``: the same command gives the same numbers.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tasks.cli_args import add_config_arg, add_set_arg, load_task_config
from tasks.ctc_decoding_args import CTC_FLAGS, add_ctc_decoding_arguments, set_field

if TYPE_CHECKING:
    from avsr.evaluation.run import EvalConfig

# CLI flag -> EvalConfig field (flags left out keep the config file's value)
FLAGS = {
    "model": "model",
    "manifest": "manifest",
    "data": "data",
    "split": "split",
    "lang": "lang",
    "pair": "pair",
    "labels": "labels",
    "noise_dir": "noise_dir",
    "noise_split": "noise_split",
    "snr": "snr",
    "noise": "noise",
    "modality": "modality",
    "seed": "seed",
    "beam": "beam",
    "ctc_weight": "ctc_weight",
    "batch_size": "max_batch_size",
    "max_frames_per_batch": "max_frames_per_batch",
    "max_clips": "max_clips",
    "crop_size": "crop_size",
    "device": "device",
    "workers": "num_workers",
    **CTC_FLAGS,
}


def add_grid_arguments(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """Data, noise-grid and decoding options (shared with ``avsr zeroshot``)."""
    if model:
        parser.add_argument("--model", metavar="DIR", help="fine-tuned model directory")
    _add_data_arguments(parser.add_argument_group("data"))
    _add_noise_arguments(parser.add_argument_group("noise grid"))
    _add_decoding_arguments(parser.add_argument_group("decoding"))
    add_ctc_decoding_arguments(parser.add_argument_group("CTC decoding"))
    add_config_arg(parser, "evaluation config file", metavar="YAML")
    add_set_arg(parser, "override a config field (repeatable)")


def _add_data_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--manifest", metavar="TSV", help="MuAViC manifest; references beside it (.wrd, .{lang}, .en)")
    g.add_argument("--data", metavar="DATA", help="preprocessed DATA folder (instead of --manifest)")
    g.add_argument("--split", help="split of --data (default test)")
    g.add_argument("--lang", help="one language (DATA/muavic/LANG), or the language of a manifest without .lang")
    g.add_argument("--pair", help="translation pair xx-en (DATA/muavic/xx/en)")
    g.add_argument("--labels", metavar="FILE", help="reference file (default: found beside the manifest)")
    g.add_argument("--max-clips", type=int, help="score only the first N clips")


def _add_noise_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--noise-dir", metavar="DIR", help="MUSAN-layout noise folder ({babble,music,noise,speech}/*.wav)")
    g.add_argument("--noise-split", help="use {category}/SPLIT.tsv noise lists (default: --split)")
    g.add_argument("--snr", help="SNRs in dB and/or 'clean' (default clean,-10,-5,0,5,10)")
    g.add_argument("--noise", help="noise types (default babble,music,noise,speech)")
    g.add_argument("--modality", help="input modalities (default a,v,av)")
    g.add_argument("--seed", type=int, help="seed of the per-clip noise choice and offset (default 0)")


def _add_decoding_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--beam", type=int, help="beam width for seq2seq models (default 5)")
    g.add_argument(
        "--ctc-weight",
        type=float,
        metavar="W",
        help="joint CTC/attention decoding of a seq2seq model with a CTC branch: "
        "score = (1-W) attention + W CTC prefix score (default 0: attention only)",
    )
    g.add_argument("--batch-size", type=int, help="clips per batch at most (default 16)")
    g.add_argument("--max-frames-per-batch", type=int, help="batch size x longest clip, in 25 fps frames (default 1000)")
    g.add_argument("--crop-size", type=int, help="ROI centre crop (default: the model's training crop)")
    g.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--workers", type=int, help="processes decoding the test media (default 2)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out`` and ``--no-plots`` (shared with ``avsr zeroshot``)."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "Outputs: results.json, results.md, wer_vs_snr.png (bleu_vs_snr.png), hyps/"
    add_grid_arguments(parser)
    add_output_arguments(parser)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """Config file + ``--set`` overrides + the explicit flags (flags win)."""
    from avsr.evaluation.run import EvalConfig

    cfg = load_task_config(EvalConfig, args.config, args.overrides)
    for flag, fieldname in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            set_field(cfg, fieldname, value)
    if getattr(args, "no_plots", False):
        cfg.plots = False
    return cfg


def main(args: argparse.Namespace) -> int:
    from avsr.evaluation.run import headline, run_evaluation

    cfg = config_from_args(args)
    results = run_evaluation(cfg, args.out)
    print(headline(results))
    for name, sig in results.signatures.items():
        print(f"{name} signature: {sig}")
    print(f"results: {args.out}/results.json, table: {args.out}/results.md")
    return 0
