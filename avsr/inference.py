"""Decode preprocessed media (mouth ROI frames and/or 16 kHz audio) with a fine-tuned model,
window by window, and write the text as plain text or SubRip subtitles.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avsr.audio import SAMPLE_RATE, VIDEO_FPS
from avsr.checkpoint import read_model_config
from avsr.data import AVSample, collate
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.finetuned import check_joint_decoding, load_finetuned
from avsr.models.onnx_ctc import ONNX_FILE, OnnxCTCModel
from avsr.runtime import input_geometry, pick_device, resolve_model_dir

log = get_logger(__name__)

SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
TASKS = {"transcribe": "avsr", "translate": "avst", "avsr": "avsr", "avst": "avst"}


@dataclass(frozen=True)
class Segment:
    """Text of one window of a video, times in seconds from the first video frame."""

    start: float
    """Start of the window (s)."""
    end: float
    """End of the window (s)."""
    text: str
    """The decoded text (empty when nothing was recognised)."""


@dataclass(kw_only=True)
class Transcript:
    """Everything the decoding of one video found out (:meth:`WindowDecoder.decode_media`)."""

    video: str
    """The video's name as given."""
    segments: list[Segment]
    """Text per window, in time order."""
    modality: str
    """What was decoded: ``av``, ``a`` (no face) or ``v`` (no audio)."""
    task: str
    """``avsr`` (transcripts) or ``avst`` (English translations)."""
    duration: float
    """Length of the video (s)."""
    warnings: list[str] = field(default_factory=list)
    """What was missing (no face, no audio), one sentence each."""

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "task": self.task,
            "modality": self.modality,
            "duration": round(self.duration, 3),
            "warnings": list(self.warnings),
            "text": self.text,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                for s in self.segments
            ],
        }


@dataclass
class MediaInput:
    """One preprocessed video: ROI frames (T, 96, 96) uint8 and/or 16 kHz float audio."""

    video: np.ndarray | None
    """(T, H, W) uint8 mouth ROI frames at 25 fps; None when no face was found."""
    audio: np.ndarray | None
    """(S,) float32 16 kHz mono audio in [-1, 1]; None when the video has no audio."""
    warnings: list[str]
    """What was missing, one sentence each."""

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

    def check_request(self, task: str | None, window_s: float, modality: str) -> None:
        """UserError for a task the model does not do, an unknown modality or a bad window.

        ``task``: ``transcribe`` / ``translate`` (checked against the model; None: the model's).
        ``modality``: ``auto`` (AV when both are there, else what there is), ``av``, ``a``, ``v``.
        """
        self._check_task(task)
        if modality not in ("auto", "av", "a", "v"):
            raise UserError(f"modality must be auto, av, a or v, got {modality!r}")
        window_bounds(1, window_s)  # validate early

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
        self, media: MediaInput, name: str, *, window_s: float = 10.0, modality: str = "auto"
    ) -> Transcript:
        """Decode an already preprocessed video (ROI frames and/or audio)."""
        warnings = list(media.warnings)
        for w in warnings:
            log.warning("%s", w)
        mod = self._pick_modality(media, name, modality)
        samples = self._windows(media, window_s, mod)
        texts: list[str] = []
        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i : i + self.batch_size]
            batch = collate([s for s, _ in chunk])
            if self.device != "cpu":
                batch = batch.to(self.device)
            texts += self.model.decode(
                batch, modality=mod, beam=self.beam, ctc_weight=self.ctc_weight
            )
        segments = [
            Segment(start=t0, end=t1, text=" ".join(t.split()))
            for (_, (t0, t1)), t in zip(samples, texts)
        ]
        return Transcript(
            video=name,
            segments=segments,
            modality=mod,
            task=self.task,
            duration=media.duration,
            warnings=warnings,
        )

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

    def _windows(
        self, media: MediaInput, window_s: float, mod: str
    ) -> list[tuple[Any, tuple[float, float]]]:
        video = self._prepare_video(media.video) if media.video is not None and mod != "a" else None
        audio = media.audio if mod != "v" else None
        if media.video is not None:
            n_frames = media.video.shape[0]
        else:
            assert media.audio is not None
            n_frames = math.ceil(media.audio.shape[0] / SAMPLES_PER_FRAME)
        out = []
        for k, (f0, f1) in enumerate(window_bounds(n_frames, window_s)):
            a = None
            n_audio = (f1 - f0) * SAMPLES_PER_FRAME
            if audio is not None:
                a = np.ascontiguousarray(
                    audio[f0 * SAMPLES_PER_FRAME : f1 * SAMPLES_PER_FRAME], dtype=np.float32
                )
                if a.shape[0] < n_audio:  # audio a little shorter than the video: pad with silence
                    a = np.pad(a, (0, n_audio - a.shape[0]))
            v = None if video is None else np.ascontiguousarray(video[f0:f1])
            sample = AVSample(
                id=f"w{k}", index=k, n_audio=n_audio, n_video=f1 - f0, audio=a, video=v
            )
            out.append((sample, (f0 / VIDEO_FPS, f1 / VIDEO_FPS)))
        return out

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


# ------------------------------------------------------------------ output formats


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(segments: Sequence[Segment]) -> str:
    """SubRip subtitles, one cue per non-empty segment."""
    blocks = []
    for seg in (s for s in segments if s.text):
        blocks.append(
            f"{len(blocks) + 1}\n{_srt_time(seg.start)} --> {_srt_time(seg.end)}\n{seg.text}\n"
        )
    return "\n".join(blocks)


def _clock(t: float) -> str:
    m, s = divmod(t, 60.0)
    return f"{int(m):02d}:{s:05.2f}"


def to_text(transcript: Transcript, *, timestamps: bool = True) -> str:
    """Plain text: ``[mm:ss.ss - mm:ss.ss] text`` per window (or only the text)."""
    if not timestamps:
        return transcript.text + "\n"
    return "".join(f"[{_clock(s.start)} - {_clock(s.end)}] {s.text}\n" for s in transcript.segments)
