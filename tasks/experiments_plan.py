"""The stages of ``avsr experiments``: config, shared prerequisites, training runs, evaluations.

Every step is an ``avsr ...`` subprocess (:mod:`tasks.stages`), exactly what a
user would type. Two folders:

- WORK (default ``REPORT/work``): corpus, preprocessed data, the stage-0
  encoder (when no encoder is given), units (computed once and reused), and
  the training runs under ``WORK/runs/{name}-{hash}``; the hash covers the
  whole command, so two experiments pointed at the same WORK share a run
  exactly when they would run the same command (e.g. the CNN front end's AV
  fine-tuning is the AV arm of ``zeroshot`` and the model of ``noise-types``).
- REPORT: one evaluation per arm and seed under ``REPORT/eval/{arm}-s{seed}``,
  then the report.

Seeds vary the AV pretraining and fine-tuning (``train.seed``, ``data.seed``);
the prerequisites and the test-noise grid (``evaluate.seed``) stay fixed, so
every arm and seed is scored on the same deterministic grid.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from avsr.errors import UserError
from tasks.stages import Stage, avsr_command

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("frontend", "zeroshot", "noise-types")


@dataclass(kw_only=True)
class StepSection:
    """A stage config file (repository-relative or a path) and ``--set`` overrides for it."""

    config: str
    """The stage's config file."""
    overrides: list[str] = field(default_factory=list)
    """``--set KEY=VALUE`` given to the stage."""


@dataclass(kw_only=True)
class CorpusSection:
    """The embedded corpus (``avsr corpus build``) built when no ``--data`` is given."""

    size: Literal["tiny", "small"] = "tiny"
    """Corpus size preset."""
    seed: int = 0
    """Seed of the corpus build."""
    hours: float | None = None
    """Total hours of speech (None: the size preset's clip counts)."""
    langs: list[str] | None = None
    """Languages (None: all nine of the corpus)."""
    workers: int = 2
    """Worker processes of the build."""


@dataclass(kw_only=True)
class UnitsSection:
    """MFCC k-means units for stage 0, then k-means on layer ``layer`` of the encoder."""

    mfcc_k: int = 50
    """Units of the MFCC k-means (stage 0 targets)."""
    k: int = 100
    """Units of the encoder-feature k-means (AV pretraining targets)."""
    layer: int = 3
    """Encoder block whose output is clustered (tiny encoder: 3 of 4; XLS-R 300M: 18)."""
    sample_share: float = 1.0
    """Share of the training frames k-means is fitted on."""
    niter: int = 20
    """k-means iterations."""
    splits: list[str] = field(default_factory=lambda: ["train", "valid"])
    """Splits that get features and unit labels."""


@dataclass(kw_only=True)
class GridSection:
    """The evaluation grid, the same for every arm and seed (``avsr evaluate`` flags)."""

    split: str = "test"
    """Test split."""
    snr: str = "clean,-10,-5,0,5,10"
    """SNRs in dB and/or ``clean``."""
    noise: str = "babble,music,noise"
    """Noise types of ``frontend`` and ``zeroshot``."""
    noise_types: str = "babble,music,noise,speech"
    """Noise types of ``noise-types``."""
    modality: str = "a,av"
    """Input modalities tested."""
    seed: int = 0
    """Seed of the per-clip test noise (fixed across training seeds)."""
    max_clips: int | None = None
    """Score only the first N clips (None: all)."""
    plots: bool = True
    """Per-seed plots of ``avsr evaluate`` (the report draws its own either way)."""
    overrides: list[str] = field(default_factory=list)
    """``--set KEY=VALUE`` given to every evaluation."""


@dataclass(kw_only=True)
class ExperimentsConfig:
    """Options of ``avsr experiments`` (``configs/experiments_*.yaml``)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Training seeds (``--seeds``)."""
    encoder: str | None = None
    """Audio encoder the experiments start from: ``shipped`` (the stand-in encoder in the
    package, :data:`avsr.corpus.encoder.SHIPPED_ENCODER`), a path to a real XLS-R (HF dir,
    fairseq1 .pt or project dir), or None: stage 0 builds one in WORK. ``--encoder`` overrides
    it."""
    corpus: CorpusSection = field(default_factory=CorpusSection)
    """The embedded corpus built when no ``--data`` is given."""
    preprocess_workers: int = 2
    """Worker processes of ``avsr preprocess``."""
    stage0: StepSection = field(
        default_factory=lambda: StepSection(config="configs/stage0_tiny.yaml")
    )
    """The audio-only stage-0 pretraining."""
    units: UnitsSection = field(default_factory=UnitsSection)
    """Features and k-means units."""
    pretrain: StepSection = field(
        default_factory=lambda: StepSection(config="configs/pretrain_tiny.yaml")
    )
    """The AV pretraining."""
    finetune: StepSection = field(
        default_factory=lambda: StepSection(config="configs/finetune_tiny.yaml")
    )
    """The fine-tuning."""
    train_overrides: list[str] = field(default_factory=list)
    """``--set`` given to every training stage (stage 0, AV pretraining, fine-tuning)."""
    frontends: list[Literal["cnn", "fbank"]] = field(default_factory=lambda: ["cnn", "fbank"])
    """Audio front ends compared by ``frontend``."""
    noise_augmentation: bool = True
    """Pass the noise folder to pretraining and fine-tuning (``data.noise_dir``)."""
    evaluate: GridSection = field(default_factory=GridSection)
    """The evaluation grid."""


