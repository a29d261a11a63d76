"""Transcribe or translate your own videos with a fine-tuned model.

::

    from tasks.transcriber import Transcriber

    tr = Transcriber("RUN/best")                  # the model is loaded once
    for seg in tr.transcribe("talk.mp4", window_s=10):
        print(f"{seg.start:.2f}-{seg.end:.2f} {seg.text}")

Each video is preprocessed on the fly exactly as ``avsr preprocess`` does it
(:func:`preprocessing.pipeline.process_clip`: 25 fps, face mesh, smoothed
landmarks, 96x96 mouth ROI, 16 kHz mono audio) into a temporary folder; it is
cut into windows of ``window_s`` seconds which are decoded in batches
(:class:`avsr.inference.WindowDecoder`).

Missing inputs:

- no face found: audio-only decoding with a warning (or a :class:`UserError`
  when ``modality`` asks for video);
- no audio stream: video-only decoding (or an error when ``modality="a"``/``"av"``);
- neither: a :class:`UserError`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsr.audio import read_audio
from avsr.data import read_video_gray
from avsr.errors import UserError
from avsr.inference import MediaInput, Segment, Transcript, WindowDecoder
from avsr.logging_utils import get_logger
from preprocessing.audio import decode_audio_stream
from preprocessing.clip import Clip, PreprocessConfig, clip_id_for
from preprocessing.pipeline import process_clip
from preprocessing.video_io import MediaError, probe

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
    cfg = dataclasses.replace(cfg or PreprocessConfig(), keep_video_only=True, workers=1)
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
            return MediaInput(video=video, audio=audio, warnings=warnings)
        if status == "skipped" and reason == "no_face":
            return _audio_only(path, rec, warnings)
        raise UserError(f"{path}: cannot preprocess ({reason}): {rec.get('detail', '')}")


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
        self, model_dir: str | Path, *, preprocess: PreprocessConfig | None = None, **options: Any
    ) -> None:
        super().__init__(model_dir, **options)
        self.preprocess = preprocess

    def transcribe(self, video_path: str | Path, **request: Any) -> list[Segment]:
        """Text per window of one video (``request``: ``task``, ``window_s``, ``modality`` of
        :meth:`transcribe_detailed`)."""
        return self.transcribe_detailed(video_path, **request).segments

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
        self.check_request(task, window_s, modality)
        media = preprocess_video(video_path, self.preprocess)
        return self.decode_media(media, str(video_path), window_s=window_s, modality=modality)

    def transcribe_many(self, videos: Sequence[str | Path], **request: Any) -> list[Transcript]:
        """:meth:`transcribe_detailed` of every video, in order (same ``request`` options)."""
        return [self.transcribe_detailed(v, **request) for v in videos]
