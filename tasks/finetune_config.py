"""Options of ``avsr finetune`` (one typed dataclass; MuAViC recipe defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from avsr.config import ConfigError, parse_override, read_config_file
from avsr.data.config import DataConfig
from avsr.errors import UserError
from avsr.models.av.config import AVModelConfig, MaskingSection, ModalityDropoutSection
from avsr.models.distill import DistillRows
from avsr.models.heads.ctc import CTCHeadConfig
from avsr.models.heads.decoder import DecoderConfig
from avsr.train.config import OptimConfig, TrainConfig
from tasks.cli_args import load_task_config

Mode = Literal["av", "a", "v"]
"""An input mode: audio-visual, audio (video zeroed), video (audio zeroed)."""


@dataclass(kw_only=True)
class TokenizerSection:
    """The SentencePiece unigram model trained on the run's training targets."""

    vocab_size: int = 1000
    """Upper bound; a small corpus gets the largest vocabulary it supports (logged)."""
    character_coverage: float = 1.0
    """Share of the characters the vocabulary must cover (1.0: all)."""


@dataclass(kw_only=True)
class HeadSection:
    """The fine-tuned model: target normalisation, encoder changes and the head."""

    normalize: Literal["asr", "st", "none"] | None = None
    """Target normalisation (None: asr for avsr, st for avst; see :mod:`avsr.text.normalize`)."""
    apply_mask: bool = False
    """Span-mask the encoder input while fine-tuning (wav2vec 2.0 / AV-HuBERT fine-tuning
    style): probabilities from ``masking`` when given, else the pretrained model's."""
    masking: MaskingSection | None = None
    """Fine-tuning span masks (lighter than pretraining's); None: the encoder's own."""
    encoder_overrides: dict[str, Any] = field(default_factory=dict)
    """Audio-encoder config fields changed for fine-tuning, e.g. ``{dropout: 0.1,
    attn_dropout: 0.1, layer_drop: 0.05}`` (regularisation on small data)."""
    modality_dropout: ModalityDropoutSection | float | None = field(default_factory=ModalityDropoutSection)
    """Modality dropout of ``--modality av`` fine-tuning (it replaces the init's own): a
    share ``p`` of the rows drops one modality, the audio in a share ``audio_share`` of
    those, the video otherwise. A plain number (older configs) is ``p`` with the default
    ``audio_share``; null: the defaults. Runs with ``--modality a`` or ``v`` never drop a
    modality: resolved, their ``p`` is 0."""
    ctc: CTCHeadConfig = field(default_factory=CTCHeadConfig)
    """The CTC head (``--head ctc``, and the auxiliary CTC loss of ``--head s2s``)."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """The Transformer decoder (``--head s2s``)."""
    ctc_weight: float = 0.0
    """``--head s2s``: weight of the auxiliary CTC loss (joint CTC/attention training;
    auto_avsr uses 0.1, ESPnet 0.3). 0: the decoder's loss alone."""
    init_head: bool = True
    """With a fine-tuned ``--init`` of the same task and head type whose tokenizer is this
    run's (same training text and vocabulary size), start from its head as well: continued
    fine-tuning, e.g. audio only, then audio-visual, without a fresh CTC head's blank plateau.
    False, or a different task, head or vocabulary: a fresh head."""
    freeze_audio_cnn: bool = False
    """Keep the audio CNN (XLS-R's feature extractor) fixed for the whole run, as wav2vec 2.0
    fine-tuning does: no gradient flows through it, so updates are cheaper. Ignored with the
    filterbank front end (no weights)."""
    freeze_fusion: bool = False
    """Keep the AV encoder's fusion layer (its LayerNorm and projection, where audio and lip
    features meet) as pretrained for the whole run. For an audio-only run from an AV-pretrained
    encoder: the layer never sees lips there, and training it on audio alone changes what the
    lips add when a model fine-tuned on audio is given audio + video (zero-shot AV).
    Ignored with an audio-only encoder (no fusion layer)."""

    def __post_init__(self) -> None:
        self.modality_dropout = as_dropout_section(self.modality_dropout)

    @property
    def dropout(self) -> ModalityDropoutSection:
        """``modality_dropout`` as a section (a number or null was turned into one)."""
        assert isinstance(self.modality_dropout, ModalityDropoutSection)
        return self.modality_dropout


def as_dropout_section(value: ModalityDropoutSection | float | None) -> ModalityDropoutSection:
    """A ``model.modality_dropout`` value as a section: a number is ``p`` (default
    ``audio_share``), None the defaults."""
    if value is None:
        return ModalityDropoutSection()
    if isinstance(value, ModalityDropoutSection):
        return value
    return ModalityDropoutSection(p=float(value))


