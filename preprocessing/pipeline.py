"""One clip end to end (:func:`process_clip`) and the resumable parallel run (:func:`run`).

Per clip: probe; audio (given file or the video's stream -> 16 kHz mono, aligned
to the first video frame); decode at 25 fps by timestamp with landmarks from one
landmark source opened for this clip (face mesh in tracking mode by default);
skip with a reason when the clip is too short or the face share is below the
threshold; interpolate, smooth, align, crop; write ``video/{id}.mp4`` and
``audio/{id}.wav`` under temporary names, then rename.

Every clip gives one report record (a JSON line in ``report.jsonl``): ``status``
is ``ok``, ``skipped`` (bad input; ``reason`` is a short code and ``detail``
says what is wrong) or ``failed`` (an unexpected error; retried on the next run).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm.auto import tqdm

from avsr.audio import SAMPLE_RATE
from avsr.config import save_config
from avsr.io import atomic_path, atomic_write_text
from avsr.logging_utils import get_logger
from preprocessing.align import fill_missing, roi_matrices, smooth, warp_roi
from preprocessing.audio import (
    DecodedAudio,
    align_to_video,
    decode_audio,
    read_audio_file,
    write_wav,
)
from preprocessing.clip import Clip, PreprocessConfig
from preprocessing.damage import DamageStats, damage_record
from preprocessing.landmarks import LandmarkSource, MediaPipeFaceMesh
from preprocessing.landmarks_input import FileLandmarks, landmark_source
from preprocessing.manifests import write_manifests
from preprocessing.shards import Shard, begin_shard, finish_shard
from preprocessing.video_io import (
    MediaError,
    ResampleStats,
    SourceFrame,
    VideoInfo,
    fit_size,
    frame_to_array,
    iter_resampled,
    probe,
    write_gray_video,
)

log = get_logger(__name__)

SourceFactory = Callable[[Clip, PreprocessConfig], LandmarkSource]


def default_source_factory(clip: Clip, cfg: PreprocessConfig) -> LandmarkSource:
    """Landmark files when ``cfg.landmarks_dir`` is set (see
    :func:`preprocessing.landmarks_input.landmark_source`), else mediapipe face mesh."""
    if cfg.landmarks_dir:
        return landmark_source(clip, cfg)
    return MediaPipeFaceMesh(
        static_image_mode=cfg.static_detection,
        max_num_faces=cfg.max_num_faces,
        min_detection_confidence=cfg.min_detection_confidence,
        min_tracking_confidence=cfg.min_tracking_confidence,
        detect_max_side=cfg.detect_max_side,
    )


def _readable(path: Path) -> None:
    """Give a temporary file (created 0600) the usual permissions of a new file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def output_paths(out_dir: Path, clip_id: str) -> tuple[Path, Path]:
    return out_dir / "video" / f"{clip_id}.mp4", out_dir / "audio" / f"{clip_id}.wav"


def _get_audio(clip: Clip, has_stream: bool) -> tuple[DecodedAudio, float | None, str]:
    """(decoded audio, start time or None for a separate file, source) of a clip."""
    if clip.audio:
        return read_audio_file(clip.audio), None, "file"
    if not has_stream:
        raise MediaError(
            "no_audio", f"{clip.video}: no audio stream (use --keep-video-only to keep the video)"
        )
    decoded = decode_audio(clip.video)
    return decoded, decoded.start, "stream"


def _check_damage(path: str, what: str, damage: DamageStats, cfg: PreprocessConfig) -> None:
    """Skip a clip whose share of damaged ``what`` packets is above ``cfg.max_damage_share``."""
    if damage.damaged and damage.share > cfg.max_damage_share:
        raise MediaError(
            "damaged",
            f"{path}: {damage.damaged} of {damage.packets} {what} packets are damaged "
            f"({damage.share:.1%} > max_damage_share={cfg.max_damage_share:g})",
        )


@dataclass
class _PassResult:
    track: np.ndarray  # (T, N, 2) landmarks in stored-frame pixels, NaN where no face / not run
    evaluated: np.ndarray  # (T,) bool: the landmark source ran on (the source frame of) this frame
    frames: list[np.ndarray] | None  # T grayscale (H, W) frames, None when over the memory budget
    src_index: list[int]  # source frame index of each output frame
    stats: ResampleStats
    to_full: tuple[float, float]  # stored-frame pixels -> full-resolution upright pixels (x, y)


