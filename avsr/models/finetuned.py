"""The fine-tuned model: AV encoder + CTC or seq2seq head + tokenizer, in one directory.

A fine-tuned model directory (``kind: finetuned``) is self-describing::

    model.safetensors   # encoder.* and head.* weights
    config.yaml         # {format, version, kind: finetuned, finetune: {...}, vocab_size,
                        #  encoder: {av, encoder, frame_rate}, data: {crop_size, image_size}}
    tokenizer.model     # the SentencePiece model of the targets

so evaluation and inference need nothing else: ``load_finetuned(dir)``.

Input modes (``modality``): ``av`` both streams, ``a`` audio with the video
features zeroed (exactly what modality dropout does), ``v`` video with the
audio zeroed. A model fine-tuned with ``a`` still has a live video path: at
test time it can be given audio and video (the zero-shot AV setting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from avsr.checkpoint import is_model_dir, load_model_dir, read_model_config, save_model_dir
from avsr.config import from_dict, to_dict
from avsr.errors import UserError
from avsr.models.av.io import encoder_sections, load_strict, rebuild_av_encoder
from avsr.models.distill import CTCTeacher, DistillRows, ctc_distill_loss
from avsr.models.heads.beam import JointCTC, beam_search
from avsr.models.heads.ctc import CTCHead, CTCHeadConfig, ctc_greedy_decode
from avsr.models.heads.decoder import DecoderConfig, TransformerDecoder
from avsr.step_output import StepOutput
from avsr.text.normalize import NormMode, normalize_target
from avsr.text.tokenizer import Tokenizer

KIND = "finetuned"
TOKENIZER_FILE = "tokenizer.model"


@dataclass(kw_only=True)
class FinetunedConfig:
    """What a fine-tuned model is (stored in its config.yaml under ``finetune``)."""

    task: Literal["avsr", "avst"] = "avsr"
    """``avsr``: transcripts in the spoken language; ``avst``: English translations."""
    head: Literal["ctc", "s2s"] = "s2s"
    """``ctc``: a linear CTC head, greedy decoding; ``s2s``: a Transformer decoder, beam search."""
    modality: Literal["av", "a", "v"] = "av"
    """Input mode used in training (decoding may use another one)."""
    normalize: NormMode | None = None
    """Target normalisation; None: ``asr`` for avsr, ``st`` for avst."""
    lang: str | None = None
    """Target language(s) trained on (informational), e.g. ``es`` or ``es-en``."""
    apply_mask: bool = False
    """Span-mask the encoder input during fine-tuning (wav2vec 2.0 style)."""
    ctc: CTCHeadConfig = field(default_factory=CTCHeadConfig)
    """The CTC head (``head: ctc``, and the auxiliary CTC branch of ``ctc_weight``)."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """The Transformer decoder (``head: s2s``)."""
    ctc_weight: float = 0.0
    """seq2seq only: weight of an auxiliary CTC loss on the encoder (joint CTC/attention
    training, ESPnet / auto_avsr: loss = (1 - w) * attention + w * CTC). Decoding uses the
    CTC branch (``ctc_aux``) only when asked for joint CTC/attention decoding (a decode-time
    ``ctc_weight``); by default it is the decoder's beam search alone."""

    @property
    def norm_mode(self) -> NormMode:
        if self.normalize is not None:
            return self.normalize
        return "asr" if self.task == "avsr" else "st"


@dataclass
class EncodedBatch:
    """The encoder output of one batch."""

    feats: Tensor
    """(B, T, D) encoder features."""
    lens: Tensor
    """(B,) valid frames per row."""
    padding_mask: Tensor
    """(B, T) bool, True at padding."""
    keep_audio: Tensor | None = None
    """(B,) bool: rows whose audio the encoder used (None: every row's)."""
    keep_video: Tensor | None = None
    """(B,) bool: rows whose video the encoder used (None: unknown)."""


