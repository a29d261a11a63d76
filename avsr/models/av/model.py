"""The audio-visual XLAVS-R encoder and its masked-prediction pretraining model.

Data flow of :class:`AVEncoder` (B batch, S samples, Tv video frames, T encoder frames)::

    audio (B,S) -- normalise -- XLS-R CNN -- LayerNorm -- Linear -> a (B,T,D)    [cnn, 50 Hz]
               \\- log-mel 26 x 4 stacked -- LayerNorm -- Linear -> a (B,T,D)     [fbank, 25 Hz]
    video (B,1,Tv,H,W) -- ResNet-18 lip encoder -- Linear -> v (B,Tv,D)          [25 fps]
    masking (training): spans of a / v replaced by a learned embedding per modality
    modality dropout / input mode: a or v multiplied by 0 per row
    v repeated to the audio rate (x2 at 50 Hz), trimmed / zero-padded to T
    fusion (concat: LayerNorm(2D) + Linear(2D, D))  -> positional conv -> Transformer

The encoder frame rate is ``frame_rate`` (50 with the XLS-R CNN, 25 with the
filterbank front end); audio is the clock: ``T`` comes from the audio lengths
(also when the audio tensor is absent or zeroed).

Randomness (masks, modality dropout) is drawn per row from a numpy generator;
callers pass one generator per row (``rngs``) to make the draws depend only on
the clip and the step (:class:`AVPretrainModel` does), otherwise generators are
seeded from torch's global RNG.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avsr.models.av.config import AVModelConfig
from avsr.models.av.dropout import draw_modality, modality_keep_flags
from avsr.models.av.fbank import FbankFrontend
from avsr.models.av.fusion import Fusion, align_mask, align_video
from avsr.models.av.heads import UnitPredictionHead
from avsr.models.av.masking import span_mask
from avsr.models.av.visual import LipEncoder
from avsr.models.encoders import build_from_arch
from avsr.models.xlsr.model import normalize_waveform
from avsr.step_output import StepOutput

if TYPE_CHECKING:
    from avsr.data.batch import AVBatch
    from avsr.models.xlsr import XlsrEncoder

Modality = Literal["av", "a", "v"]


@dataclass
class AVEncoderOutput:
    """``feats`` (B, T, D) final encoder output (after the final LayerNorm);
    ``lens`` (B,) valid frames per row; ``padding_mask`` (B, T) bool, True on
    *padded* frames; ``mask`` (B, T) bool union of the masked audio/video frames
    (None without masking)."""

    feats: Tensor
    lens: Tensor
    padding_mask: Tensor
    mask: Tensor | None = None
    keep_audio: Tensor | None = None
    """(B,) bool: rows whose audio stream was used (not dropped / not mode ``v``)."""
    keep_video: Tensor | None = None
    """(B,) bool: rows whose video stream was used (all False without a lip encoder)."""
    lips: Tensor | None = None
    """(B, Tv, D) projected lip features at 25 fps, before masking and modality dropout
    (zero past each row's video; None without a lip encoder or video)."""
    lip_lens: Tensor | None = None
    """(B,) video frames of each row of ``lips``."""
    hidden: list[Tensor] | None = None
    """Each Transformer block's output (B, T, D), when asked for (``return_hidden``)."""


@dataclass
class _ForwardPlan:
    """What one :meth:`AVEncoder.forward` call decides before running the streams."""

    b: int
    """Batch size."""
    t: int
    """Encoder frames of the longest row."""
    lens: Tensor
    """(B,) encoder frames per row, on the device of the audio lengths."""
    device: torch.device
    """Device of the model's features."""
    draw_dropout: bool
    """Whether modality dropout was drawn for this batch."""
    rngs: Sequence[np.random.Generator] | None
    """One generator per row (masks, modality dropout), None when nothing is drawn."""
    keep_a: list[bool]
    """Per row: the audio stream is used."""
    keep_v: list[bool]
    """Per row: the video stream is used (all False without a lip encoder)."""
    return_hidden: bool = False
    """Keep each Transformer block's output (:attr:`AVEncoderOutput.hidden`)."""


def _global_rngs(n: int) -> list[np.random.Generator]:
    seeds = torch.randint(0, 2**62, (n,), dtype=torch.long).tolist()
    return [np.random.default_rng(s) for s in seeds]


class AVEncoder(nn.Module):
    """XLS-R Transformer with an audio front end, optional lip encoder and fusion.

    ``modalities == ["audio"]`` gives the audio-only encoder of stage 0: no lip
    encoder, no fusion; its weights are exactly an XLS-R encoder's
    (:attr:`xlsr`), plus the audio mask embedding.
    """

    def __init__(self, cfg: AVModelConfig, xlsr: XlsrEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        self.xlsr = xlsr
        d = int(xlsr.model_dim)
        self.model_dim = d
        fe = xlsr.frontend
        self.fbank: FbankFrontend | None = None
        if cfg.audio_frontend == "fbank":
            self.fbank = FbankFrontend(d, n_mels=cfg.fbank.n_mels, stack=cfg.fbank.stack)
            # the CNN path is unused with filterbanks: remove it (no unused parameters under DDP)
            fe.feature_extractor = None
            fe.post_extract_layer_norm = None
            fe.model_dim_proj = None
            self.frame_rate = 100 // cfg.fbank.stack
        else:
            self.frame_rate = 50
        self.visual: LipEncoder | None = None
        self.video_proj: nn.Linear | None = None
        self.video_mask_emb: nn.Parameter | None = None
        self.fusion: Fusion | None = None
        if cfg.has_video:
            v = cfg.visual
            self.visual = LipEncoder(
                stem_channels=v.stem_channels,
                widths=v.widths,
                blocks=v.blocks,
                act=v.act,
                input_pool=v.input_pool,
            )
            self.visual.freeze_bn = v.freeze_bn
            self.video_proj = nn.Linear(self.visual.out_dim, d)
            if cfg.fusion.kind == "add" and cfg.fusion.init_audio_identity:
                # added to the audio features before the shared norm: start at zero, so the
                # pretrained audio path is undisturbed and the lips' share is learned from zero
                nn.init.zeros_(self.video_proj.weight)
                nn.init.zeros_(self.video_proj.bias)
            self.video_mask_emb = nn.Parameter(torch.empty(d).uniform_())
            self.fusion = Fusion(
                d,
                cfg.fusion.kind,
                init_audio_identity=cfg.fusion.init_audio_identity,
                norm=cfg.fusion.norm,
            )
        if "audio" not in cfg.modalities:
            raise ValueError(
                "the AV model needs the audio modality (it is the clock and the pretrained path)"
            )

    # ------------------------------------------------------------------ lengths
    def output_lens(self, audio_lens: Tensor) -> Tensor:
        """Encoder frames for ``audio_lens`` samples, (B,) int64."""
        if self.fbank is not None:
            return self.fbank.output_lens(audio_lens)
        return self.xlsr.frame_counts(audio_lens).to(audio_lens.device)

    @property
    def video_repeat(self) -> int:
        return 2 if self.frame_rate == 50 else 1

    # ------------------------------------------------------------------ pieces
    def _audio_features(self, audio: Tensor, audio_lens: Tensor) -> Tensor:
        """(B, S) -> (B, T, D), projected (before masking)."""
        if self.cfg.normalize_audio:
            audio = normalize_waveform(audio, audio_lens)
        if self.fbank is not None:
            feats, _ = self.fbank(audio, audio_lens)
            return feats
        feats, _ = self.xlsr.extract_features(audio, audio_lens)
        return self.xlsr.project(feats)

    def _transformer(self, x: Tensor, lens: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        """Fused (B, T, D) -> positional conv -> Transformer (incl. final LayerNorm);
        each block's output appended to ``hidden`` when given."""
        from fairseq2.nn import BatchLayout

        layout = BatchLayout.of(x, seq_lens=[int(n) for n in lens.tolist()])
        return self.xlsr.encode(x, layout, hidden=hidden)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        audio: Tensor | None,
        audio_lens: Tensor,
        video: Tensor | None = None,
        video_lens: Tensor | None = None,
        *,
        modality: Modality = "av",
        apply_mask: bool = False,
        modality_dropout: bool | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
        clean_audio: Tensor | None = None,
        return_hidden: bool = False,
    ) -> AVEncoderOutput:
        """audio (B, S) or None (zeros), audio_lens (B,) samples; video (B, 1, Tv, H, W)
        normalised pixels or None, video_lens (B,) frames at 25 fps.

        ``modality``: ``av`` both, ``a`` video zeros, ``v`` audio zeros (what modality
        dropout does). ``apply_mask``: span-mask both streams (pretraining).
        ``modality_dropout``: default on in training mode for ``av`` input.
        ``clean_audio`` (B, S): the audio before the training noise; with
        ``modality_dropout.clean_audio_alone`` the rows that the dropout leaves with audio
        only take it instead of ``audio``. ``return_hidden``: keep each Transformer
        block's output in ``hidden``.
        """
        if modality_dropout is None:
            modality_dropout = self.training
        plan = self._plan(audio_lens, modality, modality_dropout, apply_mask, rngs)
        plan.return_hidden = return_hidden
        audio = self._clean_alone(audio, clean_audio, plan)
        a = self._audio_stream(audio, audio_lens, video, plan)
        v, video_lens = self._video_stream(video, video_lens, a, plan)
        lips = v if video is not None else None  # a reference: read by the lip regression only
        mask = None
        if apply_mask:
            a, v, mask = self._mask_streams(a, v, video_lens, plan)
        a, v = self._drop_streams(a, v, plan)
        out = self._fuse_and_encode(a, v, mask, plan)
        out.lips, out.lip_lens = lips, video_lens
        return out

    def _plan(
        self,
        audio_lens: Tensor,
        modality: Modality,
        modality_dropout: bool,
        apply_mask: bool,
        rngs: Sequence[np.random.Generator] | None,
    ) -> _ForwardPlan:
        """Lengths, per-row generators and the streams kept per row (modality dropout drawn)."""
        keep_a_mode, keep_v_mode = modality_keep_flags(modality)
        b = audio_lens.shape[0]
        device = self.xlsr.mask_emb.device  # features live with the model
        lens = self.output_lens(audio_lens)
        t = int(lens.max()) if b else 0
        has_video = self.visual is not None
        draw_dropout = (
            modality_dropout and has_video and modality == "av" and self.cfg.modality_dropout.p > 0
        )
        if rngs is None and (apply_mask or draw_dropout):
            rngs = _global_rngs(b)
        keep_a = [keep_a_mode] * b
        keep_v = [keep_v_mode and has_video] * b
        if draw_dropout:
            assert rngs is not None
            flags = [
                draw_modality(r, self.cfg.modality_dropout.p, self.cfg.modality_dropout.audio_share)
                for r in rngs
            ]
            keep_a = [f[0] for f in flags]
            keep_v = [f[1] for f in flags]
        return _ForwardPlan(
            b=b,
            t=t,
            lens=lens,
            device=device,
            draw_dropout=draw_dropout,
            rngs=rngs,
            keep_a=keep_a,
            keep_v=keep_v,
        )

    def _clean_alone(
        self, audio: Tensor | None, clean_audio: Tensor | None, plan: _ForwardPlan
    ) -> Tensor | None:
        """``audio`` with the rows that keep only their audio replaced by ``clean_audio``
        (``modality_dropout.clean_audio_alone``, when dropout was drawn); else ``audio``."""
        if audio is None or clean_audio is None or not plan.draw_dropout:
            return audio
        if not self.cfg.modality_dropout.clean_audio_alone:
            return audio
        if clean_audio.shape != audio.shape:
            raise ValueError(f"clean_audio {tuple(clean_audio.shape)} != audio {tuple(audio.shape)}")
        alone = [ka and not kv for ka, kv in zip(plan.keep_a, plan.keep_v, strict=True)]
        rows = torch.tensor(alone, dtype=torch.bool, device=audio.device)
        return torch.where(rows[:, None], clean_audio.to(audio.dtype), audio)

    def _audio_stream(
        self, audio: Tensor | None, audio_lens: Tensor, video: Tensor | None, plan: _ForwardPlan
    ) -> Tensor:
        """Projected audio features (B, T, D) at the encoder rate; zeros when no row uses audio.

        In training a stream runs even when every row drops it (zero gradients, but every
        parameter stays in the graph, as DDP requires).
        """
        b, t, d = plan.b, plan.t, self.model_dim
        if any(plan.keep_a) and audio is None:
            raise ValueError("audio is None but the input mode needs audio (use modality='v')")
        if any(plan.keep_a) or (plan.draw_dropout and audio is not None):
            a = self._audio_features(audio, audio_lens)  # type: ignore[arg-type]
            if a.shape[1] != t:
                a = align_video(a, t, 1)
            return a
        dtype = video.dtype if video is not None else self.xlsr.mask_emb.dtype
        return torch.zeros(b, t, d, device=plan.device, dtype=dtype)

    def _video_stream(
        self, video: Tensor | None, video_lens: Tensor | None, a: Tensor, plan: _ForwardPlan
    ) -> tuple[Tensor | None, Tensor | None]:
        """(projected lip features (B, Tv, D) at 25 fps or None without a lip encoder,
        video_lens (B,)); zeros when no row uses video, frames past a row's length zeroed."""
        if self.visual is None:
            return None, video_lens
        assert self.video_proj is not None
        b, t, d, device = plan.b, plan.t, self.model_dim, plan.device
        if any(plan.keep_v) or (plan.draw_dropout and video is not None):
            if video is None or video_lens is None:
                raise ValueError("video is None but the input mode needs video (use modality='a')")
            v = self.video_proj(self.visual(video))
            if video_lens is not None:  # frames past each row's length carry nothing
                frames = torch.arange(v.shape[1], device=device)[None]
                valid = frames < video_lens.to(device)[:, None]
                v = v * valid[..., None].to(v.dtype)
        else:
            rep = self.video_repeat
            tv = video.shape[2] if video is not None else (t + rep - 1) // rep
            v = a.new_zeros(b, tv, d)
        if video_lens is None:
            video_lens = torch.full((b,), v.shape[1], dtype=torch.long, device=device)
        return v, video_lens

    def _mask_streams(
        self, a: Tensor, v: Tensor | None, video_lens: Tensor | None, plan: _ForwardPlan
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Span-mask audio then video with each row's generator: (a, v, mask (B, T) bool),
        the mask being the union of the masked audio frames and the aligned video frames."""
        assert plan.rngs is not None
        m, t, device = self.cfg.masking, plan.t, plan.device
        amask = np.stack(
            [
                span_mask(int(n), t, m.audio_prob, m.audio_span, m.min_masks, r)
                for n, r in zip(plan.lens.tolist(), plan.rngs)
            ]
        )
        amask_t = torch.from_numpy(amask).to(device)
        a = torch.where(amask_t[..., None], self.xlsr.mask_emb.to(a.dtype), a)
        mask = amask_t
        if v is not None:
            assert self.video_mask_emb is not None and video_lens is not None
            tv = v.shape[1]
            vmask = np.stack(
                [
                    span_mask(min(int(n), tv), tv, m.video_prob, m.video_span, m.min_masks, r)
                    for n, r in zip(video_lens.tolist(), plan.rngs)
                ]
            )
            vmask_t = torch.from_numpy(vmask).to(device)
            v = torch.where(vmask_t[..., None], self.video_mask_emb.to(v.dtype), v)
            mask = mask | align_mask(vmask_t, t, self.video_repeat)
        return a, v, mask

    def _drop_streams(
        self, a: Tensor, v: Tensor | None, plan: _ForwardPlan
    ) -> tuple[Tensor, Tensor | None]:
        """Multiply the dropped streams of each row by zero (modality dropout / input mode)."""
        if not all(plan.keep_a):
            a = a * torch.tensor(plan.keep_a, dtype=a.dtype, device=plan.device)[:, None, None]
        if v is not None and not all(plan.keep_v):
            v = v * torch.tensor(plan.keep_v, dtype=v.dtype, device=plan.device)[:, None, None]
        return a, v

    def _fuse_and_encode(
        self, a: Tensor, v: Tensor | None, mask: Tensor | None, plan: _ForwardPlan
    ) -> AVEncoderOutput:
        """Fuse the streams (video repeated to the audio rate), run the Transformer."""
        t, device = plan.t, plan.device
        if v is not None:
            assert self.fusion is not None
            x = self.fusion(a, align_video(v, t, self.video_repeat))
        else:
            x = a
        lens = plan.lens.to(device)
        padding_mask = torch.arange(t, device=device)[None] >= lens[:, None]
        if mask is not None:
            mask = mask & ~padding_mask
        hidden: list[Tensor] | None = [] if plan.return_hidden else None
        feats = self._transformer(x, plan.lens, hidden)
        return AVEncoderOutput(
            feats=feats,
            lens=lens,
            padding_mask=padding_mask,
            mask=mask,
            keep_audio=torch.tensor(plan.keep_a, dtype=torch.bool, device=device),
            keep_video=torch.tensor(plan.keep_v, dtype=torch.bool, device=device),
            hidden=hidden,
        )


def _instance_norm(x: Tensor, sel: Tensor, eps: float = 1e-5) -> Tensor:
    """x (B, T, D) normalised per row and dimension to zero mean, unit variance over the
    frames where sel (B, T) is true (float32; other frames carry the same shift and scale)."""
    w = sel.to(torch.float32)[..., None]
    n = w.sum(1, keepdim=True).clamp_min(1.0)
    x = x.float()
    mean = (x * w).sum(1, keepdim=True) / n
    var = ((x - mean).pow(2) * w).sum(1, keepdim=True) / n
    return (x - mean) / (var + eps).sqrt()


def _frozen_copy(module: AVEncoder) -> AVEncoder:
    """A deep copy in evaluation mode without gradients. Tensors computed from parameters
    and kept as plain attributes (``torch.nn.utils.weight_norm``'s ``weight``, recomputed
    before every forward) are detached first: deepcopy refuses non-leaf tensors."""
    for sub in module.modules():
        for name, value in list(vars(sub).items()):
            if isinstance(value, Tensor) and not value.is_leaf:
                setattr(sub, name, value.detach())
    teacher = copy.deepcopy(module).eval()
    teacher.requires_grad_(False)
    return teacher


def row_rngs(ids: Sequence[str], seed: int, step: int) -> list[np.random.Generator]:
    """One generator per clip, from (seed, step, crc32(clip id)): independent of batch split."""
    return [np.random.default_rng([seed, step, zlib.crc32(i.encode("utf-8"))]) for i in ids]


class AVPretrainModel(nn.Module):
    """AVEncoder + unit prediction head; ``forward(batch) -> StepOutput``.

    Training: modality dropout and span masking on; loss = masked_weight *
    CE(masked frames) + unmasked_weight * CE(unmasked frames), summed;
    ``sample_size`` counts the frames with non-zero weight. Evaluation: masks are
    still drawn (seeded by clip id only, reproducible) so masked accuracy can be
    measured; no modality dropout. 50 Hz units are subsampled by 2 for a 25 Hz encoder.
    """

    def __init__(self, encoder: AVEncoder, num_units: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_units = num_units
        h = encoder.cfg.head
        self.head = UnitPredictionHead(
            encoder.model_dim, num_units, proj_dim=h.proj_dim, temperature=h.temperature
        )
        self.num_updates = 0
        self._calls = 0
        self._updates_set = False
        self._teacher: list[AVEncoder] = []  # a frozen copy, outside the module tree

    def freeze_teacher(self) -> None:
        """Keeps a frozen copy of the encoder as it is now: the consistency target with
        ``loss.consistency_frozen_teacher`` (not saved, not trained)."""
        teacher = _frozen_copy(self.encoder)
        self._teacher = [teacher]

    def set_num_updates(self, n: int) -> None:
        """Called by the training loop before every update: seeds the mask / dropout draws."""
        self.num_updates = int(n)
        self._updates_set = True

    def fsdp_modules(self) -> list[nn.Module]:
        """Sub-modules sharded separately under FSDP2 (each Transformer block, the lip encoder)."""
        mods: list[nn.Module] = list(self.encoder.xlsr.encoder.layers)
        if self.encoder.visual is not None:
            mods.append(self.encoder.visual)
        return mods

    @property
    def cfg(self) -> AVModelConfig:
        return self.encoder.cfg

    def targets(self, units: Tensor, t: int) -> Tensor:
        """units (B, U) at 50 Hz (-100 padded) -> (B, t) at the encoder rate."""
        if self.encoder.frame_rate == 25:
            units = units[:, ::2]
        if units.shape[1] >= t:
            return units[:, :t]
        pad = units.new_full((units.shape[0], t - units.shape[1]), -100)
        return torch.cat([units, pad], dim=1)

    def forward(self, batch: AVBatch, *, modality: Modality = "av") -> StepOutput:
        if batch.units is None:
            raise ValueError("pretraining batches need unit labels")
        if self.training:
            # the loop's update counter (restored on resume), else a call counter
            step = self.num_updates if self._updates_set else self._calls
            self._calls += 1
        else:
            step = 2**62  # validation: fixed masks per clip
        rngs = row_rngs(batch.ids, self.cfg.seed, step)
        w = self.cfg.loss
        consistency = self.training and w.consistency_weight > 0 and batch.audio is not None
        out = self.encoder(
            batch.audio,
            batch.audio_lens,
            batch.video,
            batch.video_lens,
            modality=modality,
            apply_mask=True,
            modality_dropout=self.training,
            rngs=rngs,
            clean_audio=batch.clean_audio,
            return_hidden=consistency and w.consistency_all_blocks,
        )
        step = self.loss(out, batch.units)
        clean = batch.clean_audio if batch.clean_audio is not None else batch.audio
        if consistency:
            assert clean is not None
            self._add_consistency(step, out, clean, batch.audio_lens)
        if w.lip_regression_weight > 0 and out.lips is not None and batch.audio is not None:
            assert clean is not None
            self._add_lip_regression(step, out, clean, batch.audio_lens)
        return step

    def _add_lip_regression(
        self, step: StepOutput, out: AVEncoderOutput, clean: Tensor, audio_lens: Tensor
    ) -> None:
        """Adds ``loss.lip_regression_weight`` x sum over frames with video of
        |lips - audio|^2 / mean |audio|^2 (audio: the clean audio's projected features,
        no gradient) to ``step.loss``; logs it as ``lipreg``."""
        assert out.lips is not None and out.lip_lens is not None
        t, rep = out.feats.shape[1], self.encoder.video_repeat
        lips = align_video(out.lips, t, rep)
        with torch.no_grad():
            target = self.encoder._audio_features(clean, audio_lens)
            if target.shape[1] != t:
                target = align_video(target, t, 1)
        frames = torch.arange(t, device=lips.device)[None]
        sel = (frames < out.lip_lens.to(lips.device)[:, None] * rep) & ~out.padding_mask
        n = int(sel.sum())
        step.logs["lipreg:den"] = float(n)
        if n == 0:
            step.logs["lipreg:num"] = 0.0
            return
        tgt = target[sel].float()
        err = (lips[sel].float() - tgt).pow(2).sum(-1) / tgt.pow(2).sum(-1).mean().clamp_min(1e-8)
        total = err.sum()
        step.logs["lipreg:num"] = float(total.detach())
        step.loss = step.loss + self.cfg.loss.lip_regression_weight * total

    def _clean_audio_targets(self, clean: Tensor, audio_lens: Tensor, all_blocks: bool) -> list[Tensor]:
        """The encoder's (or the frozen teacher's) outputs on ``clean`` audio alone, in
        evaluation mode, no gradient: [final] or [block 1, ..., block L, final], each (B, T, D)."""
        encoder = self.encoder
        if self._teacher:
            encoder = self._teacher[0] = self._teacher[0].to(clean.device)
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.no_grad():
                ref = encoder(clean, audio_lens, modality="a", return_hidden=all_blocks)
        finally:
            encoder.train(was_training)
        return [*(ref.hidden or []), ref.feats]

    def _add_consistency(
        self, step: StepOutput, out: AVEncoderOutput, clean: Tensor, audio_lens: Tensor
    ) -> None:
        """Adds ``loss.consistency_weight`` x the sum over unmasked frames of
        |student - target|^2 / mean |target|^2 (mean over the compared outputs) to
        ``step.loss``, the target being the encoder's output on the clean audio alone;
        logs it as ``consist``."""
        all_blocks = self.cfg.loss.consistency_all_blocks
        targets = self._clean_audio_targets(clean, audio_lens, all_blocks)
        students = [*(out.hidden or []), out.feats] if all_blocks else [out.feats]
        sel = ~out.padding_mask
        if out.mask is not None:
            sel = sel & ~out.mask
        n = int(sel.sum())
        step.logs["consist:den"] = float(n)
        if n == 0:
            step.logs["consist:num"] = 0.0
            return
        total = out.feats.new_zeros((), dtype=torch.float32)
        norm = self.cfg.loss.consistency_instance_norm
        for student, target in zip(students, targets, strict=True):
            if norm:
                student, target = _instance_norm(student, sel), _instance_norm(target, sel)
            tgt = target[sel].float()
            err = (student[sel].float() - tgt).pow(2).sum(-1)
            total = total + err.sum() / tgt.pow(2).sum(-1).mean().clamp_min(1e-8)
        total = total / len(students)
        step.logs["consist:num"] = float(total.detach())
        step.loss = step.loss + self.cfg.loss.consistency_weight * total

    def loss(self, out: AVEncoderOutput, units: Tensor) -> StepOutput:
        """Summed CE on masked (and, if weighted, unmasked) frames + additive logs."""
        assert out.mask is not None
        tgt = self.targets(units.to(out.feats.device), out.feats.shape[1])
        valid = (tgt >= 0) & ~out.padding_mask
        sel_m = valid & out.mask
        sel_u = valid & ~out.mask
        w = self.cfg.loss
        logs: dict[str, float] = {}
        total = out.feats.new_zeros((), dtype=torch.float32)
        sample_size = 0
        for name, sel, weight in (
            ("masked", sel_m, w.masked_weight),
            ("unmasked", sel_u, w.unmasked_weight),
        ):
            n = int(sel.sum())
            logs[f"n_{name}"] = float(n)
            logs[f"acc_{name}:den"] = float(n)
            logs[f"loss_{name}:den"] = float(n)
            if n == 0:
                logs[f"acc_{name}:num"] = 0.0
                logs[f"loss_{name}:num"] = 0.0
                continue
            need_grad = weight > 0 and torch.is_grad_enabled()
            with torch.set_grad_enabled(need_grad):
                logits = self.head(out.feats[sel])
                ce = F.cross_entropy(logits, tgt[sel], reduction="sum")
            logs[f"acc_{name}:num"] = float((logits.argmax(-1) == tgt[sel]).sum())
            logs[f"loss_{name}:num"] = float(ce.detach())
            if weight > 0:
                total = total + weight * ce
                sample_size += n
        if sample_size == 0:
            # keep every parameter in the graph (DDP) with a zero loss
            total = total + 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad)
        return StepOutput(loss=total, sample_size=sample_size, logs=logs)


def build_av_encoder(cfg: AVModelConfig, xlsr: XlsrEncoder | None = None) -> AVEncoder:
    """An AVEncoder around ``xlsr`` (or a fresh encoder of ``cfg.encoder.family`` and ``arch``)."""
    if xlsr is None:
        enc = cfg.encoder
        xlsr = build_from_arch(enc.family, enc.arch, **enc.overrides)  # type: ignore[assignment]
    return AVEncoder(cfg, xlsr)  # type: ignore[arg-type]
