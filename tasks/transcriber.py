"""Transcribe or translate your own videos with a fine-tuned model.

::

    from tasks.transcriber import Transcriber

    tr = Transcriber("RUN/best")                  # the model is loaded once
    for seg in tr.transcribe("talk.mp4"):
        print(f"{seg.start:.2f}-{seg.end:.2f} {seg.text}")

Each video is preprocessed on the fly exactly as ``avsr preprocess`` does it
(:func:`preprocessing.pipeline.process_clip`: 25 fps, face mesh following the
largest face, smoothed landmarks, 96x96 mouth ROI, 16 kHz mono audio) into a
temporary folder; it is cut into speech segments at pauses (voice-activity
detection, at most ``window_s`` seconds) or fixed windows, which are decoded in
batches (:class:`avsr.inference.WindowDecoder`). A segment in which the face is
missing on more than half of the frames is decoded from the audio alone and
marked so (``Segment.modality == "a"``, ``Segment.note == "no face"``).

Missing inputs:

- no face found: audio-only decoding with a warning (or a :class:`UserError`
  when ``modality`` asks for video);
- no audio stream: video-only decoding (or an error when ``modality="a"``/``"av"``);
- neither: a :class:`UserError`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from avsr.audio import SAMPLE_RATE, VIDEO_FPS, read_audio
from avsr.av_offset import OffsetEstimate, resolve_av_offset, shift_audio
from avsr.data import read_video_gray
from avsr.errors import UserError
from avsr.inference import SAMPLES_PER_FRAME, SEGMENTATIONS, MediaInput, WindowDecoder
from avsr.logging_utils import get_logger
from avsr.segmenting import SegmentingConfig, frame_ranges, speech_segments
from avsr.transcript import Segment, Transcript
from preprocessing.audio import decode_audio_stream
from preprocessing.clip import Clip, PreprocessConfig, clip_id_for
from preprocessing.damage import damage_record
from preprocessing.pipeline import process_clip
from preprocessing.video_io import MediaError, ResampleStats, VideoInfo, probe
from tasks.longform import chunk_media, iter_chunks, load_aligned_audio, plan_chunks

log = get_logger(__name__)


def preprocess_video(
    path: str | Path, cfg: PreprocessConfig | None = None, *, work_dir: str | Path | None = None
) -> MediaInput:
    """Run the preprocessing of one video (face mesh, ROI, audio) into memory.

    ``cfg``: the preprocessing settings (default settings if None); clips without audio
    are always kept (video only).
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: video not found")
    cfg = dataclasses.replace(
        cfg or PreprocessConfig(), keep_video_only=True, workers=1, save_landmarks=True
    )
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="xlavsr-transcribe-", dir=work_dir) as tmp:
        clip = Clip(id=clip_id_for(path), video=str(path))
        rec = process_clip(clip, cfg, tmp)
        status, reason = rec.get("status"), rec.get("reason")
        warnings.extend(_damage_warnings(path, rec))
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
            face = face_found(Path(tmp) / "landmarks" / f"{clip.id}.npz", len(video))
            return MediaInput(video=video, audio=audio, warnings=warnings, face=face)
        if status == "skipped" and reason == "no_face":
            return _audio_only(path, rec, warnings)
        raise UserError(f"{path}: cannot preprocess ({reason}): {rec.get('detail', '')}")


def face_found(landmarks_npz: Path, n_frames: int) -> np.ndarray | None:
    """(T,) bool: the landmark source found the face on frame t (frames it skipped, see
    ``landmark_stride``, take the answer of the last frame it ran on); None without the file."""
    if not landmarks_npz.is_file():
        return None
    with np.load(landmarks_npz) as z:
        found = ~np.isnan(z["landmarks"]).any(axis=(1, 2))
        evaluated = z["evaluated"].astype(bool)
    last = np.maximum.accumulate(np.where(evaluated, np.arange(len(found)), 0))
    out = found[last] if len(found) else found
    if len(out) != n_frames:
        return None
    return out