class _KeptFrames:
    """Grayscale frames kept for cropping, until they exceed the memory budget (then none)."""

    def __init__(self, keep: bool, budget_bytes: int) -> None:
        self.frames: list[np.ndarray] | None = [] if keep else None
        self.budget = budget_bytes
        self.used = 0
        self.gray: np.ndarray | None = None

    def new_source_frame(self, sf: SourceFrame, max_side: int | None, reformatter: Any) -> None:
        """Convert a newly shown source frame (when frames are still kept)."""
        if self.frames is None:
            return
        self.gray = np.ascontiguousarray(frame_to_array(sf, "gray", max_side, reformatter))
        self.used += self.gray.nbytes
        if self.used > self.budget:
            self.frames = None  # too big to keep: decode again for cropping
            self.gray = None

    def append_current(self) -> None:
        """Keep the current source frame once more (one entry per output frame)."""
        if self.frames is not None and self.gray is not None:
            self.frames.append(self.gray)


def upright_size(sf: SourceFrame) -> tuple[int, int]:
    """(width, height) of a source frame with its rotation applied."""
    if sf.rotation in (90, 270):
        return sf.frame.height, sf.frame.width
    return sf.frame.width, sf.frame.height


def detect_on(
    source: LandmarkSource,
    sf: SourceFrame,
    reformatter: Any,
    full: tuple[int, int],
    store: tuple[int, int],
) -> np.ndarray | None:
    """(N, 2) landmarks of one source frame in stored-frame pixels, or None (no face).

    ``full`` and ``store``: (width, height) of the upright frame and of the stored frame.
    """
    full_w, full_h = full
    if source.needs_image:
        rgb = np.ascontiguousarray(frame_to_array(sf, "rgb24", source.max_side, reformatter))
        pts = source.detect(rgb, frame_index=sf.index)
        det_h, det_w = rgb.shape[:2]
    else:
        placeholder = np.broadcast_to(np.zeros(1, np.uint8), (full_h, full_w, 3))
        pts = source.detect(placeholder, frame_index=sf.index)
        det_w, det_h = full_w, full_h
    if pts is None:
        return None
    scale = np.array([store[0] / det_w, store[1] / det_h])
    return np.asarray(pts, dtype=np.float64) * scale


def _landmark_pass(
    clip: Clip, cfg: PreprocessConfig, source: LandmarkSource, keep_frames: bool
) -> _PassResult:
    """Decode at cfg.fps; run the landmark source on every ``landmark_stride``-th output frame."""
    from av.video.reformatter import VideoReformatter

    to_full = (1.0, 1.0)
    n_points = source.scheme.n_points
    nan_row = np.full((n_points, 2), np.nan)
    stats = ResampleStats()
    track: list[np.ndarray] = []
    kept = _KeptFrames(keep_frames, cfg.memory_budget_mb * 1024 * 1024)
    src_index: list[int] = []
    last_idx = -1
    pts_store: np.ndarray = nan_row
    reformatter = VideoReformatter()
    stride = max(1, cfg.landmark_stride)
    have_pts = False  # landmarks were computed for the current source frame
    evaluated: list[bool] = []
    full, store = (0, 0), (0, 0)
    for rf in iter_resampled(clip.video, cfg.fps, stats, threads=_decode_threads(cfg)):
        sf = rf.src
        if sf.index != last_idx:
            last_idx = sf.index
            have_pts = False
            pts_store = nan_row
            full = upright_size(sf)
            store = fit_size(full[0], full[1], cfg.store_max_side)
            to_full = (full[0] / store[0], full[1] / store[1])
            kept.new_source_frame(sf, cfg.store_max_side, reformatter)
        if not have_pts and rf.out_index % stride == 0:
            have_pts = True
            pts = detect_on(source, sf, reformatter, full, store)
            if pts is not None:
                pts_store = pts
        track.append(pts_store)
        evaluated.append(have_pts)
        src_index.append(sf.index)
        kept.append_current()
    arr = np.stack(track) if track else np.zeros((0, n_points, 2))
    return _PassResult(
        track=arr,
        evaluated=np.asarray(evaluated, dtype=bool),
        frames=kept.frames,
        src_index=src_index,
        stats=stats,
        to_full=to_full,
    )


