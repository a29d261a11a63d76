"""The stages of ``avsr demo``: where each writes and the ``avsr`` commands it runs.

Each ``*_commands`` function builds one stage's command lines from the
:class:`~tasks.demo_config.DemoConfig` and the run's :class:`DemoPaths`;
:func:`build_stages` puts them in order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from avsr.corpus.encoder import resolve_demo_encoder
from tasks.demo_config import DemoConfig
from tasks.stages import Stage, avsr_command

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def encoder_unit_layer(encoder: str) -> int:
    """Layer whose output is clustered: 3/4 of the depth (18 of 24, 36 of 48)."""
    from avsr.models.encoders import load_encoder

    enc = load_encoder(encoder)
    return max(1, round(len(enc.encoder.layers) * 3 / 4))


def set_args(overrides: list[str]) -> list[str]:
    """``[k=v, ...]`` -> ``["--set", "k=v", ...]`` for an ``avsr`` command line."""
    return [x for o in overrides for x in ("--set", o)]


class DemoPaths:
    """Where each stage of a demo run in ``out`` writes (``encoder``: ``--encoder``, a real
    XLS-R, or None for the stage-0 encoder)."""

    def __init__(self, out: Path, encoder: str | None) -> None:
        self.out, self.encoder = out, encoder
        self.corpus = out / "corpus"
        self.noise = self.corpus / "noise"
        self.data = out / "data"
        self.stage0 = out / "stage0"
        self.units = out / "units"
        self.pretrained = out / "pretrain"
        self.eval = out / "eval"
        self.encoder_path = encoder or str(self.stage0 / "run" / "encoder")
        """The encoder the units and AV pretraining start from."""

    def finetuned(self, name: str) -> Path:
        """Run folder of fine-tuning ``name`` (``a``, ``av`` or ``avst``)."""
        return self.out / f"finetune_{name}"

    def start(self, init: str) -> Path:
        """The model a fine-tuning with ``init`` (a key of :data:`STARTS`) starts from."""
        return self.pretrained / "model" if init == "pretrained" else self.finetuned(STARTS[init].run) / "model"


@dataclass(frozen=True)
class Start:
    """What a fine-tuning's ``init`` names: the run it comes after and its words."""

    run: str | None
    """The fine-tuning (``a``, ``av``) whose model it starts from; None: the AV pretrained model."""
    what: str
    """How the summary names that model."""

    @property
    def after(self) -> str | None:
        """The stage the fine-tuning comes after (None: none of the group)."""
        return None if self.run is None else f"finetune_{self.run}"


STARTS = {"pretrained": Start(run=None, what="the AV pretrained model"), "a": Start(run="a", what="the audio-only model"),
          "avsr": Start(run="av", what="the AV model")}
"""The models a demo fine-tuning can start from (``finetune.av.init``, ``finetune.avst.init``)."""


def audio_only_updates(cfg: DemoConfig) -> int:
    """Updates of the audio-only run (``finetune.a.updates``, else the AV run's)."""
    return cfg.finetune.a.updates or cfg.finetune.av.updates


def _budget(cfg: DemoConfig, updates: int) -> list[str]:
    """``--set`` pairs every training stage gets: updates, seed, batch size, data loading."""
    return set_args([f"train.max_updates={updates}", f"train.seed={cfg.seed}", f"data.max_frames_per_batch={cfg.max_frames_per_batch}",
                     f"train.num_workers={cfg.num_workers}", f"data.cache_mb={cfg.cache_mb:g}"])


def corpus_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    c = cfg.corpus
    cmd = avsr_command("corpus", "build", "--size", c.size, "--seed", cfg.seed, "--out", p.corpus, "--workers", c.workers)
    if c.hours is not None:
        cmd += ["--hours", str(c.hours)]
    if c.langs:
        cmd += ["--langs", *c.langs]
    return [cmd]


def preprocess_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    return [avsr_command("preprocess", "--input", p.corpus / "clips.tsv", "--out", p.data, "--workers", cfg.corpus.workers, "--no-progress")]


def stage0_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    f0, k0, l0 = p.stage0 / "mfcc", p.stage0 / "kmeans", p.stage0 / "labels"
    return [
        *[avsr_command("features", "--manifest", p.data / f"{s}.tsv", "--encoder", "mfcc", "--out", f0) for s in ("train", "valid")],
        avsr_command("kmeans", "fit", "--feats", f0, "--out", k0, "--k", cfg.stage0.k, "--sample-share", "1.0", "--seed", cfg.seed),
        avsr_command("kmeans", "apply", "--model", k0, "--feats", f0, "--out", l0, "--data", p.data),
        avsr_command("pretrain", "--stage0", "--config", CONFIGS / "stage0_tiny.yaml", "--data", p.data, "--labels", l0, "--out", p.stage0 / "run",
                     *_budget(cfg, cfg.stage0.updates)),
    ]


