"""Typed configuration of the audio-visual XLAVS-R model (kw_only dataclasses).

Defaults are AV-HuBERT's where XLAVS-R is silent (fusion, masking, modality
dropout, loss). Every field can be set from YAML or ``--set
model.section.key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from avsr.config import from_dict


@dataclass(kw_only=True)
class EncoderSection:
    """The audio Transformer the AV model is built around."""

    family: Literal["wav2vec2", "w2vbert"] = "wav2vec2"
    """Encoder family: ``wav2vec2`` (XLS-R, wav2vec 2.0, XLSR-53, MMS: learnable CNN front
    end) or ``w2vbert`` (w2v-BERT 2.0: fixed 80-mel x 2 filterbank, video fused after its
    feature projection; archs ``w2vbert_2``, ``w2vbert_tiny``). Used when building from
    ``arch``; a loaded checkpoint brings its own family (docs/encoders.md)."""
    arch: str = "tiny"
    """Shape used when no initial checkpoint is given (``avsr.models.xlsr`` archs:
    ``tiny``, ``xlsr_300m``, ``xlsr_1b``, ``xlsr_2b``)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Encoder config fields to change (e.g. ``dropout``, ``layer_drop``,
    ``feature_grad_scale``), applied to the arch or to the loaded checkpoint's config."""


@dataclass(kw_only=True)
class FbankSection:
    """Filterbank front end (``audio_frontend: fbank``): AV-HuBERT's audio features."""

    n_mels: int = 26
    """Log-mel bins per 10 ms frame."""
    stack: int = 4
    """Frames stacked per encoder frame (4: 25 Hz, the video rate)."""


@dataclass(kw_only=True)
class VisualSection:
    """ResNet-18 lip encoder (3D stem + BasicBlocks [2,2,2,2])."""

    stem_channels: int = 64
    """Output channels of the 3D convolution stem."""
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    """Channels of the four ResNet stages."""
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    """BasicBlocks per stage."""
    act: Literal["prelu", "relu"] = "prelu"
    """Activation of the stem and the blocks."""
    input_pool: int = 1
    """Average-pool the input frames by this factor before the stem (1: none)."""
    freeze_bn: bool = False
    """BatchNorm layers in eval mode (running statistics): results independent of how a
    batch is split over processes. Under DDP the BatchNorm statistics are otherwise per
    process; ``train.sync_batchnorm=true`` makes them global on GPUs (SyncBatchNorm, NCCL)."""


@dataclass(kw_only=True)
class FusionSection:
    """How the audio and video features become one sequence."""

    kind: Literal["concat", "add"] = "concat"
    """``concat``: [audio ; video] -> LayerNorm -> Linear(2D, D); ``add``: audio + video ->
    LayerNorm -> Linear(D, D)."""
    norm: Literal["joint", "per_modality"] = "joint"
    """``joint`` (AV-HuBERT): one LayerNorm over [audio ; video]. ``per_modality``: each
    stream normalised on its own before the concatenation (``concat`` only), so the
    audio half reaching the projection is the same whether the video is present or
    zeroed (audio-only fine-tuning, then AV input: the zero-shot setting)."""
    init_audio_identity: bool = True
    """Start the fusion Linear as "pass the audio through" (weight [I | 0] or I, bias 0)."""


@dataclass(kw_only=True)
class MaskingSection:
    """Span masks per modality; spans count each modality's own frames."""

    audio_prob: float = 0.8
    """Masked share before overlaps: ``int(prob * n / span + u)`` spans in ``n`` frames."""
    audio_span: int = 10
    """Length of an audio span, in encoder frames."""
    video_prob: float = 0.3
    """Masked share of the video frames before overlaps (as ``audio_prob``)."""
    video_span: int = 5
    """Length of a video span, in video frames (25 fps)."""
    min_masks: int = 2
    """Fewest spans per row and modality."""


@dataclass(kw_only=True)
class ModalityDropoutSection:
    """Dropping one modality of a row in training (AV input)."""

    p: float = 0.5
    """Probability of dropping one modality of a row (training, input mode ``av``)."""
    audio_share: float = 0.5
    """Share of the drops that drop the audio (the rest drop the video)."""
    clean_audio_alone: bool = False
    """A row that keeps only its audio gets it without the training noise (the data
    pipeline then keeps the clean audio of every row it adds noise to): the audio path alone
    learns from clean speech, and noise is met only with the lips beside it."""

    @property
    def reads_clean_audio(self) -> bool:
        """Whether training needs each noised row's clean audio (``clean_audio_alone``
        with some rows dropped); the data pipeline keeps a copy only then."""
        return self.clean_audio_alone and self.p > 0