def _decode_threads(cfg: PreprocessConfig) -> int:
    """One decoder thread per worker when several workers share the cores, else FFmpeg's choice."""
    return 1 if cfg.workers > 1 else 0


def _gray_frames_again(clip: Clip, cfg: PreprocessConfig) -> Iterator[np.ndarray]:
    last_idx, gray = -1, None
    for rf in iter_resampled(clip.video, cfg.fps, threads=_decode_threads(cfg)):
        if rf.src.index != last_idx:
            last_idx = rf.src.index
            gray = np.ascontiguousarray(frame_to_array(rf.src, "gray", cfg.store_max_side))
        assert gray is not None
        yield gray


def process_clip(
    clip: Clip,
    cfg: PreprocessConfig,
    out_dir: str | Path,
    source_factory: SourceFactory | None = None,
) -> dict[str, Any]:
    """Preprocess one clip; never raises for bad input (the record says what happened)."""
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    rec: dict[str, Any] = {
        "id": clip.id,
        "status": "ok",
        "reason": None,
        "detail": "",
        "video_in": clip.video,
        "audio_in": clip.audio,
        "split": clip.split,
        "lang": clip.lang,
    }
    try:
        _process(clip, cfg, out_dir, source_factory or default_source_factory, rec)
    except MediaError as exc:
        rec.update(status="skipped", reason=exc.reason, detail=exc.detail)
    except Exception as exc:  # an unexpected error: record it, retry on the next run
        rec.update(status="failed", reason="error", detail=f"{type(exc).__name__}: {exc}")
        log.debug("clip %s failed:\n%s", clip.id, traceback.format_exc())
    rec["seconds"] = round(time.perf_counter() - t_start, 3)
    rec["cpu_seconds"] = round(time.process_time() - cpu_start, 3)
    n = rec.get("n_video_frames") or 0
    rec["frames_per_s"] = round(n / rec["seconds"], 1) if rec["seconds"] > 0 else None
    return rec


def _probe(clip: Clip, rec: dict[str, Any]) -> VideoInfo:
    """Probe the video; record its geometry, rotation, rate and codec."""
    info = probe(clip.video)
    rec.update(
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        src_fps=round(info.fps, 4) if info.fps else None,
        codec=info.codec,
    )
    return info


def _clip_audio(
    clip: Clip, info: VideoInfo, cfg: PreprocessConfig, rec: dict[str, Any]
) -> tuple[DecodedAudio | None, float | None]:
    """(decoded audio or None for a kept video-only clip, stream start time or None).

    Records the source, its sample rate and channels, and the damaged packets; runs
    before the expensive part, so a clip without audio or too damaged is skipped early.
    """
    decoded: DecodedAudio | None = None
    audio_start: float | None = None
    try:
        decoded, audio_start, audio_src = _get_audio(clip, info.has_audio)
    except MediaError as exc:
        if exc.reason != "no_audio" or not cfg.keep_video_only:
            raise
        audio_src = "none"
    rec["audio_source"] = audio_src
    if decoded is not None:
        rec.update(source_sample_rate=decoded.source_rate, source_channels=decoded.source_channels)
        rec.update(damage_record(decoded.damage, None))
        _check_damage(clip.audio or clip.video, "audio", decoded.damage, cfg)
    return decoded, audio_start


def _check_decoded(
    clip: Clip,
    info: VideoInfo,
    stats: ResampleStats,
    n_out: int,
    cfg: PreprocessConfig,
    rec: dict[str, Any],
) -> None:
    """Record what was decoded; skip a clip without frames, truncated or too short."""
    rec.update(
        src_frames=stats.n_source_frames,
        duration_s=round(stats.duration, 4),
        n_video_frames=n_out,
        rotation=stats.rotation if stats.n_source_frames else rec["rotation"],
    )
    if stats.n_source_frames == 0:
        declared = f" (the container declares {info.n_frames})" if info.n_frames else ""
        raise MediaError("no_frames", f"{clip.video}: the video stream has no frames{declared}")
    # tolerant: edit lists and decoder quirks can drop a frame or two of an intact file
    if info.n_frames and stats.n_source_frames < 0.95 * info.n_frames - 1:
        raise MediaError(
            "truncated",
            f"{clip.video}: decoded {stats.n_source_frames} of the {info.n_frames} frames the container declares",
        )
    if info.duration and stats.duration < 0.9 * info.duration - 0.1:
        raise MediaError(
            "truncated",
            f"{clip.video}: decoded {stats.duration:.2f} s of the {info.duration:.2f} s the container declares",
        )
    if n_out < cfg.min_frames or stats.n_source_frames < cfg.min_frames:
        raise MediaError(
            "too_short",
            f"{clip.video}: {stats.n_source_frames} source frames -> {n_out} frames at {cfg.fps} fps "
            f"(< {cfg.min_frames})",
        )


