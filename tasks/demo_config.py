"""Options of ``avsr demo``: sizes and budgets of every stage, one section per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(kw_only=True)
class DemoCorpusSection:
    """The embedded corpus (``avsr corpus build``) and its preprocessing."""

    size: Literal["tiny", "small"] = "small"
    """Corpus size: ``tiny`` (8 clips per language, for smoke runs) or ``small`` (about 0.6 h)."""
    hours: float | None = None
    """Hours of speech to build (None: the size preset's)."""
    langs: list[str] | None = None
    """Languages of the corpus (None: all nine)."""
    workers: int = 2
    """Worker processes of the corpus build and of the preprocessing."""


@dataclass(kw_only=True)
class DemoStage0Section:
    """Stage 0: an audio-only stand-in encoder pretrained on MFCC k-means units."""

    k: int = 50
    """Clusters of the MFCC k-means (the stage-0 targets)."""
    updates: int = 400
    """Training updates of the stage-0 encoder."""


@dataclass(kw_only=True)
class DemoUnitsSection:
    """Encoder features and the k-means units that AV pretraining predicts."""

    k: int = 100
    """Clusters of the k-means on the encoder's features."""
    layer: int | None = None
    """Encoder layer whose output is clustered (None: 3/4 of the encoder's depth)."""


@dataclass(kw_only=True)
class DemoPretrainSection:
    """Continued AV pretraining (``configs/pretrain_tiny.yaml``)."""

    updates: int = 300
    """Training updates."""
    overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for the AV pretraining, e.g. ``[model.fusion.kind=add]``."""


@dataclass(kw_only=True)
class DemoAudioRunSection:
    """The audio-only CTC fine-tuning (video zeroed)."""

    updates: int | None = None
    """Training updates (None or 0: ``finetune.av.updates``). An update costs about half an AV
    one (no lip encoder)."""
    max_frames_per_batch: int | None = None
    """Video frames (25 per second of audio) per batch of this run (None: the demo's
    ``max_frames_per_batch``); smaller batches: more updates for the same compute."""
    overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for this run only (after ``finetune.overrides``)."""


@dataclass(kw_only=True)
class DemoAVRunSection:
    """The audio-visual CTC fine-tuning."""

    updates: int = 300
    """Training updates."""
    init: Literal["pretrained", "a"] = "pretrained"
    """Start from the AV pretrained encoder (``pretrained``: beside the audio-only run) or from
    the audio-only fine-tuned model (``a``: after it; audio first, then the lips)."""
    max_frames_per_batch: int | None = None
    """Video frames per batch of this run (None: the demo's ``max_frames_per_batch``)."""
    overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for this run only (after ``finetune.overrides``)."""


@dataclass(kw_only=True)
class DemoAVSTRunSection:
    """The X->En speech translation fine-tuning (seq2seq, audio-visual)."""

    pair: str = "es-en"
    """Translation pair ``SRC-en``."""
    updates: int = 300
    """Training updates."""
    init: Literal["avsr", "a", "pretrained"] = "avsr"
    """Start from the encoder of the AV recognition model (``avsr``: runs after it), of the
    audio-only one (``a``: after that one), or from the AV pretrained encoder (``pretrained``)."""
    overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for the translation fine-tuning."""


@dataclass(kw_only=True)
class DemoFinetuneSection:
    """The three fine-tunings, A and AV (CTC, AVSR) and AVST (seq2seq), each started as soon as
    the model it starts from is there, side by side with the others and the evaluations."""

    a: DemoAudioRunSection = field(default_factory=DemoAudioRunSection)
    """The audio-only CTC fine-tuning."""
    av: DemoAVRunSection = field(default_factory=DemoAVRunSection)
    """The audio-visual CTC fine-tuning."""
    avst: DemoAVSTRunSection = field(default_factory=DemoAVSTRunSection)
    """The speech translation fine-tuning."""
    vocab_size: int | None = None
    """Tokenizer vocabulary size of all three (None: the fine-tuning config's)."""
    lr: float | None = None
    """Peak learning rate of all three (None: the fine-tuning config's)."""
    noise_prob: float = 0.5
    """Share of the training utterances of the CTC fine-tunings that get noise."""
    snr_range: tuple[float, float] = (-5.0, 5.0)
    """[min, max] SNR (dB) of that noise."""
    noise_start_epoch: int = 0
    """Epochs of the CTC fine-tunings on clean audio before the noise augmentation starts."""
    speed_perturb: list[float] | None = None
    """[min, max] speed factor of the CTC fine-tunings (``data.speed_perturb``); None: off."""
    overrides: list[str] = field(default_factory=list)
    """More ``--set`` overrides for both CTC fine-tunings, e.g. ``[model.apply_mask=true]``."""


@dataclass(kw_only=True)
class DemoEvalSection:
    """The evaluation grid of the A and AV models (the AVST model: clean and babble 0 dB)."""

    snrs: str = "clean,-5,0,5"
    """SNR conditions (dB), comma-separated; ``clean``: no noise."""
    noises: str = "babble,music,noise"
    """Noise types, comma-separated."""
    max_clips: int | None = None
    """Evaluate at most this many test clips (None or 0: all)."""
    ctc_decoder: Literal["greedy", "train_words"] = "greedy"
    """How the CTC models (A, AV) decode: ``greedy`` (best path) or ``train_words`` (prefix
    beam search that outputs only words of the training transcripts, ``data/train.wrd``,
    spelled by the model's tokenizer: ``avsr evaluate --decoder beam --vocab``; no LM)."""


@dataclass(kw_only=True)
class DemoConfig:
    """Sizes and budgets of the demo, by stage."""

    seed: int = 0
    """Seed of every stage (corpus, k-means, training, test noise)."""
    encoder: str | None = "shipped"
    """Audio encoder the demo starts from: ``shipped`` (the stand-in encoder in the package,
    :data:`avsr.corpus.encoder.SHIPPED_ENCODER`), a real XLS-R (HF dir, fairseq1 .pt or project
    dir), or None: stage 0 pretrains one on the demo's own corpus. ``--encoder`` overrides it."""
    max_frames_per_batch: int = 200
    """Video frames per batch (25 per second of audio) in every training stage."""
    num_workers: int = 0
    """Data-loader worker processes of every training stage. 0: the training process reads
    the clips itself; on 2 cores a worker only takes CPU time from the model
    (``benchmarks/train_loading.py``)."""
    cache_mb: float = 1024
    """Decoded clips kept in memory by every training stage (``data.cache_mb``; 0: none):
    later epochs skip the video decoding (the demo's training split takes about 170 MiB)."""
    corpus: DemoCorpusSection = field(default_factory=DemoCorpusSection)
    """The embedded corpus and its preprocessing."""
    stage0: DemoStage0Section = field(default_factory=DemoStage0Section)
    """The stage-0 encoder (skipped with ``--encoder``)."""
    units: DemoUnitsSection = field(default_factory=DemoUnitsSection)
    """The k-means units of the encoder's features."""
    pretrain: DemoPretrainSection = field(default_factory=DemoPretrainSection)
    """Continued AV pretraining."""
    finetune: DemoFinetuneSection = field(default_factory=DemoFinetuneSection)
    """Fine-tuning: A, AV and AVST."""
    eval: DemoEvalSection = field(default_factory=DemoEvalSection)
    """Evaluation on the clean and noisy grid."""
