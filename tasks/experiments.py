"""``avsr experiments {frontend,zeroshot,noise-types}``: the paper's ablations as reports.

One command trains what the comparison needs (or reuses what is given on the
command line), evaluates every arm and seed on the same deterministic grid and
writes a report folder::

    avsr experiments frontend --config configs/experiments_tiny.yaml --out REPORT --seeds 0,1
    avsr experiments zeroshot --config configs/experiments_tiny.yaml --out REPORT2 --work REPORT/work
    avsr experiments noise-types --config configs/experiments_tiny.yaml --out REPORT3 --work REPORT/work

- frontend: learnable CNN vs log-mel filterbank audio front end (same data,
  same budget), AV fine-tuned, tested with A and AV input, clean and noisy.
- zeroshot: audio-only fine-tuning of the AV-pretrained model tested with A and
  AV input, against AV fine-tuning.
- noise-types: babble, music, noise and speech over the SNR grid, A and AV input.

REPORT gets ``report.md``, ``results.json`` (mean/std/min/max over seeds of
every cell, per language), PNG plots, ``commands.txt`` (every command, in
order), ``configs/`` and ``eval/`` (the per-seed evaluations). The audio
encoder is ``--encoder``, else the config's ``encoder`` (``shipped``: the
stand-in encoder in the package; null: stage 0 builds one). Prerequisites
(corpus, preprocessing, stage-0 encoder, units) and training runs live in
``--work`` (default ``REPORT/work``): point several experiments at one WORK to
share them. A rerun skips finished stages.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from avsr.config import save_config
from avsr.corpus.encoder import resolve_demo_encoder
from avsr.errors import UserError
from tasks.cli_args import add_config_arg, add_set_arg, load_task_config

if TYPE_CHECKING:
    from tasks.experiments_plan import ExperimentsConfig


def _common(p: argparse.ArgumentParser) -> None:
    add_config_arg(p, "experiments config (configs/experiments_tiny.yaml)", metavar="YAML")
    p.add_argument("--out", required=True, metavar="REPORT", help="report folder")
    p.add_argument("--seeds", help="training seeds, comma-separated (default: the config's, 0,1)")
    p.add_argument("--work", metavar="DIR", help="prerequisites and training runs (default REPORT/work)")
    add_set_arg(p, "override an experiments-config field, e.g. evaluate.snr=clean,0 (repeatable)")
    add_set_arg(
        p,
        "--set for every training stage (stage 0, pretraining, fine-tuning), e.g. train.max_updates=5",
        flag="--train-set",
        dest=None,
    )
    d = p.add_argument_group("data and reused inputs (default: build them)")
    d.add_argument("--corpus-size", choices=["tiny", "small"], help="embedded corpus size")
    d.add_argument("--data", metavar="DATA", help="preprocessed DATA folder (skips corpus + preprocess)")
    d.add_argument("--noise-dir", metavar="DIR", help="MUSAN-layout noise folder (with --data)")
    d.add_argument(
        "--encoder", metavar="DIR",
        help="XLS-R encoder (HF dir, fairseq1 .pt, project dir) instead of the config's encoder "
        "(tiny config: the stand-in shipped in the package; --set encoder=null: stage 0 builds one)",
    )
    d.add_argument("--labels", metavar="LAB", help="unit labels ({split}.km, dict.km.txt): skips units")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Outputs: REPORT/report.md, results.json, *_vs_snr*.png, commands.txt, configs/, eval/.\n"
        "Example: avsr experiments frontend --config configs/experiments_tiny.yaml --out reports/frontend"
    )
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    helps = {
        "frontend": "learnable CNN vs filterbank audio front end, A and AV input, clean and noisy",
        "zeroshot": "audio-only fine-tuning tested with A and AV, against AV fine-tuning",
        "noise-types": "babble, music, noise, speech over the SNR grid, A and AV input",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p)
        if name in ("zeroshot", "noise-types"):
            p.add_argument(
                "--pretrained", metavar="DIR",
                help="AV-pretrained model: skips prerequisites and pretraining (seeds vary fine-tuning only)",
            )
        if name == "noise-types":
            p.add_argument(
                "--model", dest="models", action="append", default=[], metavar="DIR",
                help="AV fine-tuned model to evaluate (repeatable, one per replicate): skips training",
            )


def load_experiments_config(args: argparse.Namespace) -> ExperimentsConfig:
    """Config file (repository-relative or a path) + ``--set`` + ``--train-set`` + flags."""
    from tasks.experiments_plan import ExperimentsConfig, resolve_file

    path = resolve_file(args.config, "experiments config") if args.config else None
    cfg = load_task_config(ExperimentsConfig, path, args.overrides)
    cfg.train_overrides = [*cfg.train_overrides, *args.train_set]
    if args.corpus_size:
        cfg.corpus.size = args.corpus_size
    return cfg


def parse_seeds(text: str | None, default: list[int]) -> list[int]:
    """``--seeds 0,1`` (or the config's) as distinct integers."""
    if text is None:
        seeds = list(default)
    else:
        try:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        except ValueError as exc:
            raise UserError(f"--seeds {text!r}: expected comma-separated integers") from exc
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: need distinct seeds, got {seeds}")
    return seeds


def encoder_input(flag: str | None, configured: str | None) -> Path | None:
    """The audio encoder the experiment starts from: ``--encoder`` (``flag``) if given, else
    the config's ``encoder`` (``shipped``: the stand-in in the package), else None (stage 0
    builds one). A configured path that does not exist is a :class:`UserError`."""
    if flag:
        return Path(flag)
    path = resolve_demo_encoder(configured)
    if path is None:
        return None
    if not Path(path).exists():
        raise UserError(
            f"experiments config 'encoder': {path}: not found "
            "(give 'shipped', an existing encoder path, or null for stage 0)"
        )
    return Path(path)


def command_line(args: argparse.Namespace) -> str:
    """The ``avsr experiments ...`` command equivalent to ``args`` (for the report)."""
    cmd = ["avsr", "experiments", args.experiment]
    for flag in ("config", "out", "seeds", "work", "corpus_size", "data", "noise_dir", "encoder", "labels"):
        v = getattr(args, flag, None)
        if v is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(v)]
    if getattr(args, "pretrained", None):
        cmd += ["--pretrained", str(args.pretrained)]
    for m in getattr(args, "models", []):
        cmd += ["--model", str(m)]
    for s in args.overrides:
        cmd += ["--set", s]
    for s in args.train_set:
        cmd += ["--train-set", s]
    return shlex.join(cmd)


