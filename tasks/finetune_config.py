"""Options of ``avsr finetune`` (one typed dataclass; MuAViC recipe defaults)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Literal

from avsr.data.config import DataConfig
from avsr.errors import UserError
from avsr.models.av.config import AVModelConfig, MaskingSection
from avsr.models.heads.ctc import CTCHeadConfig
from avsr.models.heads.decoder import DecoderConfig
from avsr.train.config import OptimConfig, TrainConfig
from tasks.cli_args import load_task_config


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
    modality_dropout: float | None = None
    """Modality-dropout probability while fine-tuning with ``--modality av`` (None: the
    encoder's own setting, AV-HuBERT 0.5)."""
    ctc: CTCHeadConfig = field(default_factory=CTCHeadConfig)
    """The CTC head (``--head ctc``, and the auxiliary CTC loss of ``--head s2s``)."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """The Transformer decoder (``--head s2s``)."""
    ctc_weight: float = 0.0
    """``--head s2s``: weight of the auxiliary CTC loss (joint CTC/attention training;
    auto_avsr uses 0.1, ESPnet 0.3). 0: the decoder's loss alone."""


@dataclass(kw_only=True)
class ValidSection:
    """Validation by decoding (selects the best checkpoint)."""

    split: str = "valid"
    """Validation split (skipped when its files are missing)."""
    beam: int = 5
    """Beam width of validation decoding (seq2seq heads)."""
    modality: Literal["av", "a", "v"] | None = None
    """Input mode of validation decoding (None: the training modality)."""
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


def resolve_config(args: argparse.Namespace) -> FinetuneConfig:
    """Config file + ``--set`` overrides + the explicit flags (flags win)."""
    overrides = list(args.overrides)
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
    # decode only the media the input mode uses
    cfg.data.modalities = cfg.modality
    return cfg