def _check_face(
    clip: Clip, res: _PassResult, cfg: PreprocessConfig, rec: dict[str, Any]
) -> tuple[int, int]:
    """Record the face share; skip the clip when it is below ``min_face_share``.

    Returns (frames where the landmark source ran, frames where it found a face).
    """
    present = ~np.isnan(res.track).any(axis=(1, 2))
    face_frames = int(present.sum())
    n_eval = int(res.evaluated.sum())
    share = face_frames / max(1, n_eval)
    rec.update(landmark_frames=n_eval, face_frames=face_frames, face_share=round(share, 4))
    if face_frames == 0 or share < cfg.min_face_share:
        raise MediaError(
            "no_face",
            f"{clip.video}: face found in {face_frames}/{n_eval} frames ({share:.0%} < {cfg.min_face_share:.0%})",
        )
    return n_eval, face_frames


def _crop_rois(clip: Clip, cfg: PreprocessConfig, res: _PassResult, mats: np.ndarray) -> np.ndarray:
    """(T, crop, crop) uint8 mouth ROIs, from the kept frames or a second decoding."""
    n_out = len(res.track)
    gray_iter = iter(res.frames) if res.frames is not None else _gray_frames_again(clip, cfg)
    rois = np.empty((n_out, cfg.crop, cfg.crop), np.uint8)
    n_got = 0
    for t, gray in zip(range(n_out), gray_iter):
        rois[t] = warp_roi(gray, mats[t], cfg.crop)
        n_got += 1
    if n_got != n_out:
        raise MediaError(
            "decode_error", f"{clip.video}: second decoding gave {n_got} frames, expected {n_out}"
        )
    return rois


def _write_roi_video(
    out_dir: Path, clip: Clip, rois: np.ndarray, cfg: PreprocessConfig, rec: dict[str, Any]
) -> float:
    """Write ``video/{id}.mp4``; returns its duration in seconds."""
    video_path, _ = output_paths(out_dir, clip.id)
    with atomic_path(video_path) as tmp:
        write_gray_video(tmp, rois, cfg.fps, cfg.crf)
        _readable(tmp)
    rec["video"] = str(video_path.relative_to(out_dir))
    video_dur = len(rois) / cfg.fps
    rec["video_duration_s"] = round(video_dur, 4)
    return video_dur


def _write_clip_audio(
    out_dir: Path,
    clip: Clip,
    samples: np.ndarray,
    audio_start: float | None,
    video_start: float,
    video_dur: float,
    rec: dict[str, Any],
) -> None:
    """Write ``audio/{id}.wav``: aligned to the first video frame, cut to the video's length."""
    _, audio_path = output_paths(out_dir, clip.id)
    if audio_start is not None:
        samples = align_to_video(samples, audio_start, video_start)
    raw_dur = len(samples) / SAMPLE_RATE
    keep = min(len(samples), int(round(video_dur * SAMPLE_RATE)))
    rec["audio_trimmed_s"] = round((len(samples) - keep) / SAMPLE_RATE, 4)
    samples = samples[:keep]
    with atomic_path(audio_path) as tmp:
        write_wav(tmp, samples)
        _readable(tmp)
    rec.update(
        audio=str(audio_path.relative_to(out_dir)),
        n_audio_samples=int(len(samples)),
        audio_duration_s=round(len(samples) / SAMPLE_RATE, 4),
        audio_raw_duration_s=round(raw_dur, 4),
    )
    if video_dur - len(samples) / SAMPLE_RATE > 0.04:
        rec["detail"] = (
            f"audio is {video_dur - len(samples) / SAMPLE_RATE:.3f} s shorter than the video"
        )


