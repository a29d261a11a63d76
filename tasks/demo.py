"""``avsr demo``: the whole XLAVS-R pipeline on the embedded corpus, resumable.

Stages (each one an ``avsr`` command, logged under ``OUT/logs``; a rerun skips
finished stages):

1. build the embedded corpus;
2. preprocess its raw videos into lip ROIs, audio and manifests;
3. the audio encoder: by default the stand-in XLS-R shipped in the package
   (:mod:`avsr.corpus.encoder`), or a real one (``--encoder``: HF dir, fairseq1 .pt or
   project dir); with ``--set encoder=null``, stage 0 pretrains one on the demo corpus
   (MFCC k-means units, masked prediction, saved in the XLS-R checkpoint format);
4. layer-N features of that encoder and faiss k-means units;
5. continued AV pretraining on the units;
6. fine-tuning and evaluation as a graph (each stage starts once the model it needs exists,
   beside whatever else is running): the audio-only AVSR model, then its evaluation (A and AV
   input, the zero-shot check); the audio-visual AVSR model (from the audio-only one with
   ``finetune.av.init: a``, else from the pretrained model), then AVST for one X->En pair
   from it; the evaluation of each (A, V and AV input), on the clean and noisy grid;
7. a summary (``summary.md``): the evaluation tables, the effect checks of
   :mod:`tasks.demo_checks` in plain words with their margins (also in ``checks.json``),
   the translation BLEU, and the stage times. A full run exits 1 when a check fails;
   ``--quick`` reports them only.

While stages run, a progress line every 15 s names each running stage with its training
update and time left (:mod:`tasks.stage_progress`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avsr.config import parse_override
from avsr.evaluation.results import EvalResults, markdown_table
from avsr.io import atomic_write_json, atomic_write_text
from tasks.demo_checks import (
    Check,
    DemoResults,
    avst_bleu_table,
    avst_pair,
    checks_markdown,
    demo_checks,
    load_demo_results,
    minutes,
)
from tasks.demo_config import DemoConfig
from tasks.demo_stages import CONFIGS, STARTS, audio_only_updates, av_run_overrides, build_stages
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
    parser.add_argument("--encoder", type=str, default=None, help="the audio encoder to start from: a real XLS-R-family encoder (HF dir, fairseq1 .pt or project dir) "
                        "instead of the config's (default: the stand-in shipped in the package; --set encoder=null: stage 0 builds one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a DemoConfig field, e.g. finetune.av.updates=100")


def summary_table(out: Path) -> str:
    """Markdown tables of every evaluation under ``out/eval``."""
    parts = []
    for name in sorted((out / "eval").iterdir()):
        res_path = name / "results.json"
        if res_path.is_file():
            parts.append(f"### {name.name}\n\n" + markdown_table(EvalResults.load(res_path)))
    return "\n\n".join(parts)


def checks_section(d: DemoResults, *, quick: bool) -> tuple[str, list[Check]]:
    """The "Effect checks" section of ``summary.md`` (every goal's cells in plain words and
    the translation BLEU table) and the checks themselves."""
    checks = demo_checks(d)
    body = checks_markdown(checks, avst_bleu_table(d), avst_pair(d))
    if quick:
        body += "\n\n(--quick: a few updates only; these checks are reported, not required.)"
    return "## Effect checks\n\n" + body, checks


def stage_times(timings: dict[str, float], wall: float) -> str:
    """The "Stage times" section: seconds per stage and the wall-clock total."""
    lines = [f"- {k}: {v:.0f}" for k, v in timings.items()]
    lines.append(f"- total (wall clock; independent stages run side by side): {wall:.0f} ({minutes(wall)})")
    return "## Stage times (s)\n\n" + "\n".join(lines)


def distilled(overrides: list[str]) -> str:
    """", distilled from X on clean audio" when the run's overrides set ``distill.teacher``
    (the last such override wins, as on the command line)."""
    teacher = None
    for text in overrides:
        path, value = parse_override(text)
        if path == ["distill", "teacher"]:
            teacher = value
    if teacher is None:
        return ""
    return f", distilled from {'it' if teacher == 'init' else teacher} on clean audio"


CTC_DECODING = {
    "greedy": "greedy (the best path of the CTC output)",
    "train_words": "CTC prefix beam search that outputs only words of the training transcripts (no LM)",
}
"""``eval.ctc_decoder`` in the summary's words."""


def models_section(cfg: DemoConfig) -> str:
    """The "Models" section: what each evaluated model was fine-tuned from, on what, how long."""
    ft = cfg.finetune
    lines = [
        f"- A-only model: CTC on audio alone (video zeroed), from {STARTS['pretrained'].what}, {audio_only_updates(cfg)} updates",
        f"- AV model: CTC on audio + video with modality dropout, from {STARTS[ft.av.init].what}{distilled(av_run_overrides(cfg))}, "
        f"{ft.av.updates} updates",
        f"- AVST model: seq2seq {ft.avst.pair} on audio + video, from {STARTS[ft.avst.init].what}, {ft.avst.updates} updates",
        f"- decoding of the A and AV models: {CTC_DECODING[cfg.eval.ctc_decoder]}; AVST: attention beam search",
    ]
    return "## Models\n\n" + "\n".join(lines)


def summary_report(out: Path, timings: dict[str, float], *, quick: bool, cfg: DemoConfig | None = None) -> tuple[str, list[Check]]:
    """``summary.md`` of a finished demo folder: how the models were made (``cfg``), evaluation
    tables, effect checks, stage times."""
    d = load_demo_results(out)
    section, checks = checks_section(d, quick=quick)
    models = [models_section(cfg)] if cfg is not None else []
    report = "\n\n".join(["# xlavsr demo summary", *models, summary_table(out), section, stage_times(timings, d.wall_seconds)])
    return report + "\n", checks


def main(args: argparse.Namespace) -> int:
    from avsr.config import load_config, save_config

    cfg_path = args.config or (CONFIGS / ("demo_quick.yaml" if args.quick else "demo.yaml"))
    cfg = load_config(DemoConfig, cfg_path, args.overrides)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo.yaml")
    print(f"xlavsr demo -> {out} (config {cfg_path}{', encoder ' + args.encoder if args.encoder else ''})", flush=True)
    timings = run_stages(build_stages(cfg, out, args.encoder), out)

    report, checks = summary_report(out, timings, quick=args.quick, cfg=cfg)
    atomic_write_text(out / "summary.md", report)
    atomic_write_json(out / "checks.json", [c.to_dict() for c in checks])
    print("\n" + report, flush=True)
    print(f"plots and results.json: {out / 'eval'}", flush=True)
    if args.quick:
        return 0
    return 0 if all(c.passed for c in checks) else 1