def main(args: argparse.Namespace) -> int:
    from tasks.experiments_plan import Inputs, build_plan, check_markers
    from tasks.experiments_report import write_report
    from tasks.stages import run_stages

    cfg = load_experiments_config(args)
    seeds = parse_seeds(args.seeds, cfg.seeds)
    cfg.seeds = seeds
    report = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else report / "work"
    if args.noise_dir and not args.data:
        raise UserError("--noise-dir goes with --data (the embedded corpus brings its own noise)")
    for flag in ("data", "noise_dir", "encoder", "labels", "pretrained"):
        v = getattr(args, flag, None)
        if v and not Path(v).exists():
            raise UserError(f"--{flag.replace('_', '-')} {v}: not found")
    for m in getattr(args, "models", []):
        if not Path(m).is_dir():
            raise UserError(f"--model {m}: not a directory")
    inputs = Inputs(
        data=Path(args.data) if args.data else None,
        noise_dir=Path(args.noise_dir) if args.noise_dir else None,
        encoder=encoder_input(args.encoder, cfg.encoder),
        labels=Path(args.labels) if args.labels else None,
        pretrained=Path(args.pretrained) if getattr(args, "pretrained", None) else None,
        models=[Path(m) for m in getattr(args, "models", [])],
    )
    plan = build_plan(args.experiment, cfg, work=work, report=report, inputs=inputs, seeds=seeds)
    check_markers(plan.work_stages, work)
    check_markers(plan.eval_stages, report)
    report.mkdir(parents=True, exist_ok=True)
    save_config(cfg, report / "configs" / "experiments.yaml")
    typed = command_line(args)
    print(f"== {args.experiment}: prerequisites and training in {work}", flush=True)
    t_work = run_stages(plan.ordered_work_stages(), work) if plan.work_stages else {}
    print(f"== {args.experiment}: evaluation in {report / 'eval'}", flush=True)
    t_eval = run_stages(plan.eval_stages, report)
    path = write_report(
        args.experiment, plan, command=typed, timings={**t_work, **t_eval},
    )
    print(f"report: {path}")
    return 0