class FinetunedModel(nn.Module):
    """AV encoder + head + tokenizer.

    ``encoder`` follows the AV encoder interface: ``forward(audio (B,S),
    audio_lens, video (B,1,T,H,W) | None, video_lens | None, *, modality,
    apply_mask) -> output with feats (B,T,D), lens (B,), padding_mask (B,T)``
    and ``model_dim``. ``encoder_config`` is the plain dict that rebuilds it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer: Tokenizer,
        config: FinetunedConfig,
        *,
        encoder_config: dict[str, Any] | None = None,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.encoder_config = dict(encoder_config) if encoder_config is not None else encoder_config_of(encoder)
        self.data_config = dict(data_config or {})
        """Input geometry the model was trained with (``crop_size``, ``image_size``)."""
        dim = int(encoder.model_dim)
        vocab = tokenizer.vocab_size
        if config.head == "ctc":
            self.config.ctc.blank_id = tokenizer.pad_id
            self.head: nn.Module = CTCHead(dim, vocab, config.ctc)
        elif config.head == "s2s":
            self.head = TransformerDecoder(dim, vocab, config.decoder, pad_id=tokenizer.pad_id)
        else:
            raise UserError(f"unknown head {config.head!r} (ctc, s2s)")
        if not 0.0 <= config.ctc_weight < 1.0:
            raise UserError(f"ctc_weight must be in [0, 1), got {config.ctc_weight}")
        self.ctc_aux: CTCHead | None = None
        self.ctc_decoder: Callable[[Tensor, Tensor], list[list[int]]] | None = None
        """CTC models: decodes (logits (B, T, V), lens (B,)) into ids per row (e.g. a prefix
        beam search with an LM, :class:`avsr.decoding.ctc_lm.CTCBeamDecoder`); None: greedy."""
        if config.head == "s2s" and config.ctc_weight > 0.0:
            self.config.ctc.blank_id = tokenizer.pad_id
            self.ctc_aux = CTCHead(dim, vocab, config.ctc)
        # training only, and kept out of the module tree (neither trained nor saved)
        self.__dict__["_teacher"] = None
        self.distill_weight = 0.0
        self.distill_rows: DistillRows = "all"
        self.distill_audio_alone_scale = 1.0

    def set_teacher(
        self, teacher: CTCTeacher | None, weight: float = 1.0, rows: DistillRows = "all",
        *, audio_alone_scale: float = 1.0,
    ) -> None:
        """Distil from ``teacher`` (clean audio) while training, at ``weight``, on ``rows``,
        the rows left with audio alone by modality dropout ``audio_alone_scale`` times as much
        (see :mod:`avsr.models.distill`); None: CTC alone."""
        if teacher is not None:
            if self.config.head != "ctc":
                raise UserError("distillation from a CTC teacher needs a CTC head")
            teacher.check_tokenizer(self.tokenizer)
        self.__dict__["_teacher"] = teacher
        self.distill_weight = float(weight)
        self.distill_rows = rows
        self.distill_audio_alone_scale = float(audio_alone_scale)

    # -- pieces -------------------------------------------------------------
    def encode(self, batch: Any, *, modality: str | None = None, apply_mask: bool = False) -> EncodedBatch:
        """Run the encoder on an ``AVBatch`` in input mode ``modality`` (default: the training one)."""
        modality = modality or self.config.modality
        if modality not in ("av", "a", "v"):
            raise UserError(f"modality must be av, a or v, got {modality!r}")
        video = batch.video
        video_lens = batch.video_lens
        if modality in ("av", "v") and video is None and getattr(self.encoder, "visual", True) is not None:
            raise UserError(f"modality {modality!r} needs video, but the batch has none")
        if modality in ("av", "a") and batch.audio is None:
            raise UserError(f"modality {modality!r} needs audio, but the batch has none")
        extra = {}  # training: the audio before its noise, for modality dropout's audio-only rows
        if self.training and getattr(batch, "clean_audio", None) is not None:
            extra["clean_audio"] = batch.clean_audio
        out = self.encoder(
            batch.audio, batch.audio_lens, video, video_lens, modality=modality, apply_mask=apply_mask, **extra
        )
        return EncodedBatch(out.feats, out.lens, out.padding_mask,
                            getattr(out, "keep_audio", None), getattr(out, "keep_video", None))

    def targets(self, texts: list[str]) -> list[list[int]]:
        mode = self.config.norm_mode
        return self.tokenizer.encode_batch([normalize_target(t, mode) for t in texts])

    # -- training ---------------------------------------------------------------
    def forward(self, batch: Any) -> StepOutput:
        """One training/validation step on an ``AVBatch`` with ``texts`` -> ``StepOutput``
        (loss summed over target tokens, sample_size = number of target tokens)."""
        loss, sample_size, logs = self.compute_loss(batch)
        return StepOutput(loss=loss, sample_size=sample_size, logs=logs)

    def compute_loss(
        self, batch: Any, *, modality: str | None = None
    ) -> tuple[Tensor, int, dict[str, float]]:
        """(summed loss, sample_size = target tokens, logs) of an ``AVBatch`` with ``texts``,
        in input mode ``modality`` (default: the training one; modality dropout applies to
        ``av`` in training mode)."""
        if batch.texts is None:
            raise UserError("fine-tuning needs text labels in the batch")
        enc = self.encode(batch, modality=modality, apply_mask=self.config.apply_mask and self.training)
        targets = self.targets(batch.texts)
        # logs follow the loop's convention: n_* are plain sums, x:num / x:den a ratio
        logs: dict[str, float] = {"n_sentences": float(len(targets))}
        if self.config.head == "ctc":
            logits = self.head(enc.feats)
            loss = self.head.loss(logits, enc.lens, targets)
            ntokens = sum(len(t) for t in targets)
            teacher: CTCTeacher | None = self.__dict__["_teacher"]
            if teacher is not None and self.training:
                rows = None if self.distill_rows == "all" else self._heard_clean_audio(batch, enc)
                kl, frames = ctc_distill_loss(
                    logits, enc.lens, *teacher.log_probs(batch), rows=rows, row_scale=self._distill_row_scale(enc)
                )
                logs["loss_ctc:num"], logs["loss_ctc:den"] = float(loss.detach()), float(ntokens)
                logs["kl:num"], logs["kl:den"] = float(kl.detach()), float(frames)
                loss = loss + self.distill_weight * kl * (ntokens / max(frames, 1))
        else:
            prev, tgt = self._teacher_forcing(targets, enc.feats.device)
            logits = self.head(prev, enc.feats, enc.padding_mask)
            loss = self.head.loss(logits, tgt)
            keep = tgt != self.tokenizer.pad_id
            ntokens = int(keep.sum())  # eos included
            logs["accuracy:num"] = float(((logits.argmax(-1) == tgt) & keep).sum())
            logs["accuracy:den"] = float(ntokens)
            if self.ctc_aux is not None:
                w = self.config.ctc_weight
                ctc = self.ctc_aux.loss(self.ctc_aux(enc.feats), enc.lens, targets)
                logs["loss_att:num"], logs["loss_att:den"] = float(loss.detach()), float(ntokens)
                logs["loss_ctc:num"], logs["loss_ctc:den"] = float(ctc.detach()), float(ntokens)
                loss = (1.0 - w) * loss + w * ctc
        logs["n_tokens"] = float(ntokens)
        sample_size = max(ntokens, 1)
        return loss, sample_size, logs

    def _distill_row_scale(self, enc: EncodedBatch) -> Tensor | None:
        """(B,) the KL's scale per row: ``distill_audio_alone_scale`` where modality dropout
        left the audio alone, 1 elsewhere; None when the scale is 1."""
        alone = _audio_alone(enc)
        if self.distill_audio_alone_scale == 1.0 or alone is None:
            return None
        return torch.where(alone, self.distill_audio_alone_scale, 1.0)

    def _heard_clean_audio(self, batch: Any, enc: EncodedBatch) -> Tensor:
        """(B,) bool: rows whose input included the clean audio (no training noise, or
        audio alone under ``modality_dropout.clean_audio_alone``)."""
        n = len(batch.ids)
        device = enc.feats.device
        keep_a = enc.keep_audio if enc.keep_audio is not None else torch.ones(n, dtype=torch.bool, device=device)
        if batch.clean_audio is None or batch.audio is None:
            return keep_a
        noisy = (batch.audio != batch.clean_audio).flatten(1).any(dim=1).to(device)
        dropout = getattr(getattr(self.encoder, "cfg", None), "modality_dropout", None)
        alone = _audio_alone(enc) if getattr(dropout, "clean_audio_alone", False) else None
        return keep_a & (~noisy | alone) if alone is not None else keep_a & ~noisy

    def _teacher_forcing(self, targets: list[list[int]], device: torch.device) -> tuple[Tensor, Tensor]:
        tok = self.tokenizer
        length = max(len(t) for t in targets) + 1
        prev = torch.full((len(targets), length), tok.pad_id, dtype=torch.long)
        tgt = torch.full((len(targets), length), tok.pad_id, dtype=torch.long)
        for i, t in enumerate(targets):
            prev[i, : len(t) + 1] = torch.tensor([tok.bos_id, *t], dtype=torch.long)
            tgt[i, : len(t) + 1] = torch.tensor([*t, tok.eos_id], dtype=torch.long)
        return prev.to(device), tgt.to(device)

    # -- inference ------------------------------------------------------------------
    @torch.no_grad()
    def decode_ids(
        self, batch: Any, *, modality: str = "av", beam: int = 5, ctc_weight: float = 0.0
    ) -> list[list[int]]:
        """Token ids of the best hypothesis per row (greedy for CTC, beam search for s2s;
        ``ctc_weight`` > 0: joint CTC/attention beam search with the CTC branch at that weight)."""
        check_joint_decoding({"finetune": to_dict(self.config)}, ctc_weight, "this model")
        was_training = self.training
        self.eval()
        try:
            enc = self.encode(batch, modality=modality)
            if self.config.head == "ctc":
                logits = self.head(enc.feats)
                if self.ctc_decoder is not None:
                    return self.ctc_decoder(logits, enc.lens)
                return ctc_greedy_decode(logits, enc.lens, blank_id=self.head.blank_id)
            joint = None
            if ctc_weight > 0.0 and self.ctc_aux is not None:
                log_probs = self.ctc_aux(enc.feats)
                joint = JointCTC(log_probs=log_probs, lens=enc.lens, weight=ctc_weight, blank_id=self.ctc_aux.blank_id)
            max_len = self.head.max_len(int(enc.feats.shape[1]))
            hyps = beam_search(
                self.head,
                enc.feats,
                enc.padding_mask,
                beam=beam,
                max_len=max_len,
                bos_id=self.tokenizer.bos_id,
                pad_id=self.tokenizer.pad_id,
                eos_id=self.tokenizer.eos_id,
                ctc=joint,
            )
            return [h[0].tokens for h in hyps]
        finally:
            self.train(was_training)

    def decode(self, batch: Any, *, modality: str = "av", beam: int = 5, ctc_weight: float = 0.0) -> list[str]:
        """Text per row of an ``AVBatch``: transcripts (avsr) or English translations (avst)."""
        ids = self.decode_ids(batch, modality=modality, beam=beam, ctc_weight=ctc_weight)
        return [self.tokenizer.decode(row) for row in ids]


def check_joint_decoding(model_config: dict[str, Any], ctc_weight: float, where: str | Path) -> None:
    """UserError unless ``ctc_weight`` is in [0, 1] and, when above 0, the model ``where``
    (its ``config.yaml`` content ``model_config``) is seq2seq with a CTC branch."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise UserError(f"--ctc-weight must be in [0, 1], got {ctc_weight}")
    ft = model_config.get("finetune") or {}
    if ctc_weight == 0.0 or (ft.get("head") == "s2s" and float(ft.get("ctc_weight") or 0.0) > 0.0):
        return
    what = (
        "a CTC model (no attention decoder; it decodes greedily)"
        if ft.get("head") == "ctc"
        else "a seq2seq model fine-tuned without a CTC branch (model.ctc_weight 0)"
    )
    raise UserError(
        f"{where}: joint CTC/attention decoding (--ctc-weight {ctc_weight}) needs a seq2seq model "
        f"with a CTC branch (fine-tuned with model.ctc_weight > 0); this is {what}"
    )