def _process(
    clip: Clip, cfg: PreprocessConfig, out_dir: Path, factory: SourceFactory, rec: dict[str, Any]
) -> None:
    """Probe, audio, landmarks, checks, ROI crop, then write the clip's video and audio."""
    info = _probe(clip, rec)
    decoded, audio_start = _clip_audio(clip, info, cfg, rec)
    source = factory(clip, cfg)
    if isinstance(source, FileLandmarks):
        rec.update(source.report_fields())
        cfg = replace(cfg, landmark_stride=1)  # every row of a file is free: use them all
    with source:
        res = _landmark_pass(clip, cfg, source, keep_frames=True)
    rec.update(damage_record(decoded.damage if decoded else None, res.stats.damage))
    _check_damage(clip.video, "video", res.stats.damage, cfg)
    _check_decoded(clip, info, res.stats, len(res.track), cfg, rec)
    if isinstance(source, FileLandmarks):
        source.check_frame_count(res.stats.n_source_frames, clip.video)
    n_eval, face_frames = _check_face(clip, res, cfg, rec)
    filled, _ = fill_missing(res.track)
    rec["interpolated_frames"] = n_eval - face_frames  # frames where the source found no face
    smoothed = smooth(filled, cfg.smooth_window)
    mats = roi_matrices(smoothed, source.scheme, cfg.crop)
    if cfg.save_landmarks:
        _save_landmarks(out_dir, clip.id, res, smoothed, mats)
    rois = _crop_rois(clip, cfg, res, mats)
    video_dur = _write_roi_video(out_dir, clip, rois, cfg, rec)
    if decoded is not None:
        _write_clip_audio(
            out_dir, clip, decoded.samples, audio_start, res.stats.start, video_dur, rec
        )
    else:
        rec.update(audio=None, n_audio_samples=0, video_only=True)
        rec["detail"] = "no audio: video only (--keep-video-only)"


def _save_landmarks(
    out_dir: Path, clip_id: str, res: _PassResult, smoothed: np.ndarray, mats: np.ndarray
) -> None:
    """``landmarks/{id}.npz`` in full-resolution upright pixels, one row per output frame:
    landmarks (T, N, 2) as detected (NaN: no face), smoothed (T, N, 2) after interpolation and
    smoothing, matrices (T, 2, 3) mapping frame pixels to ROI pixels, src_index (T,) source
    frame shown, evaluated (T,) whether the landmark source ran (see ``landmark_stride``)."""
    fx, fy = res.to_full
    scale = np.array([fx, fy])
    full_mats = mats.copy()
    full_mats[:, :, 0] /= fx  # M_full = M_store @ diag(1/fx, 1/fy)
    full_mats[:, :, 1] /= fy
    path = out_dir / "landmarks" / f"{clip_id}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                landmarks=(res.track * scale).astype(np.float32),
                smoothed=(smoothed * scale).astype(np.float32),
                matrices=full_mats,
                src_index=np.asarray(res.src_index, dtype=np.int64),
                evaluated=res.evaluated,
            )


# ----------------------------------------------------------------------------- the run


def load_report(path: Path) -> dict[str, dict[str, Any]]:
    """id -> last record of ``report.jsonl``; a torn last line (killed run) is dropped and the file repaired."""
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    good: list[str] = []
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[rec["id"]] = rec
            good.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    if bad:
        log.warning("%s: dropped %d unreadable line(s) (interrupted run)", path, bad)
        atomic_write_text(path, "".join(f"{g}\n" for g in good))
    return records


def is_finished(rec: dict[str, Any] | None, out_dir: Path, cfg: PreprocessConfig) -> bool:
    if rec is None:
        return False
    if rec.get("status") == "skipped":
        return not cfg.redo_skipped
    if rec.get("status") != "ok":
        return False
    video, audio = output_paths(out_dir, rec["id"])
    return video.is_file() and (rec.get("audio") is None or audio.is_file())


def remove_stale_temp_files(out_dir: Path) -> int:
    """Delete temporary files left by a killed run (``.<name>.*.tmp``)."""
    n = 0
    for sub in ("video", "audio", ""):
        d = out_dir / sub if sub else out_dir
        if d.is_dir():
            for p in d.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
    return n


def _init_worker() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _work(args: tuple[Clip, PreprocessConfig, str, SourceFactory | None]) -> dict[str, Any]:
    clip, cfg, out_dir, factory = args
    return process_clip(clip, cfg, out_dir, factory)