def units_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    """Features of the encoder's unit layer and their k-means units (the encoder must exist)."""
    layer = cfg.units.layer or encoder_unit_layer(p.encoder_path)
    feats, km = p.units / "feats", p.units / "kmeans"
    return [
        *[avsr_command("features", "--manifest", p.data / f"{s}.tsv", "--encoder", p.encoder_path, "--layer", layer, "--out", feats) for s in ("train", "valid")],
        avsr_command("kmeans", "fit", "--feats", feats, "--out", km, "--k", cfg.units.k, "--sample-share", "1.0", "--seed", cfg.seed),
        avsr_command("kmeans", "apply", "--model", km, "--feats", feats, "--out", p.units / "labels", "--data", p.data, "--alignments", p.corpus / "alignments"),
    ]


def pretrain_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    return [avsr_command("pretrain", "--config", CONFIGS / "pretrain_tiny.yaml", "--data", p.data, "--labels", p.units / "labels", "--init", p.encoder_path,
                         "--out", p.pretrained, *_budget(cfg, cfg.pretrain.updates), "--set", f"data.noise_dir={p.noise}", *set_args(cfg.pretrain.overrides))]


def _recipe_sets(cfg: DemoConfig) -> list[str]:
    """``--set`` pairs of the fine-tuning recipe shared by all three: vocabulary, learning rate."""
    ft = cfg.finetune
    sets = [f"tokenizer.vocab_size={ft.vocab_size}"] if ft.vocab_size is not None else []
    sets += [f"optim.lr={ft.lr}"] if ft.lr is not None else []
    return set_args(sets)


def _ctc_sets(cfg: DemoConfig, p: DemoPaths, modality: Literal["a", "av"]) -> list[str]:
    """``--set`` pairs of a CTC fine-tuning after its budget: noise, recipe, extras, the run's own."""
    ft = cfg.finetune
    lo, hi = ft.snr_range
    sets = [f"data.noise_dir={p.noise}", f"data.noise_prob={ft.noise_prob}", f"data.noise_snr_range=[{lo}, {hi}]",
            f"data.noise_start_epoch={ft.noise_start_epoch}"]
    run = ft.a if modality == "a" else ft.av
    if run.max_frames_per_batch is not None:
        sets.append(f"data.max_frames_per_batch={run.max_frames_per_batch}")
    extra = []
    if ft.speed_perturb is not None:
        slo, shi = ft.speed_perturb
        extra = set_args([f"data.speed_perturb=[{slo}, {shi}]"])
    own = run.overrides if modality == "a" else av_run_overrides(cfg)
    return set_args(sets) + _recipe_sets(cfg) + extra + set_args(ft.overrides) + set_args(own)


def av_run_overrides(cfg: DemoConfig) -> list[str]:
    """``finetune.av.overrides`` as run: ``distill.*`` (distillation from the ``--init``
    model) only when the AV run starts from the audio-only model; from the pretrained model
    (``finetune.av.init: pretrained``) there is no fine-tuned teacher to distil from."""
    run = cfg.finetune.av.overrides
    if cfg.finetune.av.init == "a":
        return list(run)
    return [o for o in run if not o.startswith("distill.")]


def finetune_commands(cfg: DemoConfig, p: DemoPaths, modality: Literal["a", "av"]) -> list[list[str]]:
    """The CTC fine-tuning of AVSR on ``modality`` input (``a``: video zeroed)."""
    ft = cfg.finetune
    updates = audio_only_updates(cfg) if modality == "a" else ft.av.updates
    init = p.start(ft.av.init) if modality == "av" else p.pretrained / "model"
    return [avsr_command("finetune", "--task", "avsr", "--head", "ctc", "--modality", modality, "--data", p.data, "--init", init,
                         "--out", p.finetuned(modality), "--config", CONFIGS / "finetune_tiny.yaml", *_budget(cfg, updates), *_ctc_sets(cfg, p, modality))]


def avst_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    """The seq2seq fine-tuning for X->En translation of one pair, from the encoder of the AV
    recognition model (speech translation from an ASR encoder: it learns far faster than
    from the pretrained encoder on a corpus this small)."""
    avst = cfg.finetune.avst
    return [avsr_command("finetune", "--task", "avst", "--head", "s2s", "--modality", "av", "--data", p.data, "--pair", avst.pair, "--init", p.start(avst.init),
                         "--out", p.finetuned("avst"), "--config", CONFIGS / "finetune_tiny_s2s.yaml", *_budget(cfg, avst.updates),
                         *_recipe_sets(cfg), *set_args(avst.overrides))]