@dataclass(kw_only=True)
class HeadSection:
    """The unit prediction head of pretraining (HuBERT style: cosine similarity to one
    learned embedding per unit)."""

    proj_dim: int = 256
    """Width of the projection the unit embeddings are compared in."""
    temperature: float = 0.1
    """Divisor of the cosine similarities before the softmax."""


@dataclass(kw_only=True)
class LossSection:
    """Weights of the masked-prediction loss."""

    masked_weight: float = 1.0
    """Weight of the cross-entropy on masked frames."""
    unmasked_weight: float = 0.0
    """Weight of the cross-entropy on unmasked frames."""
    lip_regression_weight: float = 0.0
    """Weight of a loss that pulls the projected lip features of each frame towards the
    projected features of the clean audio of that frame (stop-gradient on the audio):
    squared error relative to the audio features' mean square, summed over the frames
    with video. With ``add`` fusion, lips that look like their audio make audio + video
    look like audio alone, which lets a model fine-tuned on audio alone read them
    (zero-shot AV). 0: off."""
    consistency_weight: float = 0.0
    """Weight of a loss that pulls the encoder output of each unmasked frame (the training
    input: noisy audio, lips, modality dropout) towards the output of the same encoder on
    the clean audio alone (evaluation mode, no gradient): squared error relative to the
    target's mean square, summed over frames. It asks the Transformer to turn audio +
    video into what it makes of clean audio, so that a model fine-tuned on audio alone
    reads the same features from audio + video (zero-shot AV). 0: off."""
    consistency_all_blocks: bool = False
    """The consistency loss on the output of every Transformer block (mean over blocks
    and the final output) instead of on the final output only."""
    consistency_frozen_teacher: bool = False
    """The consistency target from a frozen copy of the encoder as it was before
    pretraining (the audio encoder it starts from) instead of from the encoder being
    trained (which can lower the loss by making all frames alike)."""
    consistency_instance_norm: bool = False
    """Normalise the student and the target of the consistency loss per clip and per
    dimension over the compared frames (zero mean, unit variance over time, as data2vec
    normalises its targets) before comparing them: the loss then asks for the frame-to-frame
    changes of the clean audio's encoding, which a student cannot meet by making all
    frames alike."""


@dataclass(kw_only=True)
class AVModelConfig:
    """The AV encoder (front ends, fusion, masking, dropout) and its pretraining head."""

    encoder: EncoderSection = field(default_factory=EncoderSection)
    """The audio encoder (family, arch, config overrides)."""
    modalities: list[Literal["audio", "video"]] = field(default_factory=lambda: ["audio", "video"])
    """``[audio]`` gives the audio-only model of stage 0 (no lip encoder, no fusion)."""
    audio_frontend: Literal["cnn", "fbank"] = "cnn"
    """``cnn``: the learnable XLS-R CNN on the waveform (50 Hz); ``fbank``: 26 log-mel
    x 4 stacked (25 Hz, the encoder then runs at 25 Hz)."""
    normalize_audio: bool = True
    """Per-utterance zero mean / unit variance of the waveform (XLS-R input convention)."""
    fbank: FbankSection = field(default_factory=FbankSection)
    """Filterbank front end (``audio_frontend: fbank``)."""
    visual: VisualSection = field(default_factory=VisualSection)
    """The lip encoder."""
    fusion: FusionSection = field(default_factory=FusionSection)
    """Audio-video fusion."""
    masking: MaskingSection = field(default_factory=MaskingSection)
    """Span masking of pretraining."""
    modality_dropout: ModalityDropoutSection = field(default_factory=ModalityDropoutSection)
    """Modality dropout of training."""
    head: HeadSection = field(default_factory=HeadSection)
    """Unit prediction head of pretraining."""
    loss: LossSection = field(default_factory=LossSection)
    """Masked-prediction loss weights."""
    seed: int = 1
    """Seed of the mask / modality-dropout draws (per clip id and step: independent of
    how a batch is split across processes, and reproduced on resume)."""

    @property
    def has_video(self) -> bool:
        return "video" in self.modalities


REMOVED_KEYS: tuple[str, ...] = ("visual.sync_bn",)
"""Fields that existed in earlier AV model configs; ignored when reading a saved model
(``train.sync_batchnorm`` replaced ``visual.sync_bn``)."""


def av_config_from_dict(data: dict[str, Any]) -> AVModelConfig:
    """Read a saved AV model config (``config.yaml`` ``av`` section), tolerating removed
    fields (:data:`REMOVED_KEYS`); unknown keys are still an error."""
    clean = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted in REMOVED_KEYS:
        section, _, key = dotted.rpartition(".")
        node = clean.get(section) if section else clean
        if isinstance(node, dict):
            node.pop(key, None)
    return from_dict(AVModelConfig, clean)