# -- files ---------------------------------------------------------------------------


def model_config_of(model: FinetunedModel) -> dict[str, Any]:
    """The ``config.yaml`` content (less format/version/kind) of a fine-tuned model."""
    return {
        "finetune": to_dict(model.config),
        "vocab_size": model.tokenizer.vocab_size,
        "encoder": model.encoder_config,
        "data": model.data_config,
    }


def save_finetuned(model: FinetunedModel, path: str | Path) -> Path:
    """Write weights + config + ``tokenizer.model`` into ``path`` (kind ``finetuned``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.tokenizer.save(path / TOKENIZER_FILE)
    return save_model_dir(path, model.state_dict(), model_config_of(model), kind=KIND)


def find_tokenizer(path: Path) -> Path:
    """``path/tokenizer.model``; for a training checkpoint (``RUN/checkpoints/step_N`` or
    ``best``) the run folder's ``RUN/tokenizer.model``."""
    for cand in (path / TOKENIZER_FILE, path.parent.parent / TOKENIZER_FILE):
        if cand.is_file():
            return cand
    raise UserError(f"{path}: no {TOKENIZER_FILE} beside the weights (nor in the run folder)")


def is_finetuned_dir(path: str | Path) -> bool:
    """Whether ``path`` is a project model dir of kind ``finetuned``."""
    return is_model_dir(path) and read_model_config(path).get("kind") == KIND


