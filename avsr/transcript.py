"""The result of transcribing one video (:class:`Transcript` of :class:`Segment` s with
:class:`~avsr.timestamps.Word` timings) and its output formats: SubRip (:func:`to_srt`),
WebVTT (:func:`to_vtt`), JSON (:meth:`Transcript.to_dict`) and plain text (:func:`to_text`).

All times are seconds from the first video frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from avsr.timestamps import Word

FACE_CHOICE = "largest"
"""Which face the preprocessing follows when several are visible: the one whose landmark
bounding box is the largest."""


@dataclass(frozen=True)
class Segment:
    """Text of one speech segment (or fixed window) of a video."""

    start: float
    """Start of the segment (s)."""
    end: float
    """End of the segment (s)."""
    text: str
    """The decoded text (empty when nothing was recognised)."""
    words: list[Word] = field(default_factory=list)
    """Words with times (CTC models with greedy decoding; empty otherwise)."""
    modality: str = ""
    """What this segment was decoded from: ``av``, ``a`` or ``v`` (empty: the transcript's)."""
    note: str = ""
    """Why the segment's modality differs from the transcript's (e.g. ``no face``)."""


@dataclass(kw_only=True)
class Transcript:
    """Everything the decoding of one video found out (:meth:`WindowDecoder.decode_media`)."""

    video: str
    """The video's name as given."""
    segments: list[Segment]
    """Text per segment, in time order."""
    modality: str
    """What was decoded: ``av``, ``a`` (no face) or ``v`` (no audio); segments may differ."""
    task: str
    """``avsr`` (transcripts) or ``avst`` (English translations)."""
    duration: float
    """Length of the video (s)."""
    warnings: list[str] = field(default_factory=list)
    """What was missing (no face, no audio), one sentence each."""
    segmentation: str = "fixed"
    """``vad`` (speech segments cut at pauses) or ``fixed`` (windows of equal length)."""
    word_timing: str | None = None
    """How word times were found and their precision (None: no word times)."""
    av_offset_ms: float = 0.0
    """Audio delay against the lips that was corrected before decoding (ms)."""
    av_offset_estimate: dict[str, Any] | None = None
    """The automatic A/V offset estimate (``av_offset_ms="auto"``): ``offset_ms``,
    ``confidence``, ``correlation``, ``frames`` (``reason`` when none was made); None (JSON
    null) when the offset was given."""
    face: str = FACE_CHOICE
    """Which face was used when several are visible."""

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields above, the full text, and per segment its times, text,
        modality, note and words (``word``, ``start``, ``end``); times rounded to 1 ms."""
        return {
            "video": self.video,
            "task": self.task,
            "modality": self.modality,
            "duration": round(self.duration, 3),
            "warnings": list(self.warnings),
            "segmentation": self.segmentation,
            "word_timing": self.word_timing,
            "av_offset_ms": self.av_offset_ms,
            "av_offset_estimate": self.av_offset_estimate,
            "face": self.face,
            "text": self.text,
            "segments": [_segment_dict(s, self.modality) for s in self.segments],
        }


def _segment_dict(s: Segment, modality: str) -> dict[str, Any]:
    out: dict[str, Any] = {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
    out["modality"] = s.modality or modality
    if s.note:
        out["note"] = s.note
    out["words"] = [
        {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in s.words
    ]
    return out


def _cue_time(t: float, sep: str) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: Segment) -> str:
    return f"{seg.text} [audio only: {seg.note}]" if seg.note else seg.text


def to_srt(segments: Sequence[Segment]) -> str:
    """SubRip subtitles, one cue per non-empty segment."""
    blocks = []
    for seg in (s for s in segments if s.text):
        times = f"{_cue_time(seg.start, ',')} --> {_cue_time(seg.end, ',')}"
        blocks.append(f"{len(blocks) + 1}\n{times}\n{_cue_text(seg)}\n")
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment]) -> str:
    """WebVTT subtitles, one cue per non-empty segment."""
    cues = [
        f"{_cue_time(s.start, '.')} --> {_cue_time(s.end, '.')}\n{_cue_text(s)}\n"
        for s in segments
        if s.text
    ]
    return "\n".join(["WEBVTT\n", *cues])


def _clock(t: float) -> str:
    m, s = divmod(t, 60.0)
    return f"{int(m):02d}:{s:05.2f}"


def to_text(transcript: Transcript, *, timestamps: bool = True) -> str:
    """Plain text: ``[mm:ss.ss - mm:ss.ss] text`` per segment (or only the text)."""
    if not timestamps:
        return transcript.text + "\n"
    return "".join(
        f"[{_clock(s.start)} - {_clock(s.end)}] {_cue_text(s)}\n" for s in transcript.segments
    )