def iter_process(
    clips: Sequence[Clip],
    cfg: PreprocessConfig,
    out_dir: Path,
    source_factory: SourceFactory | None = None,
) -> Iterator[dict[str, Any]]:
    """Records as clips finish; in this process for one worker, else in spawned worker processes."""
    jobs = [(c, cfg, str(out_dir), source_factory) for c in clips]
    if cfg.workers <= 1 or len(jobs) <= 1:
        _init_worker()
        for job in jobs:
            yield _work(job)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(
        min(cfg.workers, len(jobs)), initializer=_init_worker, maxtasksperchild=50
    ) as pool:
        yield from pool.imap_unordered(_work, jobs, chunksize=1)


def _record(fh: TextIO, rec: dict[str, Any], records: dict[str, dict[str, Any]]) -> int:
    """Append a clip's record to the report (flushed to disk); returns its frames when ok."""
    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
    records[rec["id"]] = rec
    if rec["status"] == "ok":
        return int(rec.get("n_video_frames") or 0)
    log.warning("%s: %s (%s) %s", rec["id"], rec["status"], rec["reason"], rec["detail"])
    return 0


def _process_all(
    todo: Sequence[Clip],
    cfg: PreprocessConfig,
    out_dir: Path,
    source_factory: SourceFactory | None,
    records: dict[str, dict[str, Any]],
    show_progress: bool,
    report: Path,
) -> tuple[int, float]:
    """Process the clips to do, appending to ``report`` (``report.jsonl``); returns (frames done, seconds)."""
    disable = (not show_progress) or os.environ.get("AVSR_NO_PROGRESS") == "1"
    bar = tqdm(
        total=len(todo),
        desc="preprocess",
        unit="clip",
        disable=disable,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    t0 = time.perf_counter()
    frames_done = 0
    try:
        with open(report, "a", encoding="utf-8") as fh:
            for rec in iter_process(todo, cfg, out_dir, source_factory):
                frames_done += _record(fh, rec, records)
                elapsed = time.perf_counter() - t0
                bar.set_postfix_str(f"{frames_done / max(elapsed, 1e-9):.1f} frames/s")
                bar.update(1)
    finally:
        bar.close()
    return frames_done, time.perf_counter() - t0


def count_statuses(clips: Sequence[Clip], records: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Clips per report status ('missing' for a clip without a record)."""
    statuses: dict[str, int] = {}
    for c in clips:
        st = records.get(c.id, {}).get("status", "missing")
        statuses[st] = statuses.get(st, 0) + 1
    return statuses


def run(
    clips: Sequence[Clip],
    out_dir: str | Path,
    cfg: PreprocessConfig,
    source_factory: SourceFactory | None = None,
    show_progress: bool = True,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Preprocess ``clips`` into ``out_dir`` (resumable), then write the manifests.

    With ``shard``: only that shard's clips, its own report, and a done marker instead
    of the manifests (see :mod:`preprocessing.shards`; the merge writes the manifests).
    Returns a summary: counts per status, frames processed, frames/s, manifest row counts.
    """
    out_dir = Path(out_dir).resolve()
    (out_dir / "video").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    if shard is None:
        mine, removed, report = clips, remove_stale_temp_files(out_dir), out_dir / "report.jsonl"
    else:
        (mine, removed), report = begin_shard(shard, out_dir, clips), shard.report_path(out_dir)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run", removed)
    records = load_report(report)
    todo = [c for c in mine if not is_finished(records.get(c.id), out_dir, cfg)]
    log.info(
        "%d clip(s): %d to do, %d already finished", len(mine), len(todo), len(mine) - len(todo)
    )
    frames_done, elapsed = _process_all(
        todo, cfg, out_dir, source_factory, records, show_progress, report
    )
    statuses = count_statuses(mine, records)
    if shard is None:
        counts = write_manifests(out_dir, clips, records)
        save_config(cfg, out_dir / "preprocess.yaml")
    else:
        counts = {}
        finish_shard(shard, out_dir, cfg, clips, statuses)
    return {
        "clips": len(mine),
        "processed_now": len(todo),
        "statuses": statuses,
        "frames": frames_done,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(frames_done / elapsed, 1) if elapsed > 0 and frames_done else 0.0,
        "manifests": counts,
        "config": asdict(cfg),
    }