T = TypeVar("T")


def _media_step(path: Path, step: Callable[[], T]) -> T:
    """``step()``, with a MediaError (unreadable, damaged, ...) turned into a UserError."""
    try:
        return step()
    except MediaError as exc:
        raise UserError(f"{path}: cannot preprocess ({exc.reason}): {exc.detail}") from exc


def _probe(path: Path) -> VideoInfo:
    """What the container says about the video (UserError when it is missing or unreadable)."""
    if not path.is_file():
        raise UserError(f"{path}: video not found")
    return _media_step(path, lambda: probe(path))


def _damage_warnings(path: Path, rec: dict[str, Any]) -> list[str]:
    """A warning per stream with packets the decoder rejected (skipped, their time filled)."""
    out = []
    for kind in ("audio", "video"):
        n = rec.get(f"damaged_{kind}_packets") or 0
        if n:
            out.append(
                f"{path}: {n} of {rec.get(f'{kind}_packets')} {kind} packets are damaged: "
                f"skipped, {rec.get(f'{kind}_filled_s')} s filled"
            )
    return out


def _audio_only(path: Path, rec: dict, warnings: list[str]) -> MediaInput:  # type: ignore[type-arg]
    """The audio of a video in which no face was found (UserError when it has none)."""
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
    return MediaInput(video=None, audio=(samples.astype(np.float32) / 32768.0), warnings=warnings)