@dataclass(kw_only=True)
class DistillSection:
    """Distillation from a fixed CTC teacher fed each row's clean audio (:mod:`avsr.models.distill`)."""

    teacher: str | None = None
    """A fine-tuned CTC model directory with this run's tokenizer, or ``init``: the ``--init``
    model itself (continued fine-tuning that keeps what the model did on clean audio, e.g.
    audio-visual fine-tuning from the audio-only model). None: no distillation."""
    weight: float = 1.0
    """Weight of the mean per-frame KL(teacher || model) beside the mean per-token CTC loss."""
    rows: DistillRows = "all"
    """Rows distilled: ``all``, or ``clean_audio``: only rows whose input includes the clean
    audio (no training noise, audio not dropped); noisy and video-only rows learn from
    their labels alone."""
    audio_alone_scale: float = 1.0
    """The KL of rows that modality dropout left with audio alone counts this many times
    (``weight`` x this; the logged ``kl`` includes it): more holds the model's audio path
    where the teacher hears the same input."""


@dataclass(kw_only=True)
class ValidSection:
    """Validation by decoding (selects the best checkpoint)."""

    split: str = "valid"
    """Validation split (skipped when its files are missing)."""
    beam: int = 5
    """Beam width of validation decoding (seq2seq heads)."""
    modality: Literal["av", "a", "v"] | None = None
    """Input mode whose score selects the best checkpoint (``wer`` / ``bleu``, hypotheses
    in ``valid_hyps.txt``; None: the training modality)."""
    modalities: list[Mode] | None = None
    """Input modes decoded and scored at each validation (``wer_av``, ``wer_a``, ``wer_v``
    or ``bleu_*``); the loss is computed once, in ``modality``. None: ``[av, a, v]`` for
    a model trained on ``av``, ``[a, av]`` for ``a`` (zero-shot AV; ``[a]`` without a lip
    encoder), ``[v]`` for ``v``. ``modality`` is always decoded."""
    max_clips: int | None = None
    """Decode at most this many validation clips (None: all)."""


def _train_defaults() -> TrainConfig:
    return TrainConfig(
        max_updates=30000,
        freeze=["encoder.*"],
        freeze_updates=4000,
        save_every=1000,
        valid_every=1000,
        find_unused_parameters=True,
    )


def _optim_defaults() -> OptimConfig:
    return OptimConfig(lr=1e-4, warmup_updates=10000)


@dataclass(kw_only=True)
class FinetuneConfig:
    """``avsr finetune`` options (MuAViC recipe defaults; see configs/finetune_*.yaml)."""

    task: Literal["avsr", "avst"] = "avsr"
    """Recognition (transcripts) or X->En translation (``--task``)."""
    head: Literal["ctc", "s2s"] = "s2s"
    """CTC head or Transformer decoder (``--head``)."""
    modality: Literal["av", "a", "v"] = "av"
    """Training input (``--modality``): audio-visual, audio (video zeroed) or video."""
    lang: str | None = None
    """One language (``DATA/muavic/{lang}``; None: every language of DATA)."""
    pair: str | None = None
    """One translation pair ``xx-en`` (``DATA/muavic/xx/en``)."""
    train_split: str = "train"
    """Training split."""
    model: HeadSection = field(default_factory=HeadSection)
    """Target normalisation, encoder changes and the head."""
    av: AVModelConfig = field(default_factory=AVModelConfig)
    """AV model options used when ``--init`` is a plain XLS-R encoder (fresh lip encoder)."""
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    """The run's SentencePiece model."""
    data: DataConfig = field(default_factory=lambda: DataConfig(max_frames_per_batch=1000))
    """Data loading and augmentation."""
    train: TrainConfig = field(default_factory=_train_defaults)
    """The training loop (encoder frozen for the first updates)."""
    optim: OptimConfig = field(default_factory=_optim_defaults)
    """Optimiser and learning-rate schedule."""
    valid: ValidSection = field(default_factory=ValidSection)
    """Validation by decoding."""
    distill: DistillSection = field(default_factory=DistillSection)
    """Distillation from a fixed CTC teacher (off by default)."""


DROPOUT_KEY = "model.modality_dropout"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _p_section(value: float) -> str:
    """``model.modality_dropout={p: X}`` (X without an exponent: YAML reads ``1e-05`` as text)."""
    text = repr(float(value))
    if "e" in text:
        text = f"{float(value):.20f}"
    return f"{DROPOUT_KEY}={{p: {text}}}"