def resolve_file(path: str | Path, what: str) -> Path:
    """A config path as given (relative to the working directory) or relative to the repo."""
    p = Path(path)
    for cand in (p, ROOT / p):
        if cand.is_file():
            return cand.resolve()
    raise UserError(f"{path}: {what} not found (relative paths are tried from here and from {ROOT})")


def _sets(items: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in items:
        out += ["--set", s]
    return out


def run_hash(cmd: Sequence[str]) -> str:
    """Short hash of a command without its executable and ``--out`` value."""
    args = list(cmd[1:])
    if "--out" in args:
        i = args.index("--out")
        del args[i : i + 2]
    return hashlib.sha1(json.dumps(args).encode()).hexdigest()[:8]


@dataclass(kw_only=True)
class Inputs:
    """What the user gave instead of building it (``None``: build)."""

    data: Path | None = None
    """Preprocessed DATA folder (``--data``)."""
    noise_dir: Path | None = None
    """MUSAN-layout noise folder (``--noise-dir``)."""
    encoder: Path | None = None
    """Audio encoder replacing stage 0 (``--encoder``, else the config's ``encoder``)."""
    labels: Path | None = None
    """Unit labels replacing the k-means stages (``--labels``)."""
    pretrained: Path | None = None
    """AV-pretrained model replacing pretraining (``--pretrained``)."""
    models: list[Path] = field(default_factory=list)
    """Fine-tuned models to evaluate instead of training (``--model``)."""


@dataclass(kw_only=True)
class Arm:
    """One compared system: its evaluations per seed (stage names and result folders)."""

    name: str
    """Arm name in tables and plots."""
    description: str
    """One line on what the system is."""
    evals: dict[int, Path] = field(default_factory=dict)
    """Evaluation folder per seed."""


class Plan:
    """Stages of one experiment: prerequisites and training in WORK, evaluations in REPORT."""

    def __init__(
        self, cfg: ExperimentsConfig, *, work: Path, report: Path, inputs: Inputs, seeds: list[int]
    ) -> None:
        self.cfg = cfg
        self.work = work.resolve()
        self.report = report.resolve()
        self.inputs = inputs
        self.seeds = seeds
        self.work_stages: list[Stage] = []
        self.eval_stages: list[Stage] = []
        self.arms: dict[str, Arm] = {}
        self.config_files: dict[str, Path] = {}
        self._prereqs_added = False

    # ----------------------------------------------------------------- paths
    @property
    def data(self) -> Path:
        return self.inputs.data.resolve() if self.inputs.data else self.work / "data"

    @property
    def noise_dir(self) -> Path | None:
        if self.inputs.noise_dir:
            return self.inputs.noise_dir.resolve()
        if self.inputs.data:
            return None
        return self.work / "corpus" / "noise"

    @property
    def encoder(self) -> Path:
        return self.inputs.encoder.resolve() if self.inputs.encoder else self.work / "stage0" / "encoder"

    @property
    def labels(self) -> Path:
        return self.inputs.labels.resolve() if self.inputs.labels else self.work / "units"

    def _file(self, key: str, section: StepSection) -> Path:
        path = resolve_file(section.config, f"{key} config")
        self.config_files[key] = path
        return path

    # --------------------------------------------------------- prerequisites
    def add_data(self) -> None:
        if self.inputs.data or any(s.name == "corpus" for s in self.work_stages):
            return
        c = self.cfg.corpus
        corpus = self.work / "corpus"
        cmd = ["corpus", "build", "--out", corpus, "--size", c.size, "--seed", str(c.seed)]
        cmd += ["--workers", str(c.workers)]
        if c.hours is not None:
            cmd += ["--hours", str(c.hours)]
        if c.langs:
            cmd += ["--langs", *c.langs]
        size = c.size if c.hours is None else f"{c.hours:g} h"
        self._work("corpus", f"corpus ({size}, seed {c.seed})", [avsr_command(*cmd)])
        pre = ["preprocess", "--input", corpus / "clips.tsv", "--out", self.data]
        pre += ["--workers", str(self.cfg.preprocess_workers), "--no-progress"]
        self._work("preprocess", "preprocess (lip ROIs, audio, manifests)", [avsr_command(*pre)])

    def _units_commands(self, encoder: str | Path, layer: int | None, k: int, tag: str) -> list[list[str]]:
        u = self.cfg.units
        feats, km, lab = self.work / f"feats_{tag}", self.work / f"kmeans_{tag}", self.work / (
            "units" if tag != "mfcc" else "units_mfcc"
        )
        cmds = []
        for split in u.splits:
            c = ["features", "--manifest", self.data / f"{split}.tsv", "--encoder", encoder]
            c += ["--out", feats] + (["--layer", str(layer)] if layer is not None else [])
            cmds.append(avsr_command(*c))
        fit = ["kmeans", "fit", "--feats", feats, "--split", "train", "--out", km, "--k", str(k)]
        fit += ["--sample-share", str(u.sample_share), "--niter", str(u.niter), "--seed", "0"]
        cmds.append(avsr_command(*fit))
        cmds.append(avsr_command("kmeans", "apply", "--model", km, "--feats", feats, "--out", lab, "--data", self.data))
        return cmds

    def add_units(self) -> None:
        """Stage 0 (unless --encoder) and the units for AV pretraining (unless --labels)."""
        if self._prereqs_added:
            return
        self._prereqs_added = True
        self.add_data()
        u = self.cfg.units
        if self.inputs.encoder is None:
            self._work(
                "units_mfcc",
                f"MFCC features + k-means ({u.mfcc_k} units) for stage 0",
                self._units_commands("mfcc", None, u.mfcc_k, "mfcc"),
            )
            s0 = ["pretrain", "--stage0", "--config", self._file("stage0", self.cfg.stage0)]
            s0 += ["--data", self.data, "--labels", self.work / "units_mfcc", "--out", self.work / "stage0"]
            s0 += _sets([*self.cfg.stage0.overrides, *self.cfg.train_overrides])
            self._work("stage0", "stage 0: audio-only stand-in encoder", [avsr_command(*s0)])
        if self.inputs.labels is None:
            self._work(
                "units",
                f"layer-{u.layer} features + k-means ({u.k} units)",
                self._units_commands(self.encoder, u.layer, u.k, f"layer{u.layer}"),
            )

    # -------------------------------------------------------------- training
    def _seed_sets(self, seed: int) -> list[str]:
        sets = [f"train.seed={seed}", f"data.seed={seed}"]
        if self.cfg.noise_augmentation and self.noise_dir is not None:
            sets.append(f"data.noise_dir={self.noise_dir}")
        return sets

    def pretrained(self, frontend: str, seed: int) -> Path:
        """AV pretraining with ``frontend`` and ``seed``; returns the model dir."""
        if self.inputs.pretrained is not None:
            return self.inputs.pretrained.resolve()
        self.add_units()
        cmd = ["pretrain", "--config", self._file("pretrain", self.cfg.pretrain), "--data", self.data]
        cmd += ["--labels", self.labels, "--init", self.encoder]
        sets = [f"model.audio_frontend={frontend}", *self._seed_sets(seed)]
        cmd += _sets([*self.cfg.pretrain.overrides, *self.cfg.train_overrides, *sets])
        return self._run(f"pretrain-{frontend}-s{seed}", f"AV pretraining, {frontend} front end, seed {seed}", cmd)

    def finetuned(self, frontend: str, modality: str, seed: int) -> Path:
        """Fine-tuning for AVSR (head from the fine-tuning config) on ``modality`` input."""
        init = self.pretrained(frontend, seed)
        cmd = ["finetune", "--config", self._file("finetune", self.cfg.finetune), "--task", "avsr"]
        cmd += ["--modality", modality, "--data", self.data, "--init", init]
        cmd += _sets([*self.cfg.finetune.overrides, *self.cfg.train_overrides, *self._seed_sets(seed)])
        tag = "pre" if self.inputs.pretrained is not None else frontend
        return self._run(
            f"finetune-{tag}-{modality}-s{seed}",
            f"fine-tuning ({modality.upper()} input), {frontend} front end, seed {seed}",
            cmd,
        )

    def _run(self, name: str, title: str, cmd: list[str | Path]) -> Path:
        full = avsr_command(*cmd)
        stage = f"{name}-{run_hash(full)}"
        out = self.work / "runs" / stage
        if not any(s.name == stage for s in self.work_stages):
            # training runs of one kind (all AV pretrainings, all fine-tunings) run side by side
            self._work(stage, title, [avsr_command(*cmd, "--out", out)], group=name.split("-")[0])
        return out / "model"

    # ------------------------------------------------------------ evaluation
    def evaluate(self, arm: str, description: str, seed: int, model: Path, noise: str) -> None:
        g = self.cfg.evaluate
        out = self.report / "eval" / f"{arm}-s{seed}"
        cmd = ["evaluate", "--model", model, "--data", self.data, "--split", g.split]
        snrs = [s for s in g.snr.split(",") if s.strip()]
        if any(s.strip() != "clean" for s in snrs):
            if self.noise_dir is None:
                raise UserError("the SNR grid has noisy conditions: give --noise-dir with --data")
            cmd += ["--noise-dir", self.noise_dir, "--noise", noise]
        cmd += ["--snr", g.snr, "--modality", g.modality, "--seed", str(g.seed), "--out", out]
        if g.max_clips is not None:
            cmd += ["--max-clips", str(g.max_clips)]
        if not g.plots:
            cmd.append("--no-plots")
        cmd += _sets(g.overrides)
        name = f"eval-{arm}-s{seed}"
        self.eval_stages.append(
            Stage(name=name, title=f"evaluate {arm}, seed {seed}", commands=_const([avsr_command(*cmd)]))
        )
        self.arms.setdefault(arm, Arm(name=arm, description=description)).evals[seed] = out

    def _work(self, name: str, title: str, cmds: list[list[str]], group: str | None = None) -> None:
        self.work_stages.append(Stage(name=name, title=title, commands=_const(cmds), group=group))

    def ordered_work_stages(self) -> list[Stage]:
        """Work stages with prerequisites first, then every pretraining, then every fine-tuning
        (a fine-tuning needs only its pretraining, so each kind can run as one side-by-side group)."""
        rank = {"pretrain": 1, "finetune": 2}
        return sorted(self.work_stages, key=lambda st: rank.get(st.group or "", 0))


def _const(cmds: list[list[str]]):  # noqa: ANN202
    return lambda: cmds


def check_markers(stages: Sequence[Stage], folder: Path) -> None:
    """A finished stage recorded with other commands (other settings, same folder) is an
    error: its outputs would silently stand for a different experiment."""
    for st in stages:
        marker = folder / ".stages" / f"{st.name}.json"
        if not marker.is_file():
            continue
        try:
            old = [shlex.split(c)[1:] for c in json.loads(marker.read_text())["commands"]]
        except (OSError, ValueError, KeyError):
            continue
        new = [[str(a) for a in c][1:] for c in st.commands()]
        if old != new:
            raise UserError(
                f"{folder}: stage '{st.name}' was run with other settings "
                f"(was: {shlex.join(old[0]) if old else '?'}); use a new output folder (or --work)"
            )


def build_plan(
    experiment: str, cfg: ExperimentsConfig, *, work: Path, report: Path, inputs: Inputs, seeds: list[int]
) -> Plan:
    """All stages of ``experiment`` for ``seeds``."""
    if experiment not in EXPERIMENTS:
        raise UserError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
    plan = Plan(cfg, work=work, report=report, inputs=inputs, seeds=seeds)
    plan.add_data()
    g = cfg.evaluate
    if experiment == "frontend":
        if inputs.pretrained is not None:
            raise UserError("frontend trains one pretrained model per front end: --pretrained does not apply")
        names = {"cnn": "learnable CNN on the waveform (XLS-R)", "fbank": "log-mel filterbank (AV-HuBERT)"}
        for fe in cfg.frontends:
            for seed in seeds:
                model = plan.finetuned(fe, "av", seed)
                plan.evaluate(fe, f"{names[fe]}; AV-pretrained, AV fine-tuned", seed, model, g.noise)
    elif experiment == "zeroshot":
        for seed in seeds:
            plan.evaluate("A-finetuned", "AV-pretrained (CNN front end), fine-tuned on audio only (video zeroed)",
                          seed, plan.finetuned("cnn", "a", seed), g.noise)
        for seed in seeds:
            plan.evaluate("AV-finetuned", "AV-pretrained (CNN front end), fine-tuned on audio + video",
                          seed, plan.finetuned("cnn", "av", seed), g.noise)
    else:  # noise-types
        if inputs.models:
            for i, model in enumerate(inputs.models):
                plan.evaluate("AV-finetuned", f"given model {model}", i, model.resolve(), g.noise_types)
        else:
            for seed in seeds:
                plan.evaluate("AV-finetuned", "AV-pretrained (CNN front end), fine-tuned on audio + video",
                              seed, plan.finetuned("cnn", "av", seed), g.noise_types)
    return plan
