"""The unit of work (one clip), the stage config, and reading the input list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from avsr.audio import VIDEO_FPS
from avsr.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
CLIPS_HEADER = ["id", "video", "audio", "split", "lang", "speaker", "text", "translation"]
_ID_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(kw_only=True)
class PreprocessConfig:
    """Settings of ``avsr preprocess`` (``--config FILE`` / ``--set key=value``)."""

    fps: int = VIDEO_FPS
    """Output frame rate."""
    crop: int = 96
    """ROI side in pixels."""
    smooth_window: int = 12
    """Centred moving average of the landmarks over this many frames."""
    min_face_share: float = 0.5
    """Skip clips with a face in fewer frames than this share."""
    min_frames: int = 3
    """Skip clips shorter than this (output frames)."""
    keep_video_only: bool = False
    """Keep clips without audio (video ROI only)."""
    landmark_stride: int = 2
    """Run the landmark source on every n-th output frame (others interpolated, then smoothed)."""
    detect_max_side: int = 640
    """Frames are downscaled to this longer side for face mesh."""
    store_max_side: int = 1920
    """Frames kept for cropping are downscaled to this longer side."""
    memory_budget_mb: int = 512
    """Per clip; above it frames are decoded a second time instead of kept."""
    max_num_faces: int = 4
    """Faces tracked per frame (the largest is used)."""
    min_detection_confidence: float = 0.5
    """Face mesh: minimum face detection confidence."""
    min_tracking_confidence: float = 0.5
    """Face mesh: minimum landmark tracking confidence (below it the face is detected again)."""
    static_detection: bool = False
    """Full face detection on every frame (slow; a baseline)."""
    landmarks_dir: str = ""
    """Precomputed landmark files (pickles or .npy/.npz, one per video) instead of face mesh."""
    landmarks_format: str = "auto"
    """Format of the files in ``landmarks_dir``: auto, avhubert, auto_avsr or npy."""
    crf: int = 18
    """x264 quality of the ROI video."""
    workers: int = 1
    """Worker processes."""
    redo_skipped: bool = False
    """Retry clips the report lists as skipped."""
    save_landmarks: bool = False
    """Also write landmarks/{id}.npz (landmarks, matrices)."""
    max_damage_share: float = 0.05
    """Skip a clip (reason ``damaged``) when more than this share of its audio or video
    packets cannot be decoded; below it they are skipped and their time filled (silence,
    previous frame held), as ffmpeg does."""


@dataclass(kw_only=True)
class Clip:
    """One input clip. ``video`` is absolute; ``audio`` an absolute path or '' (use the video's audio)."""

    id: str
    """Clip id (file stem of the outputs)."""
    video: str
    """Input video path."""
    audio: str = ""
    """Separate audio file, or '' for the video's own audio stream."""
    split: str = "test"
    """Split of the manifests the clip goes to."""
    lang: str = "und"
    """Language code."""
    speaker: str = ""
    """Speaker id ('' if unknown)."""
    text: str = ""
    """Transcript ('' if none)."""
    translation: str = ""
    """English translation ('' if none)."""


def clip_id_for(path: Path, root: Path | None = None) -> str:
    """An id from a file name (relative path below ``root`` joined with '_'), safe for file names."""
    rel = path.relative_to(root) if root is not None else Path(path.name)
    stem = "_".join(rel.with_suffix("").parts)
    return _ID_RE.sub("_", stem).strip("_") or "clip"


def _clean_label(text: str) -> str:
    return " ".join(text.split())


def scan_dir(root: Path, split: str, lang: str) -> list[Clip]:
    """Every video file below ``root`` (sorted); a same-named .wav beside it is its audio."""
    clips = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            wav = p.with_suffix(".wav")
            clips.append(
                Clip(
                    id=clip_id_for(p, root),
                    video=str(p.resolve()),
                    audio=str(wav.resolve()) if wav.is_file() else "",
                    split=split,
                    lang=lang,
                )
            )
    return clips


def read_clips_tsv(path: Path) -> list[Clip]:
    """A corpus ``clips.tsv`` (header ``id video audio split lang speaker text translation``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    missing = [c for c in ("id", "video") if c not in header]
    if missing:
        raise UserError(f"{path}: header lacks column(s) {', '.join(missing)}")
    col = {name: i for i, name in enumerate(header)}
    clips = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(header):
            raise UserError(
                f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(parts)}"
            )

        def get(name: str, default: str = "", parts: list[str] = parts) -> str:
            return parts[col[name]] if name in col else default

        video = Path(get("video"))
        audio = get("audio")
        clips.append(
            Clip(
                id=get("id"),
                video=str((path.parent / video).resolve()),
                audio=str((path.parent / audio).resolve()) if audio else "",
                split=get("split", "test") or "test",
                lang=get("lang", "und") or "und",
                speaker=get("speaker"),
                text=_clean_label(get("text")),
                translation=_clean_label(get("translation")),
            )
        )
    return clips


def read_video_list(path: Path, split: str, lang: str) -> list[Clip]:
    """A plain list: one video path per line (relative to the list's folder); '#' comments."""
    clips = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line)
        p = p if p.is_absolute() else (path.parent / p)
        wav = p.with_suffix(".wav")
        clips.append(
            Clip(
                id=clip_id_for(p),
                video=str(p.resolve()),
                audio=str(wav.resolve()) if wav.is_file() and p.suffix != ".wav" else "",
                split=split,
                lang=lang,
            )
        )
    return clips


def read_transcripts(path: Path) -> dict[str, tuple[str, str]]:
    """``id<TAB>text[<TAB>translation]`` per line (a header line starting with 'id' is skipped),
    or a corpus clips.tsv -> {id: (text, translation)}."""
    if not path.is_file():
        raise UserError(f"{path}: transcripts file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].split("\t")[:2] == ["id", "video"]:
        return {c.id: (c.text, c.translation) for c in read_clips_tsv(path)}
    out = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or (lineno == 1 and line.split("\t")[0] == "id"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise UserError(f"{path}:{lineno}: expected 'id<TAB>text[<TAB>translation]'")
        out[parts[0]] = (_clean_label(parts[1]), _clean_label(parts[2]) if len(parts) > 2 else "")
    return out


def read_input(
    inp: str | Path,
    *,
    split: str = "test",
    lang: str = "und",
    transcripts: str | Path | None = None,
) -> list[Clip]:
    """Clips from a directory, a clips.tsv or a plain list of video paths (plus optional transcripts)."""
    inp = Path(inp)
    if inp.is_dir():
        clips = scan_dir(inp, split, lang)
        if not clips:
            raise UserError(f"{inp}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    elif inp.is_file():
        if inp.suffix.lower() in VIDEO_EXTENSIONS:
            clips = [Clip(id=clip_id_for(inp), video=str(inp.resolve()), split=split, lang=lang)]
        else:
            with open(inp, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().rstrip("\n")
            if first.split("\t")[:2] == CLIPS_HEADER[:2]:
                clips = read_clips_tsv(inp)
            else:
                clips = read_video_list(inp, split, lang)
    else:
        raise UserError(f"{inp}: no such file or directory")
    seen: dict[str, str] = {}
    for c in clips:
        if c.id in seen:
            raise UserError(f"{inp}: duplicate clip id '{c.id}' ({seen[c.id]} and {c.video})")
        seen[c.id] = c.video
    if transcripts:
        table = read_transcripts(Path(transcripts))
        for c in clips:
            if c.id in table:
                c.text, c.translation = table[c.id]
    return clips
