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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tasks.stages import Stage, avsr_command, run_stages

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


@dataclass(kw_only=True)
class DemoConfig:
    """Sizes and budgets of the demo."""

    corpus_size: Literal["tiny", "small"] = "small"
    corpus_hours: float | None = None
    langs: list[str] | None = None
    seed: int = 0
    workers: int = 2
    stage0_k: int = 50
    stage0_updates: int = 400
    unit_k: int = 100
    unit_layer: int | None = None
    pretrain_updates: int = 300
    pretrain_overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for the AV pretraining, e.g. ``[model.fusion.kind=add]``."""
    finetune_updates: int = 300
    """Updates of the AV fine-tuning (and of the A one unless ``finetune_a_updates``)."""
    finetune_a_updates: int | None = None
    """Updates of the audio-only fine-tuning. It runs beside the AV one and costs about half
    as much per update (no lip encoder), so it can take more in the same wall time."""
    max_frames_per_batch: int = 200
    finetune_vocab_size: int | None = None
    finetune_lr: float | None = None
    finetune_noise_prob: float = 0.5
    finetune_snr_min: float = -5.0
    finetune_snr_max: float = 5.0
    finetune_noise_start_epoch: int = 0
    """Fine-tuning epochs on clean audio before the noise augmentation starts."""
    finetune_speed_perturb: list[float] | None = None
    """[min, max] speed factor for fine-tuning (``data.speed_perturb``); None: off."""
    finetune_overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for both CTC fine-tunings, e.g. ``[model.apply_mask=true]``."""
    avst_pair: str = "es-en"
    avst_updates: int = 300
    eval_snrs: str = "clean,-5,0,5"
    eval_noises: str = "babble,music,noise"
    eval_max_clips: int | None = None


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
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a DemoConfig field, e.g. finetune_updates=100")


def encoder_unit_layer(encoder: str) -> int:
    """Layer whose output is clustered: 3/4 of the depth (18 of 24, 36 of 48)."""
    from avsr.models.xlsr import load_encoder

    enc = load_encoder(encoder)
    return max(1, round(len(enc.encoder.layers) * 3 / 4))


def set_args(overrides: list[str]) -> list[str]:
    """``[k=v, ...]`` -> ``["--set", "k=v", ...]`` for an ``avsr`` command line."""
    return [x for o in overrides for x in ("--set", o)]


