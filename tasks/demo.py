"""``avsr demo``: the whole XLAVS-R pipeline on the embedded corpus, resumable.

Stages (each one an ``avsr`` command, logged under ``OUT/logs``; a rerun skips
finished stages):

1. build the embedded corpus;
2. preprocess its raw videos into lip ROIs, audio and manifests;
3. stage 0, the stand-in for XLS-R: MFCC k-means units, then an audio-only
   encoder pretrained by masked prediction, saved in the XLS-R checkpoint format
   (skipped with ``--encoder``, which takes a real XLS-R: HF dir or fairseq1 .pt);
4. layer-N features of that encoder and faiss k-means units;
5. continued AV pretraining on the units;
6. fine-tuning: AVSR audio-only, AVSR audio-visual, AVST for one X->En pair;
7. evaluation on the clean and noisy grid for A and AV input;
8. a summary table and the effect checks (AV beats A under babble at 0 and -5 dB;
   zero-shot AV beats the audio-only model's own A input at -5 dB).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from avsr.evaluation.results import EvalResults, markdown_table
from avsr.io import atomic_write_json, atomic_write_text
from tasks.demo_config import DemoConfig
from tasks.demo_stages import CONFIGS, build_stages
from tasks.stages import run_stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run every stage of XLAVS-R on the embedded corpus (CPU, nothing downloaded): corpus, "
        "preprocessing, stage-0 encoder, units, AV pretraining, fine-tuning (A, AV, AVST), "
        "noisy evaluation, summary and effect checks. A rerun skips finished stages."
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--config", type=Path, default=None, help="DemoConfig YAML (default configs/demo.yaml)")
    parser.add_argument("--quick", action="store_true", help="reduced run (configs/demo_quick.yaml): tiny corpus, few updates; checks are reported, not required")
    parser.add_argument("--encoder", type=str, default=None, help="a real XLS-R-family encoder (HF dir, fairseq1 .pt or project dir): skips stage 0")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a DemoConfig field, e.g. finetune.av.updates=100")


@dataclass(kw_only=True)
class Check:
    """One effect check of the demo."""

    name: str
    """The effect, e.g. ``AV WER < A WER, babble 0 dB (AV fine-tuned model)``."""
    passed: bool
    """Whether the measured numbers show it."""
    detail: str
    """The numbers compared, e.g. ``A 99.1%  AV 76.0%``."""


def effect_checks(out: Path) -> list[Check]:
    """The effects the demo exists to show, read from the evaluation results."""
    av_run = EvalResults.load(out / "eval" / "finetune_av" / "results.json")
    a_run = EvalResults.load(out / "eval" / "finetune_a" / "results.json")
    checks = []
    for snr in (0.0, -5.0):
        wa, wav = av_run.value("babble", snr, "a"), av_run.value("babble", snr, "av")
        checks.append(Check(name=f"AV WER < A WER, babble {snr:g} dB (AV fine-tuned model)", passed=wav < wa,
                            detail=f"A {wa:.1f}%  AV {wav:.1f}%"))
    za, zav = a_run.value("babble", -5.0, "a"), a_run.value("babble", -5.0, "av")
    checks.append(Check(name="zero-shot AV: audio-only fine-tuned model, AV WER < its A WER, babble -5 dB",
                        passed=zav < za, detail=f"A {za:.1f}%  AV {zav:.1f}%"))
    return checks


def summary_table(out: Path) -> str:
    """Markdown tables of every evaluation under ``out/eval``."""
    parts = []
    for name in sorted((out / "eval").iterdir()):
        res_path = name / "results.json"
        if res_path.is_file():
            parts.append(f"### {name.name}\n\n" + markdown_table(EvalResults.load(res_path)))
    return "\n\n".join(parts)


def main(args: argparse.Namespace) -> int:
    from avsr.config import load_config, save_config

    cfg_path = args.config or (CONFIGS / ("demo_quick.yaml" if args.quick else "demo.yaml"))
    cfg = load_config(DemoConfig, cfg_path, args.overrides)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo.yaml")
    print(f"xlavsr demo -> {out} (config {cfg_path}{', encoder ' + args.encoder if args.encoder else ''})", flush=True)
    timings = run_stages(build_stages(cfg, out, args.encoder), out)

    table = summary_table(out)
    checks = effect_checks(out)
    lines = [table, "", "## Effect checks", ""]
    for c in checks:
        lines.append(f"- {'PASS' if c.passed else 'FAIL'}: {c.name} ({c.detail})")
    if args.quick:
        lines.append("- (--quick: a few updates only; these checks are reported, not required)")
    report = "# xlavsr demo summary\n\n" + "\n".join(lines) + "\n\n## Stage times (s)\n\n" + "\n".join(
        f"- {k}: {v:.0f}" for k, v in timings.items()) + f"\n- total (wall clock; finetune_a and finetune_av run side by side): {total_wall(out):.0f}\n"
    atomic_write_text(out / "summary.md", report)
    atomic_write_json(out / "checks.json", [c.__dict__ for c in checks])
    print("\n" + report, flush=True)
    print(f"plots and results.json: {out / 'eval'}", flush=True)
    if args.quick:
        return 0
    return 0 if all(c.passed for c in checks) else 1


def total_wall(out: Path) -> float:
    """Wall-clock seconds of all stages (from ``timings.json``; side-by-side stages overlap)."""
    return float(json.loads((out / "timings.json").read_text())["total_wall"])


def load_checks(out: Path) -> list[dict[str, object]]:
    """The effect checks a finished demo wrote (``checks.json``)."""
    return json.loads((out / "checks.json").read_text())