def dropout_shorthand(config: Path | None, overrides: Sequence[str]) -> list[str]:
    """``overrides`` with a number given to ``model.modality_dropout`` (in the config file
    or an override) written as the section ``{p: X}``, so that later
    ``model.modality_dropout.KEY=...`` overrides add to it instead of replacing it."""
    out: list[str] = []
    if config is not None:
        try:
            data, _ = read_config_file(config)
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
        model = data.get("model")
        value = model.get("modality_dropout") if isinstance(model, dict) else None
        if _is_number(value):
            out.append(_p_section(value))
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
        is_shorthand = ".".join(path) == DROPOUT_KEY and _is_number(value)
        out.append(_p_section(value) if is_shorthand else text)
    return out


def _resolve_dropout(cfg: FinetuneConfig) -> None:
    """Check ``model.modality_dropout``; ``p`` 0 unless training on ``av`` (what is used)."""
    section = cfg.model.dropout
    for name in ("p", "audio_share"):
        value = getattr(section, name)
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{DROPOUT_KEY}.{name} must be in [0, 1], got {value}")
    if cfg.modality != "av":
        section.p = 0.0


def dropout_summary(cfg: FinetuneConfig) -> str:
    """One line with the effective modality-dropout rates of the run."""
    if cfg.modality != "av":
        kept = "audio" if cfg.modality == "a" else "video"
        return f"modality dropout: none (--modality {cfg.modality}: every row {kept} only)"
    d = cfg.model.dropout

    def pct(x: float) -> str:
        return f"{100.0 * x:.3g}%"

    clean = " (without the training noise: model.modality_dropout.clean_audio_alone)" if d.clean_audio_alone else ""
    return (
        f"modality dropout (AV fine-tuning): {pct(d.p * (1.0 - d.audio_share))} of rows audio only{clean}, "
        f"{pct(d.p * d.audio_share)} video only, {pct(1.0 - d.p)} both"
    )


def valid_modalities(cfg: FinetuneConfig, has_video: bool) -> list[Mode]:
    """Input modes scored at validation: the selection mode first, then ``valid.modalities``
    (None: by training modality, see :class:`ValidSection`); UserError when one needs a lip
    encoder the model lacks."""
    select = cfg.valid.modality or cfg.modality
    listed: Sequence[Mode] | None = cfg.valid.modalities
    if listed is None:
        defaults: dict[str, list[Mode]] = {"av": ["av", "a", "v"], "a": ["a", "av"], "v": ["v"]}
        listed = defaults[cfg.modality] if has_video else ["a"]
    modes: list[Mode] = list(dict.fromkeys([select, *listed]))
    if not has_video and any(m != "a" for m in modes):
        raise UserError(f"valid.modalities {modes}: the model has no lip encoder (only 'a' can be scored)")
    return modes


def resolve_config(args: argparse.Namespace) -> FinetuneConfig:
    """Config file + ``--set`` overrides + the explicit flags (flags win)."""
    overrides = dropout_shorthand(getattr(args, "config", None), args.overrides)
    for name in ("task", "head", "modality"):
        value = getattr(args, name, None)
        if value is not None:
            overrides.append(f"{name}={value}")
    cfg = load_task_config(FinetuneConfig, args.config, overrides)
    if getattr(args, "lang", None):
        cfg.lang, cfg.pair = args.lang, None
    if getattr(args, "pair", None):
        cfg.pair, cfg.lang = args.pair, None
    if cfg.task == "avst" and cfg.head == "ctc":
        raise UserError("--task avst needs --head s2s (CTC cannot reorder words for translation)")
    if cfg.lang is not None and cfg.pair is not None:
        raise UserError("give either lang or pair, not both")
    if cfg.model.ctc_weight and cfg.head != "s2s":
        raise UserError("model.ctc_weight is the auxiliary CTC loss of --head s2s (a CTC head is all CTC)")
    if not 0.0 <= cfg.model.ctc_weight < 1.0:
        raise UserError(f"model.ctc_weight must be in [0, 1), got {cfg.model.ctc_weight}")
    if cfg.train.best_metric is None:
        cfg.train.best_metric = "wer" if cfg.task == "avsr" else "bleu"
        cfg.train.best_mode = "min" if cfg.task == "avsr" else "max"
    if cfg.distill.teacher is not None and cfg.head != "ctc":
        raise UserError("distill.teacher: distillation from a CTC teacher needs --head ctc")
    if cfg.distill.weight < 0.0:
        raise UserError(f"distill.weight must be >= 0, got {cfg.distill.weight}")
    if cfg.distill.audio_alone_scale < 0.0:
        raise UserError(f"distill.audio_alone_scale must be >= 0, got {cfg.distill.audio_alone_scale}")
    _resolve_dropout(cfg)
    # decode only the media the input mode uses
    cfg.data.modalities = cfg.modality
    return cfg
