"""Distillation from a fixed CTC teacher that hears the clean audio (learning without forgetting).

A CTC model fine-tuned further (e.g. the audio-only model fine-tuned on audio + video,
with modality dropout and noisy rows) drifts away from what it could do on clean speech.
A frozen copy of the model it started from (or any CTC model with the same tokenizer),
fed the clean audio of each training row, gives per-frame targets; the student is pulled
towards them on every row, whatever input it gets (audio + video, audio alone, video
alone, noisy or clean):

    loss = CTC(student) + weight * KL(teacher || student) per frame * (target tokens / frames)

so ``weight`` 1 adds the mean per-frame KL to the mean per-token CTC loss. The teacher
and student must produce the same frames (same audio front end); padding frames and the
frames past a row's length are left out.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsr.errors import UserError

DistillRows = Literal["all", "clean_audio"]
"""Which training rows are distilled: every row, or only those that heard the clean audio
(audio + video or audio alone, without the training noise), so that noisy and video-only
rows learn from their labels alone."""


class CTCTeacher:
    """A frozen fine-tuned CTC model (eval mode, no gradients) that scores clean audio.

    Not an ``nn.Module`` attribute of the student: its weights are neither trained nor saved.
    """

    def __init__(self, model: nn.Module, *, where: str) -> None:
        config = getattr(model, "config", None)
        if getattr(config, "head", None) != "ctc":
            raise UserError(f"distill.teacher {where}: a CTC model is needed (it has head {getattr(config, 'head', None)!r})")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.where = where

    def check_tokenizer(self, tokenizer: Any) -> None:
        """UserError unless the teacher's tokenizer is ``tokenizer`` (same SentencePiece model)."""
        if self.model.tokenizer.model_proto != tokenizer.model_proto:
            raise UserError(
                f"distill.teacher {self.where}: its tokenizer differs from this run's "
                "(same training text and tokenizer.vocab_size are needed)"
            )

    def to(self, device: torch.device) -> CTCTeacher:
        self.model.to(device)
        return self

    @torch.no_grad()
    def log_probs(self, batch: Any) -> tuple[Tensor, Tensor]:
        """(log-probabilities (B, T, V), frames (B,)) of the batch's clean audio, audio alone."""
        clean = batch.clean_audio if batch.clean_audio is not None else batch.audio
        if clean is None:
            raise UserError("distill.teacher: the batch has no audio for the teacher")
        enc = self.model.encode(dataclasses.replace(batch, audio=clean, clean_audio=None), modality="a")
        logits = self.model.head(enc.feats)
        return F.log_softmax(logits.float(), dim=-1), enc.lens


def ctc_distill_loss(
    student_logits: Tensor, student_lens: Tensor, teacher_log_probs: Tensor, teacher_lens: Tensor,
    *, rows: Tensor | None = None, row_scale: Tensor | None = None,
) -> tuple[Tensor, int]:
    """(KL(teacher || student) summed over the valid frames, number of those frames).

    student_logits (B, T, V), teacher_log_probs (B, T', V); a frame counts when it is
    inside both rows' lengths and its row is selected by ``rows`` (B,) bool (None: all).
    ``row_scale`` (B,) float multiplies each row's frames in the sum (None: 1)."""
    if student_logits.shape[0] != teacher_log_probs.shape[0] or student_logits.shape[2] != teacher_log_probs.shape[2]:
        raise UserError(
            f"distill.teacher: teacher output {tuple(teacher_log_probs.shape)} does not match the "
            f"student's {tuple(student_logits.shape)} (batch and vocabulary must agree)"
        )
    t = min(student_logits.shape[1], teacher_log_probs.shape[1])
    student = F.log_softmax(student_logits[:, :t].float(), dim=-1)
    teacher = teacher_log_probs[:, :t]
    lens = torch.minimum(student_lens.to(teacher.device), teacher_lens.to(teacher.device)).clamp(max=t)
    valid = torch.arange(t, device=teacher.device)[None, :] < lens[:, None]  # (B, t)
    if rows is not None:
        valid = valid & rows.to(teacher.device)[:, None]
    per_frame = (teacher.exp() * (teacher - student)).sum(-1)  # (B, t)
    weights = valid if row_scale is None else valid * row_scale.to(teacher.device, teacher.dtype)[:, None]
    return (per_frame * weights).sum(), int(valid.sum())
