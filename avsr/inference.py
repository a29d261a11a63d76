"""Transcribe or translate your own videos with a fine-tuned model.

::

    from avsr.inference import Transcriber

    tr = Transcriber("RUN/best")                  # the model is loaded once
    for seg in tr.transcribe("talk.mp4", window_s=10):
        print(f"{seg.start:.2f}-{seg.end:.2f} {seg.text}")

Each video is preprocessed on the fly exactly as ``avsr preprocess`` does it
(:func:`preprocessing.pipeline.process_clip`: 25 fps, face mesh, smoothed
landmarks, 96x96 mouth ROI, 16 kHz mono audio) into a temporary folder; it is
cut into windows of ``window_s`` seconds which are decoded in batches.

Missing inputs:

- no face found: audio-only decoding with a warning (or a :class:`UserError`
  when ``modality`` asks for video);
- no audio stream: video-only decoding (or an error when ``modality="a"``/``"av"``);
- neither: a :class:`UserError`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avsr.errors import UserError
from avsr.logging_utils import get_logger

log = get_logger(__name__)

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
TASKS = {"transcribe": "avsr", "translate": "avst", "avsr": "avsr", "avst": "avst"}


@dataclass(frozen=True)
class Segment:
    """Text of one window of a video, times in seconds from the first video frame."""

    start: float
    end: float
    text: str


@dataclass(kw_only=True)
class Transcript:
    """Everything :meth:`Transcriber.transcribe_detailed` found out about one video."""

    video: str
    segments: list[Segment]
    modality: str
    """What was decoded: ``av``, ``a`` (no face) or ``v`` (no audio)."""
    task: str
    duration: float
    warnings: list[str] = field(default_factory=list)

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


def resolve_model_dir(path: str | Path) -> Path:
    """A fine-tuned model directory: ``path`` itself, or the ``model/`` export of an
    ``avsr finetune`` run folder. UserError when neither."""
    from avsr.checkpoint import is_model_dir

    path = Path(path)
    if is_model_dir(path):
        return path
    if is_model_dir(path / "model"):
        log.info("%s: using the run's exported model %s", path, path / "model")
        return path / "model"
    if not path.exists():
        raise UserError(f"{path}: model directory not found")
    raise UserError(
        f"{path}: not a fine-tuned model directory (no model.safetensors + config.yaml)"
    )


def input_geometry(model_config: dict[str, Any]) -> tuple[int, int | None]:
    """(centre-crop size, resize-to size or None) of the ROI frames the model was trained on.

    From the ``data`` section of a fine-tuned model's config when it has one, else the
    data defaults (88, no resize).
    """
    from avsr.data import DataConfig

    default = DataConfig()
    data = model_config.get("data") or {}
    crop = int(data.get("crop_size", default.crop_size))
    size = data.get("image_size", default.image_size)
    return crop, (int(size) if size is not None else None)


@dataclass
class MediaInput:
    """One preprocessed video: ROI frames (T, 96, 96) uint8 and/or 16 kHz float audio."""

    video: np.ndarray | None
    audio: np.ndarray | None
    warnings: list[str]

    @property
    def duration(self) -> float:
        if self.video is not None:
            return self.video.shape[0] / FPS
        assert self.audio is not None
        return self.audio.shape[0] / SAMPLE_RATE


def preprocess_video(
    path: str | Path, cfg: Any = None, *, work_dir: str | Path | None = None
) -> MediaInput:
    """Run the preprocessing of one video (face mesh, ROI, audio) into memory.

    ``cfg``: a :class:`preprocessing.clip.PreprocessConfig` (default settings if None);
    clips without audio are always kept (video only).
    """
    import dataclasses

    from avsr.data import read_audio, read_video_gray
    from preprocessing.audio import decode_audio_stream
    from preprocessing.clip import Clip, PreprocessConfig, clip_id_for
    from preprocessing.pipeline import process_clip
    from preprocessing.video_io import MediaError, probe

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: video not found")
    cfg = dataclasses.replace(cfg or PreprocessConfig(), keep_video_only=True, workers=1)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="xlavsr-transcribe-", dir=work_dir) as tmp:
        clip = Clip(id=clip_id_for(path), video=str(path))
        rec = process_clip(clip, cfg, tmp)
        status, reason = rec.get("status"), rec.get("reason")
        if status == "ok":
            video = read_video_gray(Path(tmp) / rec["video"])
            audio = read_audio(Path(tmp) / rec["audio"]) if rec.get("audio") else None
            if audio is None:
                warnings.append(f"{path}: no audio stream: video-only decoding")
            elif rec.get("interpolated_frames"):
                log.debug(
                    "%s: %d frames without a face were interpolated",
                    path,
                    rec["interpolated_frames"],
                )
            return MediaInput(video=video, audio=audio, warnings=warnings)
        if status == "skipped" and reason == "no_face":
            try:
                has_audio = probe(path).has_audio
                samples = decode_audio_stream(path)[0] if has_audio else None
            except MediaError as exc:
                raise UserError(
                    f"{path}: no face found and the audio cannot be read: {exc.detail}"
                ) from exc
            if samples is None:
                raise UserError(
                    f"{path}: no face found ({rec.get('detail')}) and no audio stream: nothing to decode"
                )
            warnings.append(f"{path}: no face found ({rec.get('detail', '')}): audio-only decoding")
            return MediaInput(
                video=None, audio=(samples.astype(np.float32) / 32768.0), warnings=warnings
            )
        raise UserError(f"{path}: cannot preprocess ({reason}): {rec.get('detail', '')}")


def window_bounds(
    n_frames: int, window_s: float, *, min_last_s: float = 1.0
) -> list[tuple[int, int]]:
    """[start, end) video-frame ranges of windows of ``window_s`` seconds covering ``n_frames``.

    A last window shorter than ``min(min_last_s, window_s / 2)`` is merged into the one before it.
    """
    if window_s <= 0 or not math.isfinite(window_s):
        raise UserError(f"window length must be a positive number of seconds, got {window_s}")
    win = max(1, int(round(window_s * FPS)))
    bounds = [(s, min(s + win, n_frames)) for s in range(0, n_frames, win)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min(min_last_s, window_s / 2) * FPS:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


class Transcriber:
    """A fine-tuned model loaded once, for any number of videos.

    Args:
        model_dir: a fine-tuned model directory (``avsr finetune`` output).
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda``, ``cuda:N``.
        beam: beam width of seq2seq decoding.
        batch_size: windows decoded together.
        preprocess: :class:`preprocessing.clip.PreprocessConfig` for the on-the-fly preprocessing.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        beam: int = 5,
        batch_size: int = 8,
        preprocess: Any = None,
    ) -> None:
        from avsr.checkpoint import read_model_config
        from avsr.evaluation.run import pick_device
        from avsr.models.finetuned import load_finetuned

        self.model_dir = resolve_model_dir(model_dir)
        self.model_config = read_model_config(self.model_dir)
        self.device = pick_device(device)
        self.model = load_finetuned(self.model_dir, device=self.device)
        self.task = self.model.config.task
        self.beam = beam
        self.batch_size = max(1, batch_size)
        self.preprocess = preprocess
        self.crop, self.image_size = input_geometry(self.model_config)

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

    def transcribe(
        self,
        video_path: str | Path,
        *,
        task: str | None = None,
        window_s: float = 10.0,
        modality: str = "auto",
    ) -> list[Segment]:
        """Text per window of one video (see :meth:`transcribe_detailed`)."""
        return self.transcribe_detailed(
            video_path, task=task, window_s=window_s, modality=modality
        ).segments

    def transcribe_detailed(
        self,
        video_path: str | Path,
        *,
        task: str | None = None,
        window_s: float = 10.0,
        modality: str = "auto",
    ) -> Transcript:
        """Preprocess, window and decode one video.

        ``task``: ``transcribe`` / ``translate`` (checked against the model; None: the model's).
        ``modality``: ``auto`` (AV when both are there, else what there is), ``av``, ``a``, ``v``.
        """
        self._check_task(task)
        if modality not in ("auto", "av", "a", "v"):
            raise UserError(f"modality must be auto, av, a or v, got {modality!r}")
        window_bounds(1, window_s)  # validate early
        media = preprocess_video(video_path, self.preprocess)
        return self.decode_media(media, str(video_path), window_s=window_s, modality=modality)

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
        from avsr.data import collate

        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i : i + self.batch_size]
            batch = collate([s for s, _ in chunk])
            if self.device != "cpu":
                batch = batch.to(self.device)
            texts += self.model.decode(batch, modality=mod, beam=self.beam)
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
        from avsr.data import AVSample

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
            out.append((sample, (f0 / FPS, f1 / FPS)))
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

    def transcribe_many(
        self,
        videos: Sequence[str | Path],
        *,
        task: str | None = None,
        window_s: float = 10.0,
        modality: str = "auto",
    ) -> list[Transcript]:
        return [
            self.transcribe_detailed(v, task=task, window_s=window_s, modality=modality)
            for v in videos
        ]


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