def load_finetuned(path: str | Path, device: str | torch.device = "cpu") -> FinetunedModel:
    """A fine-tuned model directory -> :class:`FinetunedModel` in eval mode on ``device``."""
    path = Path(path)
    state, cfg = load_model_dir(path)
    if cfg.get("kind") != KIND:
        raise UserError(f"{path}: a model of kind {cfg.get('kind')!r}, not a fine-tuned model")
    tokenizer = Tokenizer.load(find_tokenizer(path))
    if int(cfg.get("vocab_size", -1)) != tokenizer.vocab_size:
        raise UserError(f"{path}: {TOKENIZER_FILE} has {tokenizer.vocab_size} pieces, config says {cfg.get('vocab_size')}")
    try:
        ft_cfg = from_dict(FinetunedConfig, cfg.get("finetune") or {})
    except ValueError as exc:
        raise UserError(f"{path}: bad 'finetune' config: {exc}") from exc
    encoder_config = cfg.get("encoder") or {}
    encoder = rebuild_av_encoder(encoder_config, where=path, what="bad 'encoder' section")
    model = FinetunedModel(
        encoder, tokenizer, ft_cfg, encoder_config=encoder_config, data_config=cfg.get("data") or {}
    )
    load_strict(model, state, lambda diff: f"{path}: weights do not match the config ({diff})")
    head = model.head
    if isinstance(head, TransformerDecoder) and head.config.tie_embeddings:
        head.output_proj.weight = head.embed_tokens.weight
    return model.to(device).eval()


def encoder_config_of(encoder: nn.Module) -> dict[str, Any]:
    """The plain dict that rebuilds an AV encoder: ``{av, encoder, frame_rate}``
    (the same fields as an AV model dir's config; ``{}`` for other encoders)."""
    if getattr(encoder, "cfg", None) is None or getattr(encoder, "xlsr", None) is None:
        return {}
    return {**encoder_sections(encoder), "frame_rate": int(encoder.frame_rate)}  # type: ignore[arg-type]


def _audio_alone(enc: EncodedBatch) -> Tensor | None:
    """(B,) bool: rows that modality dropout left with audio alone; None without a dropout draw."""
    if enc.keep_video is None:
        return None
    return ~enc.keep_video if enc.keep_audio is None else enc.keep_audio & ~enc.keep_video