def build_stages(cfg: DemoConfig, out: Path, encoder: str | None) -> list[Stage]:
    corpus, data = out / "corpus", out / "data"
    noise = corpus / "noise"
    stage0 = out / "stage0"
    enc_path = encoder or str(stage0 / "run" / "encoder")
    feats, km, units = out / "units" / "feats", out / "units" / "kmeans", out / "units" / "labels"
    pre = out / "pretrain"
    ft_a, ft_av, ft_st = out / "finetune_a", out / "finetune_av", out / "finetune_avst"
    ev = out / "eval"
    src = cfg.avst_pair.split("-")[0]

    def corpus_cmds() -> list[list[str]]:
        cmd = avsr_command("corpus", "build", "--size", cfg.corpus_size, "--seed", cfg.seed, "--out", corpus, "--workers", cfg.workers)
        if cfg.corpus_hours is not None:
            cmd += ["--hours", str(cfg.corpus_hours)]
        if cfg.langs:
            cmd += ["--langs", *cfg.langs]
        return [cmd]

    def stage0_cmds() -> list[list[str]]:
        f0, k0, l0 = stage0 / "mfcc", stage0 / "kmeans", stage0 / "labels"
        return [
            *[avsr_command("features", "--manifest", data / f"{s}.tsv", "--encoder", "mfcc", "--out", f0) for s in ("train", "valid")],
            avsr_command("kmeans", "fit", "--feats", f0, "--out", k0, "--k", cfg.stage0_k, "--sample-share", "1.0", "--seed", cfg.seed),
            avsr_command("kmeans", "apply", "--model", k0, "--feats", f0, "--out", l0, "--data", data),
            avsr_command("pretrain", "--stage0", "--config", CONFIGS / "stage0_tiny.yaml", "--data", data, "--labels", l0, "--out", stage0 / "run",
                         "--set", f"train.max_updates={cfg.stage0_updates}", "--set", f"train.seed={cfg.seed}", "--set", f"data.max_frames_per_batch={cfg.max_frames_per_batch}"),
        ]

    def units_cmds() -> list[list[str]]:
        layer = cfg.unit_layer or encoder_unit_layer(enc_path)
        return [
            *[avsr_command("features", "--manifest", data / f"{s}.tsv", "--encoder", enc_path, "--layer", layer, "--out", feats) for s in ("train", "valid")],
            avsr_command("kmeans", "fit", "--feats", feats, "--out", km, "--k", cfg.unit_k, "--sample-share", "1.0", "--seed", cfg.seed),
            avsr_command("kmeans", "apply", "--model", km, "--feats", feats, "--out", units, "--data", data, "--alignments", corpus / "alignments"),
        ]

    def pretrain_cmds() -> list[list[str]]:
        return [avsr_command("pretrain", "--config", CONFIGS / "pretrain_tiny.yaml", "--data", data, "--labels", units, "--init", enc_path, "--out", pre,
                             "--set", f"train.max_updates={cfg.pretrain_updates}", "--set", f"train.seed={cfg.seed}", "--set", f"data.max_frames_per_batch={cfg.max_frames_per_batch}",
                             "--set", f"data.noise_dir={noise}", *set_args(cfg.pretrain_overrides))]

    def finetune_cmd(modality: str, run: Path) -> list[list[str]]:
        updates = cfg.finetune_a_updates if modality == "a" and cfg.finetune_a_updates else cfg.finetune_updates
        return [avsr_command("finetune", "--task", "avsr", "--head", "ctc", "--modality", modality, "--data", data, "--init", pre / "model", "--out", run,
                             "--config", CONFIGS / "finetune_tiny_ctc.yaml", "--set", f"train.max_updates={updates}", "--set", f"train.seed={cfg.seed}", "--set", f"data.max_frames_per_batch={cfg.max_frames_per_batch}",
                             "--set", f"data.noise_dir={noise}", "--set", f"data.noise_prob={cfg.finetune_noise_prob}",
                             "--set", f"data.noise_snr_range=[{cfg.finetune_snr_min}, {cfg.finetune_snr_max}]",
                             "--set", f"data.noise_start_epoch={cfg.finetune_noise_start_epoch}", *finetune_extra())]

    def finetune_extra() -> list[str]:
        extra = []
        if cfg.finetune_vocab_size is not None:
            extra += ["--set", f"tokenizer.vocab_size={cfg.finetune_vocab_size}"]
        if cfg.finetune_lr is not None:
            extra += ["--set", f"optim.lr={cfg.finetune_lr}"]
        if cfg.finetune_speed_perturb is not None:
            lo, hi = cfg.finetune_speed_perturb
            extra += ["--set", f"data.speed_perturb=[{lo}, {hi}]"]
        return extra + set_args(cfg.finetune_overrides)

    def avst_cmds() -> list[list[str]]:
        return [avsr_command("finetune", "--task", "avst", "--head", "s2s", "--modality", "av", "--data", data, "--pair", cfg.avst_pair, "--init", pre / "model",
                             "--out", ft_st, "--config", CONFIGS / "finetune_avst_tiny.yaml", "--set", f"train.max_updates={cfg.avst_updates}", "--set", f"train.seed={cfg.seed}", "--set", f"data.max_frames_per_batch={cfg.max_frames_per_batch}", "--set", "train.num_workers=0",
                             *(["--set", f"tokenizer.vocab_size={cfg.finetune_vocab_size}"] if cfg.finetune_vocab_size is not None else []),
                             *(["--set", f"optim.lr={cfg.finetune_lr}"] if cfg.finetune_lr is not None else []))]

    def eval_cmds() -> list[list[str]]:
        extra = ["--max-clips", str(cfg.eval_max_clips)] if cfg.eval_max_clips else []
        grid = ["--noise-dir", noise, "--snr", cfg.eval_snrs, "--noise", cfg.eval_noises, "--seed", cfg.seed, *extra]
        return [
            avsr_command("evaluate", "--model", ft_a / "model", "--data", data, "--split", "test", *grid, "--modality", "a,av", "--out", ev / "finetune_a"),
            avsr_command("evaluate", "--model", ft_av / "model", "--data", data, "--split", "test", *grid, "--modality", "a,v,av", "--out", ev / "finetune_av"),
            avsr_command("evaluate", "--model", ft_st / "model", "--data", data, "--pair", cfg.avst_pair, "--split", "test", "--noise-dir", noise,
                         "--snr", "clean,0", "--noise", "babble", "--modality", "a,av", "--seed", cfg.seed, *extra, "--out", ev / f"finetune_avst_{src}"),
        ]

    return [
        Stage(name="corpus", title="build the embedded corpus", commands=corpus_cmds),
        Stage(name="preprocess", title="preprocess videos -> lip ROIs, audio, manifests",
              commands=lambda: [avsr_command("preprocess", "--input", corpus / "clips.tsv", "--out", data, "--workers", cfg.workers, "--no-progress")]),
        Stage(name="stage0", title="stage 0: audio-only stand-in encoder (MFCC units, masked prediction)", commands=stage0_cmds,
              skip_reason=f"using --encoder {encoder}" if encoder else None),
        Stage(name="units", title="layer-N encoder features and faiss k-means units", commands=units_cmds),
        Stage(name="pretrain", title="continued AV pretraining on the units", commands=pretrain_cmds),
        Stage(name="finetune_a", title="fine-tune AVSR on audio only (CTC)", commands=lambda: finetune_cmd("a", ft_a), group="finetune", nice=5),
        Stage(name="finetune_av", title="fine-tune AVSR audio-visual (CTC)", commands=lambda: finetune_cmd("av", ft_av), group="finetune"),
        Stage(name="finetune_avst", title=f"fine-tune AVST {cfg.avst_pair} (seq2seq)", commands=avst_cmds, group="finetune", nice=10),
        Stage(name="evaluate", title="evaluate clean and noisy grid, A / V / AV", commands=eval_cmds),
    ]


@dataclass(kw_only=True)
class Check:
    name: str
    passed: bool
    detail: str


def effect_checks(out: Path) -> list[Check]:
    """The effects the demo exists to show, read from the evaluation results."""
    from avsr.evaluation.results import EvalResults

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
    from avsr.evaluation.results import EvalResults, markdown_table

    parts = []
    for name in sorted((out / "eval").iterdir()):
        res_path = name / "results.json"
        if res_path.is_file():
            parts.append(f"### {name.name}\n\n" + markdown_table(EvalResults.load(res_path)))
    return "\n\n".join(parts)


def main(args: argparse.Namespace) -> int:
    from avsr.config import load_config, save_config
    from avsr.io import atomic_write_json, atomic_write_text

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
    return json.loads((out / "checks.json").read_text())