def _grid(cfg: DemoConfig, p: DemoPaths) -> list[str | Path]:
    ev = cfg.eval
    extra = ["--max-clips", str(ev.max_clips)] if ev.max_clips else []
    return ["--data", p.data, "--split", "test", "--noise-dir", p.noise, "--seed", cfg.seed, *extra]


def eval_commands(cfg: DemoConfig, p: DemoPaths, modality: Literal["a", "av"]) -> list[list[str]]:
    """The A (input a, av) or AV (input a, v, av) recognition model on the whole grid."""
    ev = cfg.eval
    grid = [*_grid(cfg, p), "--snr", ev.snrs, "--noise", ev.noises]
    inputs = "a,av" if modality == "a" else "a,v,av"
    return [avsr_command("evaluate", "--model", p.finetuned(modality) / "model", *grid, *_ctc_decoding(cfg, p), "--modality", inputs,
                         "--out", p.eval / f"finetune_{modality}")]


def _ctc_decoding(cfg: DemoConfig, p: DemoPaths) -> list[str | Path]:
    """``eval.ctc_decoder`` as ``avsr evaluate`` flags (none for greedy, its default)."""
    if cfg.eval.ctc_decoder == "greedy":
        return []
    return ["--decoder", "beam", "--vocab", p.data / "train.wrd"]


def eval_avst_commands(cfg: DemoConfig, p: DemoPaths) -> list[list[str]]:
    """The AVST model on clean audio and babble 0 dB, A and AV input."""
    pair = cfg.finetune.avst.pair
    return [avsr_command("evaluate", "--model", p.finetuned("avst") / "model", *_grid(cfg, p), "--pair", pair, "--snr", "clean,0",
                         "--noise", "babble", "--modality", "a,av", "--out", p.eval / f"finetune_avst_{pair.split('-')[0]}")]


def build_stages(cfg: DemoConfig, out: Path, encoder: str | None) -> list[Stage]:
    """The demo's stages in order; each builds its commands when it runs (the units need
    the stage-0 encoder on disk). ``encoder`` (``--encoder``) overrides ``cfg.encoder``."""
    encoder = resolve_demo_encoder(encoder or cfg.encoder)
    p = DemoPaths(out=out, encoder=encoder)

    def step(fn: Callable[..., list[list[str]]], *args: object) -> Callable[[], list[list[str]]]:
        return functools.partial(fn, cfg, p, *args)

    ft = cfg.finetune
    av_from, avst_from = STARTS[ft.av.init], STARTS[ft.avst.init]

    return [
        Stage(name="corpus", title="build the embedded corpus", commands=step(corpus_commands)),
        Stage(name="preprocess", title="preprocess videos -> lip ROIs, audio, manifests", commands=step(preprocess_commands)),
        Stage(name="stage0", title="stage 0: audio-only stand-in encoder (MFCC units, masked prediction)", commands=step(stage0_commands),
              skip_reason=f"starting from the encoder {encoder}" if encoder else None),
        Stage(name="units", title="layer-N encoder features and faiss k-means units", commands=step(units_commands)),
        Stage(name="pretrain", title="continued AV pretraining on the units", commands=step(pretrain_commands)),
        # each fine-tuning and evaluation starts once the model it needs is there, side by side with the others;
        # the evaluations in the background (one thread, niced): each training keeps every core to its end
        Stage(name="finetune_a", title="fine-tune AVSR on audio only (CTC)", commands=step(finetune_commands, "a"), group="finetune"),
        Stage(name="finetune_av", title=f"fine-tune AVSR audio-visual (CTC) from {av_from.what}",
              commands=step(finetune_commands, "av"), group="finetune", after=av_from.after),
        Stage(name="finetune_avst", title=f"fine-tune AVST {ft.avst.pair} (seq2seq) from {avst_from.what}", commands=step(avst_commands),
              group="finetune", after=avst_from.after),
        Stage(name="evaluate_a", title="evaluate the A model: clean and noisy grid, A / AV input", commands=step(eval_commands, "a"),
              group="finetune", after="finetune_a", background=True),
        Stage(name="evaluate_av", title="evaluate the AV model: clean and noisy grid, A / V / AV input", commands=step(eval_commands, "av"),
              group="finetune", after="finetune_av", background=True),
        Stage(name="evaluate_avst", title="evaluate AVST, clean and babble 0 dB, A / AV", commands=step(eval_avst_commands),
              group="finetune", after="finetune_avst", background=True),
    ]
