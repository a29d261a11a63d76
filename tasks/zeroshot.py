"""``avsr zeroshot``: fine-tune on audio only, then test with audio (A) and audio+video (AV).

The zero-shot AV setting of XLAVS-R: an AV-pretrained encoder is fine-tuned
with the video zeroed (``avsr finetune --modality a``), then evaluated on the
same noise grid with A and with AV input in one run. The report prints AV
minus A per noise type and SNR (negative WER differences: the unseen video
helps)::

    avsr zeroshot --init PRETRAINED --data DATA --noise-dir CORPUS/noise --out ZS
    avsr zeroshot --model ZS/model --data DATA --noise-dir CORPUS/noise --out ZS   # skip fine-tuning

Fine-tuning options go to ``avsr finetune`` unchanged: ``--head``, ``--task``,
``--finetune-config FILE`` and ``--finetune-set key=value``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from avsr.checkpoint import read_model_config
from avsr.errors import UserError
from avsr.io import atomic_write_text
from avsr.logging_utils import get_logger
from tasks.cli_args import add_set_arg
from tasks.evaluate import add_grid_arguments, add_output_arguments, config_from_args

if TYPE_CHECKING:
    from avsr.evaluation.results import EvalResults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "Outputs: OUT/finetune (the audio-only fine-tuning run; model in OUT/finetune/model), OUT/eval (results.json, plots), OUT/zeroshot.md"
    f = parser.add_argument_group("audio-only fine-tuning (avsr finetune --modality a)")
    f.add_argument("--init", metavar="DIR", help="pretrained AV (or XLS-R) checkpoint to fine-tune")
    f.add_argument(
        "--model", metavar="DIR", help="an audio-only fine-tuned model: skip fine-tuning"
    )
    f.add_argument(
        "--task", choices=["avsr", "avst"], help="default: the fine-tuning config's (avsr)"
    )
    f.add_argument("--head", choices=["ctc", "s2s"], help="default: the fine-tuning config's")
    f.add_argument("--finetune-config", metavar="YAML", help="config file for avsr finetune")
    add_set_arg(f, "override for avsr finetune (repeatable)", flag="--finetune-set", dest=None)
    add_grid_arguments(parser, model=False)
    add_output_arguments(parser)


def finetune_audio_only(args: argparse.Namespace, out: Path) -> Path:
    """Run ``avsr finetune --modality a`` in this process; return the fine-tuned model dir."""
    from avsr.models.finetuned import is_finetuned_dir

    try:
        from tasks import finetune
    except ModuleNotFoundError as exc:
        raise UserError(
            "the fine-tuning stage (tasks.finetune) is not available; give --model"
        ) from exc
    if not args.init:
        raise UserError(
            "give --init PRETRAINED (to fine-tune on audio only) or --model DIR (already fine-tuned)"
        )
    if not args.data:
        raise UserError("fine-tuning needs --data DATA (a preprocessed folder)")
    argv = [
        "--init",
        str(args.init),
        "--data",
        str(args.data),
        "--modality",
        "a",
        "--out",
        str(out),
    ]
    if args.task:
        argv += ["--task", args.task]
    if args.head:
        argv += ["--head", args.head]
    if args.lang:
        argv += ["--lang", args.lang]
    if args.pair:
        argv += ["--pair", args.pair]
    if args.finetune_config:
        argv += ["--config", args.finetune_config]
    for s in args.finetune_set:
        argv += ["--set", s]
    parser = argparse.ArgumentParser(prog="avsr finetune")
    finetune.add_arguments(parser)
    ft_args = parser.parse_args(argv)
    for k, v in vars(args).items():  # global flags (verbose, quiet) the stage may read
        if not hasattr(ft_args, k) and k in ("verbose", "quiet"):
            setattr(ft_args, k, v)
    rc = int(finetune.main(ft_args) or 0)
    if rc != 0:
        raise UserError(f"audio-only fine-tuning failed (exit status {rc})")
    return find_model_dir(out, is_finetuned_dir)


def find_model_dir(out: Path, is_model: Callable[[Path], bool]) -> Path:
    """The fine-tuned model written under ``out`` (``out`` itself, ``out/best`` or a sub-folder)."""
    for cand in (out, out / "best", out / "model", out / "final"):
        if is_model(cand):
            return cand
    subs = sorted(p for p in out.rglob("config.yaml") if is_model(p.parent))
    if subs:
        return subs[0].parent
    raise UserError(f"{out}: no fine-tuned model found after fine-tuning")


def zeroshot_table(results: EvalResults) -> str:
    """Markdown: AV minus A of the headline metric per noise type and SNR (all languages)."""
    metric = results.metric
    better = "lower" if metric == "wer" else "higher"
    noisy = [s for s in results.snrs if s is not None]
    has_clean = any(s is None for s in results.snrs)
    cols = (["clean"] if has_clean else []) + [f"{s:g} dB" for s in noisy]
    lines = [
        f"## Zero-shot AV: {metric.upper()} of AV minus A (audio-only fine-tuned; {better} is better)",
        "",
        "| noise | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]

    def diff(noise: str, snr: float | None) -> str:
        d = results.value(noise, snr, "av") - results.value(noise, snr, "a")
        return "-" if math.isnan(d) else f"{d:+.1f}"

    for noise in results.noises or ["clean"]:
        vals = [diff("clean", None)] if has_clean else []
        if noise != "clean":
            vals += [diff(noise, s) for s in noisy]
        lines.append(f"| {noise} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    from avsr.evaluation.run import run_evaluation

    log = get_logger("avsr.zeroshot")
    out = Path(args.out)
    if args.model:
        from avsr.runtime import resolve_model_dir

        model_dir = resolve_model_dir(args.model)
    else:
        model_dir = finetune_audio_only(args, out / "finetune")
    cfg_model = read_model_config(model_dir)
    trained = (cfg_model.get("finetune") or {}).get("modality")
    if trained != "a":
        log.warning(
            "%s was fine-tuned with modality %r, not audio only: this is not a zero-shot test",
            model_dir,
            trained,
        )
    args.model = str(model_dir)
    cfg = config_from_args(args)
    cfg.modality = "a,av"
    if cfg.data is None and cfg.manifest is None:
        raise UserError("give --data DATA (with --split) or --manifest FILE.tsv to evaluate on")
    results = run_evaluation(cfg, out / "eval")
    table = zeroshot_table(results)
    atomic_write_text(out / "zeroshot.md", table)
    print(table, end="")
    print(f"results: {out / 'eval' / 'results.json'}")
    return 0
