"""Decode preprocessed media (mouth ROI frames and/or 16 kHz audio) with a fine-tuned model,
speech segment by speech segment (or in fixed windows).

Speech segments (``segment="vad"``, the default of ``avsr transcribe``):
:func:`avsr.segmenting.speech_segments` cuts the audio at pauses (padded, at most
``window_s`` long); without audio, and with ``segment="fixed"``, fixed windows. A segment
of an AV video in which the face was found in fewer than half of the frames is decoded from
the audio alone and marked (``Segment.modality="a"``, ``Segment.note="no face"``). CTC models
with greedy decoding also give word times (:mod:`avsr.timestamps`). Output formats are in
:mod:`avsr.transcript`.

The video front end (face mesh, ROI, audio extraction on the fly) lives with the
preprocessing, in :class:`tasks.transcriber.Transcriber`, which adds
``transcribe(video)`` to the :class:`WindowDecoder` here.

Missing inputs:

- no face found (``MediaInput.video`` is None): audio-only decoding (or a
  :class:`UserError` when ``modality`` asks for video);
- no audio stream: video-only decoding (or an error when ``modality="a"``/``"av"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avsr.audio import SAMPLE_RATE, VIDEO_FPS
from avsr.av_offset import resolve_av_offset, shift_audio
from avsr.checkpoint import read_model_config
from avsr.data import AVSample, collate
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.finetuned import check_joint_decoding, load_finetuned
from avsr.models.onnx_ctc import ONNX_FILE, OnnxCTCModel
from avsr.runtime import input_geometry, pick_device, resolve_model_dir
from avsr.segmenting import (
    SegmentingConfig,
    frame_ranges,
    segment_modalities,
    speech_segments,
)
from avsr.timestamps import Word, collapse_path, ctc_best_paths, ctc_words, shift_word
from avsr.transcript import Segment, Transcript, to_srt, to_text, to_vtt

__all__ = [
    "MediaInput",
    "Segment",
    "Transcript",
    "WindowDecoder",
    "Word",
    "to_srt",
    "to_text",
    "to_vtt",
    "window_bounds",
]

log = get_logger(__name__)

SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
TASKS = {"transcribe": "avsr", "translate": "avst", "avsr": "avsr", "avst": "avst"}
SEGMENTATIONS = {"vad": 20.0, "fixed": 10.0}
"""Segmentations and their default maximum segment / window length (s)."""


def _window_for(segment: str, window_s: float | None) -> float:
    return SEGMENTATIONS.get(segment, 10.0) if window_s is None else window_s


@dataclass
class MediaInput:
    """One preprocessed video: ROI frames (T, 96, 96) uint8 and/or 16 kHz float audio."""

    video: np.ndarray | None
    """(T, H, W) uint8 mouth ROI frames at 25 fps; None when no face was found."""
    audio: np.ndarray | None
    """(S,) float32 16 kHz mono audio in [-1, 1]; None when the video has no audio."""
    warnings: list[str]
    """What was missing, one sentence each."""
    face: np.ndarray | None = None
    """(T,) bool: the face was found on video frame t (None: unknown or no video)."""

    @property
    def duration(self) -> float:
        if self.video is not None:
            return self.video.shape[0] / VIDEO_FPS
        assert self.audio is not None
        return self.audio.shape[0] / SAMPLE_RATE


def window_bounds(
    n_frames: int, window_s: float, *, min_last_s: float = 1.0
) -> list[tuple[int, int]]:
    """[start, end) video-frame ranges of windows of ``window_s`` seconds covering ``n_frames``.

    A last window shorter than ``min(min_last_s, window_s / 2)`` is merged into the one before it.
    """
    if window_s <= 0 or not math.isfinite(window_s):
        raise UserError(f"window length must be a positive number of seconds, got {window_s}")
    win = max(1, int(round(window_s * VIDEO_FPS)))
    bounds = [(s, min(s + win, n_frames)) for s in range(0, n_frames, win)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min(min_last_s, window_s / 2) * VIDEO_FPS:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


class WindowDecoder:
    """A fine-tuned model loaded once, decoding any number of preprocessed media.

    Args:
        model_dir: a fine-tuned model directory (``avsr finetune`` output or its run folder).
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda``, ``cuda:N``.
        beam: beam width of seq2seq decoding.
        batch_size: windows decoded together.
        ctc_weight: joint CTC/attention decoding of a seq2seq model with a CTC branch at
            this CTC weight (0: attention only).
        backend: ``torch`` (the PyTorch model) or ``onnx`` (a CTC model's ONNX export run by
            onnxruntime on the CPU, :class:`avsr.models.onnx_ctc.OnnxCTCModel`).
        onnx_path: the ONNX file of the ``onnx`` backend (default ``MODEL/model.onnx``).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        beam: int = 5,
        batch_size: int = 8,
        ctc_weight: float = 0.0,
        backend: str = "torch",
        onnx_path: str | Path | None = None,
    ) -> None:
        self.model_dir = resolve_model_dir(model_dir)
        self.model_config = read_model_config(self.model_dir)
        check_joint_decoding(self.model_config, ctc_weight, self.model_dir)
        self.ctc_weight = ctc_weight
        self.device = pick_device(device)
        self.model = self._load_model(backend, onnx_path)
        self.task = self.model.config.task
        self.beam = beam
        self.batch_size = max(1, batch_size)
        self.crop, self.image_size = input_geometry(self.model_config)

    def _load_model(self, backend: str, onnx_path: str | Path | None) -> Any:
        """The PyTorch model (``torch``) or its ONNX export in onnxruntime (``onnx``, CPU)."""
        if backend == "torch":
            return load_finetuned(self.model_dir, device=self.device)
        if backend != "onnx":
            raise UserError(f"backend must be torch or onnx, got {backend!r}")
        self.device = "cpu"
        return OnnxCTCModel(self.model_dir, onnx_path or self.model_dir / ONNX_FILE)

    def check_request(
        self, task: str | None, window_s: float | None, modality: str, segment: str = "vad"
    ) -> None:
        """UserError for a task the model does not do, an unknown modality, segmentation or
        a bad window length.

        ``task``: ``transcribe`` / ``translate`` (checked against the model; None: the model's).
        ``modality``: ``auto`` (AV when both are there, else what there is), ``av``, ``a``, ``v``.
        ``segment``: ``vad`` (speech segments) or ``fixed`` (windows).
        """
        self._check_task(task)
        if modality not in ("auto", "av", "a", "v"):
            raise UserError(f"modality must be auto, av, a or v, got {modality!r}")
        if segment not in SEGMENTATIONS:
            raise UserError(f"segment must be vad or fixed, got {segment!r}")
        window_bounds(1, _window_for(segment, window_s))  # validate early

    def _check_task(self, task: str | None) -> None:
        if task is None:
            return
        want = TASKS.get(task)
        if want is None:
            raise UserError(f"unknown task {task!r} (transcribe, translate)")
        if want != self.task:
            kind = "a translation (avst)" if self.task == "avst" else "a recognition (avsr)"
            raise UserError(
                f"{self.model_dir}: {kind} model cannot {task}; give a model fine-tuned with --task {want}"
            )

    def decode_media(
        self,
        media: MediaInput,
        name: str,
        *,
        window_s: float | None = None,
        modality: str = "auto",
        segment: str = "fixed",
        av_offset_ms: float | str = 0.0,
    ) -> Transcript:
        """Decode an already preprocessed video (ROI frames and/or audio).

        ``segment``: ``fixed`` (windows of ``window_s`` s, default 10) or ``vad`` (speech
        segments of at most ``window_s`` s, default 20; fixed windows when there is no audio;
        the default of :meth:`tasks.transcriber.Transcriber.transcribe_detailed`).
        ``av_offset_ms``: how much the audio lags the lips; the audio is moved earlier by
        that much before segmenting and decoding (negative: later). ``"auto"``: estimated
        from the lips and the audio and corrected when confident
        (:func:`avsr.av_offset.resolve_av_offset`; the estimate goes into the transcript).
        """
        warnings = list(media.warnings)
        for w in warnings:
            log.warning("%s", w)
        mod = self._pick_modality(media, name, modality)
        offset, estimate = resolve_av_offset(av_offset_ms, media.audio, media.video, media.face)
        if estimate is not None:
            log.info("%s: A/V offset %s", name, estimate.summary())
        if offset and media.audio is not None:
            media = replace(media, audio=shift_audio(media.audio, offset))
        seg_kind = segment if media.audio is not None and mod != "v" else "fixed"
        bounds = self._bounds(media, seg_kind, _window_for(segment, window_s))
        segments, frame_s = self.decode_segments(media, bounds, mod)
        return Transcript(
            video=name,
            segments=segments,
            modality=mod,
            task=self.task,
            duration=media.duration,
            warnings=warnings,
            segmentation=seg_kind,
            word_timing=self.word_timing(frame_s),
            av_offset_ms=float(offset),
            av_offset_estimate=None if estimate is None else estimate.to_dict(),
        )

    def decode_segments(
        self, media: MediaInput, bounds: list[tuple[int, int]], mod: str, *, first_frame: int = 0
    ) -> tuple[list[Segment], float | None]:
        """Decode the [start, end) frame ranges ``bounds`` of ``media`` in modality ``mod``
        (an ``av`` segment without a face on most frames: audio only, marked ``no face``);
        returns the segments, timed from ``first_frame`` (the frame of ``media``'s start in
        the video), and the encoder frame length (s; None: no word times)."""
        mods = segment_modalities(bounds, media.face, mod)
        decoded, frame_s = self._decode_segments(media, bounds, mods)
        segments = [
            Segment(
                start=(first_frame + f0) / VIDEO_FPS,
                end=(first_frame + f1) / VIDEO_FPS,
                text=" ".join(text.split()),
                words=[shift_word(w, first_frame / VIDEO_FPS) for w in words],
                modality=m,
                note="no face" if m != mod else "",
            )
            for (f0, f1), m, (text, words) in zip(bounds, mods, decoded)
        ]
        return segments, frame_s

    def _bounds(self, media: MediaInput, segment: str, window_s: float) -> list[tuple[int, int]]:
        """[start, end) video-frame ranges to decode: speech segments or fixed windows."""
        if media.video is not None:
            n_frames = media.video.shape[0]
        else:
            assert media.audio is not None
            n_frames = math.ceil(media.audio.shape[0] / SAMPLES_PER_FRAME)
        if segment == "fixed":
            return window_bounds(n_frames, window_s)
        assert media.audio is not None
        ranges = speech_segments(media.audio, SegmentingConfig(max_s=window_s))
        return frame_ranges(ranges, n_frames)

    def word_timing(self, frame_s: float | None) -> str | None:
        """How word times were found and their precision, or None when there are none."""
        if not self._greedy_ctc() or frame_s is None:
            return None
        return (
            "CTC best path: from the first frame of a word's first token with text (a lone "
            "word marker not counted) to the end of its last token's last frame, no shift "
            f"applied; precision {frame_s * 1000:.0f} ms (one encoder frame)"
        )

    def _greedy_ctc(self) -> bool:
        m = self.model
        return (
            isinstance(m, torch.nn.Module)
            and getattr(m.config, "head", None) == "ctc"
            and getattr(m, "ctc_decoder", None) is None
        )

    def _decode_segments(
        self, media: MediaInput, bounds: list[tuple[int, int]], mods: list[str]
    ) -> tuple[list[tuple[str, list[Word]]], float | None]:
        """(text, words) per segment, decoded in batches of segments of the same modality,
        and the encoder frame length in seconds (None: not measured, no word times)."""
        video = self._prepare_video(media.video) if media.video is not None else None
        out: list[tuple[str, list[Word]]] = [("", [])] * len(bounds)
        frame_s = None
        for mod in sorted(set(mods)):
            idx = [i for i, m in enumerate(mods) if m == mod]
            for i in range(0, len(idx), self.batch_size):
                chunk = idx[i : i + self.batch_size]
                audio = media.audio if mod != "v" else None
                v = video if mod != "a" else None
                batch = collate([self._sample(k, bounds[k], audio, v) for k in chunk])
                if self.device != "cpu":
                    batch = batch.to(self.device)
                results, frame_s = self._decode_batch(batch, mod, [bounds[k] for k in chunk])
                for k, res in zip(chunk, results):
                    out[k] = res
        return out, frame_s

    def _decode_batch(
        self, batch: Any, mod: str, bounds: list[tuple[int, int]]
    ) -> tuple[list[tuple[str, list[Word]]], float | None]:
        """(text, words) per row, and the encoder frame length (s); words (and the frame
        length) only for a CTC model decoded greedily."""
        if not self._greedy_ctc():
            texts = self.model.decode(batch, modality=mod, beam=self.beam, ctc_weight=self.ctc_weight)
            return [(t, []) for t in texts], None
        paths, lens = ctc_best_paths(self.model, batch, mod)
        tok, blank = self.model.tokenizer, self.model.head.blank_id
        out = []
        frame_s = None
        for path, n, (f0, f1) in zip(paths, lens, bounds):
            frame_s = (f1 - f0) / VIDEO_FPS / max(1, n)
            ids = [t for t, _, _ in collapse_path(path, blank)]
            words = ctc_words(
                path,
                blank_id=blank,
                piece=tok.id_to_piece,
                frame_s=frame_s,
                offset_s=f0 / VIDEO_FPS,
                skip=tok.special_ids,
            )
            out.append((tok.decode(ids), words))
        return out, frame_s

    @staticmethod
    def _sample(
        k: int, bounds: tuple[int, int], audio: np.ndarray | None, video: np.ndarray | None
    ) -> AVSample:
        """One segment as a model input: its audio (padded with silence to the frames) and
        ROI frames."""
        f0, f1 = bounds
        n_audio = (f1 - f0) * SAMPLES_PER_FRAME
        a = None
        if audio is not None:
            a = np.ascontiguousarray(
                audio[f0 * SAMPLES_PER_FRAME : f1 * SAMPLES_PER_FRAME], dtype=np.float32
            )
            if a.shape[0] < n_audio:  # audio a little shorter than the video: pad with silence
                a = np.pad(a, (0, n_audio - a.shape[0]))
        v = None if video is None else np.ascontiguousarray(video[f0:f1])
        return AVSample(id=f"w{k}", index=k, n_audio=n_audio, n_video=f1 - f0, audio=a, video=v)

    def _pick_modality(self, media: MediaInput, name: str, modality: str) -> str:
        has_v, has_a = media.video is not None, media.audio is not None
        if modality == "auto":
            return "av" if has_v and has_a else ("v" if has_v else "a")
        if modality in ("av", "v") and not has_v:
            raise UserError(
                f"{name}: modality {modality!r} needs the face video, but no face was found"
            )
        if modality in ("av", "a") and not has_a:
            raise UserError(
                f"{name}: modality {modality!r} needs audio, but the video has no audio stream"
            )
        return modality

    def _prepare_video(self, video: np.ndarray) -> np.ndarray:
        if self.image_size is not None and video.shape[1:] != (self.image_size, self.image_size):
            import cv2

            video = np.stack(
                [
                    cv2.resize(f, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                    for f in video
                ]
            )
        h, w = video.shape[1:]
        c = self.crop
        if h < c or w < c:
            raise UserError(f"ROI frames {h}x{w} are smaller than the model's crop {c}")
        y0, x0 = (h - c) // 2, (w - c) // 2
        return np.ascontiguousarray(video[:, y0 : y0 + c, x0 : x0 + c])