class Transcriber(WindowDecoder):
    """A fine-tuned model loaded once, for any number of videos.

    Args:
        model_dir: a fine-tuned model directory (``avsr finetune`` output).
        preprocess: the settings of the on-the-fly preprocessing (defaults if None).
        options: ``device``, ``beam``, ``batch_size``, ``ctc_weight``, ``backend``, ``onnx_path``
            of :class:`WindowDecoder`.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        preprocess: PreprocessConfig | None = None,
        stream: bool = True,
        chunk_s: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(model_dir, **options)
        self.preprocess = preprocess
        self.stream = stream
        """Speech segments of videos with audio are preprocessed chunk by chunk
        (:mod:`tasks.longform`); False: the whole video in memory first."""
        self.chunk_s = chunk_s
        """Longest stretch of video (s) preprocessed at once when streaming."""

    def _first_chunk_offset(
        self, path: Path, samples: np.ndarray, cfg: PreprocessConfig
    ) -> tuple[float, OffsetEstimate | None]:
        """The A/V offset to correct, estimated on the video's first ``chunk_s`` seconds."""
        n = min(-(-len(samples) // SAMPLES_PER_FRAME), max(1, int(self.chunk_s * VIDEO_FPS)))
        frames, rois = next(iter_chunks(str(path), [(0, n)], cfg, ResampleStats()))
        media = chunk_media(frames, rois, samples)
        return resolve_av_offset("auto", media.audio, media.video, media.face)

    def _streamed(
        self,
        path: Path,
        name: str,
        window_s: float | None,
        av_offset_ms: float | str,
        info: VideoInfo,
    ) -> Transcript | None:
        """Speech segments of a video with audio, its ROIs made chunk by chunk while decoding
        (None when there is no speech: the in-memory path then says whether a face is there)."""
        cfg = dataclasses.replace(self.preprocess or PreprocessConfig(), workers=1)
        audio = _media_step(path, lambda: load_aligned_audio(str(path)))
        offset, estimate = float(av_offset_ms) if av_offset_ms != "auto" else 0.0, None
        if av_offset_ms == "auto":
            offset, estimate = _media_step(
                path, lambda: self._first_chunk_offset(path, audio.samples, cfg)
            )
            if estimate is not None:
                log.info("%s: A/V offset %s", name, estimate.summary())
        samples = shift_audio(audio.samples, offset)
        n_frames = -(-len(samples) // SAMPLES_PER_FRAME)
        found = speech_segments(samples, SegmentingConfig(max_s=window_s or SEGMENTATIONS["vad"]))
        bounds = frame_ranges(found, n_frames)
        if not bounds:
            return None
        chunks = plan_chunks(bounds, max(1, int(self.chunk_s * VIDEO_FPS)))
        ranges = [(bounds[a][0], bounds[b - 1][1]) for a, b in chunks]
        stats = ResampleStats()
        segments: list[Segment] = []
        frame_s = None

        def decode_all() -> None:
            nonlocal frame_s
            for (a, b), (frames, rois) in zip(chunks, iter_chunks(str(path), ranges, cfg, stats)):
                local = [(f0 - frames.start, f1 - frames.start) for f0, f1 in bounds[a:b]]
                media = chunk_media(frames, rois, samples)
                segs, fs = self.decode_segments(media, local, "av", first_frame=frames.start)
                segments.extend(segs)
                frame_s = fs or frame_s

        _media_step(path, decode_all)
        warnings = _damage_warnings(path, damage_record(audio.damage, stats.damage))
        modality = "av"
        if segments and all(s.modality == "a" for s in segments):
            modality = "a"
            warnings.append(f"{path}: no face found in the speech: audio-only decoding")
        for w in warnings:
            log.warning("%s", w)
        return Transcript(
            video=name,
            segments=segments,
            modality=modality,
            task=self.task,
            duration=info.duration or len(audio.samples) / SAMPLE_RATE,
            warnings=warnings,
            segmentation="vad",
            word_timing=self.word_timing(frame_s),
            av_offset_ms=offset,
            av_offset_estimate=None if estimate is None else estimate.to_dict(),
        )

    def transcribe(self, video_path: str | Path, **request: Any) -> list[Segment]:
        """Text per segment of one video (``request``: the options of
        :meth:`transcribe_detailed`)."""
        return self.transcribe_detailed(video_path, **request).segments

    def transcribe_detailed(
        self,
        video_path: str | Path,
        *,
        task: str | None = None,
        window_s: float | None = None,
        modality: str = "auto",
        segment: str = "vad",
        av_offset_ms: float | str = 0.0,
    ) -> Transcript:
        """Preprocess, segment and decode one video.

        ``task``: ``transcribe`` / ``translate`` (checked against the model; None: the model's).
        ``modality``: ``auto`` (AV when both are there, else what there is), ``av``, ``a``, ``v``.
        ``segment``: ``vad`` (speech segments cut at pauses, at most ``window_s`` s, default
        20) or ``fixed`` (windows of ``window_s`` s, default 10).
        ``av_offset_ms``: how much the audio lags the lips (ms); corrected before decoding.
        ``"auto"``: estimated from the lips and the audio (on the first ``chunk_s`` seconds
        when streaming) and corrected when confident; the estimate is in the transcript.
        """
        self.check_request(task, window_s, modality, segment)
        if self.stream and segment == "vad" and modality == "auto":
            path = Path(video_path).expanduser().resolve()
            info = _probe(path)
            if info.has_audio and not (self.preprocess and self.preprocess.landmarks_dir):
                streamed = self._streamed(path, str(video_path), window_s, av_offset_ms, info)
                if streamed is not None:
                    return streamed
        media = preprocess_video(video_path, self.preprocess)
        return self.decode_media(
            media,
            str(video_path),
            window_s=window_s,
            modality=modality,
            segment=segment,
            av_offset_ms=av_offset_ms,
        )

    def transcribe_many(
        self, videos: Sequence[str | Path], *, progress: bool = True, **request: Any
    ) -> list[Transcript]:
        """:meth:`transcribe_detailed` of every video, in order (same ``request`` options), with
        a progress bar over the videos (``progress=False`` or ``AVSR_NO_PROGRESS=1``: none)."""
        disable = not progress or os.environ.get("AVSR_NO_PROGRESS") == "1"
        out = []
        with tqdm(total=len(videos), desc="transcribe", unit="video", disable=disable) as bar:
            for v in videos:
                bar.set_postfix_str(Path(v).name)
                out.append(self.transcribe_detailed(v, **request))
                bar.update(1)
        return out
