"""Map-style audio-visual dataset over a MuAViC manifest.

Each item is decoded and augmented with its own random generator seeded by
``(seed, epoch, index)``, so results do not depend on the number of DataLoader
workers or on the order items are fetched in. Keys are either an ``int``
(epoch 0) or an ``(index, epoch)`` pair, which is what
:class:`avsr.data.sampler.LengthBatchSampler` yields.

Alignment: 1 video frame (25 fps) = 640 audio samples = 2 units (50 Hz). A
crop starting at video frame ``v0`` takes audio from sample ``640 * v0`` and
units from ``2 * v0``; the unit count of a clip always equals
``cnn_frames(n_audio)`` (the XLS-R CNN formula).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avsr.audio import VIDEO_FPS, read_audio
from avsr.data.batch import AVSample
from avsr.data.cache import ClipCache
from avsr.data.config import DataConfig
from avsr.data.labels import fit_units, is_unit_file, read_text_labels, read_units
from avsr.data.media import (
    SAMPLES_PER_VIDEO_FRAME,
    UNITS_PER_VIDEO_FRAME,
    cnn_frames,
    read_video_gray,
)
from avsr.data.speed import resample_audio, resample_frames
from avsr.errors import UserError
from avsr.io import ManifestError, ManifestRow, read_manifest
from avsr.logging_utils import get_logger
from avsr.noise import NoiseBank

log = get_logger(__name__)

ItemKey = int | tuple[int, int]


def _resize(video: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if video.shape[1] == size and video.shape[2] == size:
        return video
    interp = cv2.INTER_AREA if size < video.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in video])


@dataclass
class _Media:
    """One item's media while it is cut and augmented."""

    audio: np.ndarray | None
    """(S,) float32 samples, None when audio is not loaded."""
    video: np.ndarray | None
    """(T, H, W) uint8 frames, None when video is not loaded."""
    units: np.ndarray | None
    """(U,) unit ids fitted to the audio's CNN frame count, None without unit labels."""
    n_audio: int
    """Audio length in samples (from the manifest when audio is not loaded)."""
    n_video: int
    """Video length in frames (from the manifest when video is not loaded)."""


def _read_label_files(
    labels: str | Path | Sequence[str | Path] | None, n: int
) -> tuple[list[np.ndarray] | None, list[str] | None]:
    """(units, texts) from label files in manifest order (at most one of each kind)."""
    label_paths = [labels] if isinstance(labels, (str, Path)) else list(labels or [])
    units: list[np.ndarray] | None = None
    texts: list[str] | None = None
    for p in label_paths:
        if is_unit_file(p):
            if units is not None:
                raise UserError(f"{p}: more than one unit file given")
            units = read_units(p, expected_rows=n)
        else:
            if texts is not None:
                raise UserError(f"{p}: more than one text label file given")
            texts = read_text_labels(p, expected_rows=n)
    return units, texts


def _read_langs(langs: str | Path | None, manifest: Path, n: int) -> list[str] | None:
    """Language of every row (``"auto"``: the ``.lang`` file beside the manifest, if any)."""
    if langs == "auto":
        auto = manifest.with_suffix(".lang")
        langs = auto if auto.is_file() else None
    return read_text_labels(langs, expected_rows=n) if langs is not None else None


def _check_config(cfg: DataConfig) -> None:
    """Reject inconsistent crop sizes, probabilities and speed ranges."""
    if cfg.image_size is not None and cfg.image_size < cfg.crop_size:
        raise UserError(
            f"data config: crop_size {cfg.crop_size} is larger than image_size {cfg.image_size}"
        )
    if not 0.0 <= cfg.hflip_prob <= 1.0 or not 0.0 <= cfg.train_noise_prob <= 1.0:
        raise UserError("data config: hflip_prob and noise_prob must be within [0, 1]")
    if cfg.speed_perturb is not None:
        lo, hi = cfg.speed_perturb
        if not 0.0 < lo <= hi:
            raise UserError(f"data config: speed_perturb {list(cfg.speed_perturb)} must be [min, max] with 0 < min <= max")
    if cfg.cache_mb < 0:
        raise UserError(f"data config: cache_mb must be >= 0 (0: no cache), got {cfg.cache_mb}")


class AVDataset(torch.utils.data.Dataset):
    """Clips of a MuAViC manifest with optional unit / text / language labels.

    Args:
        manifest: ``{split}.tsv`` path.
        cfg: data options.
        train: random crop/flip/noise and length cropping (else centre crop, full clips).
        labels: label files in manifest order: ``.km`` -> units (int arrays),
            anything else (``.wrd``, ``.en``, ``.{lang}``) -> text. At most one of each.
        langs: ``{split}.lang`` file; ``"auto"`` uses the one beside the manifest if present.
        eval_noise: ``(category, snr_db, seed)``: at evaluation, mix every clip with its
            deterministic noise (:meth:`NoiseBank.for_clip`) from ``cfg.noise_dir``.
        keep_clean_audio: in training, keep the audio of every row that gets noise as it
            was before (``AVSample.clean_audio``), for a model whose
            ``modality_dropout.clean_audio_alone`` reads it; off: no copy is made.
    """

    def __init__(
        self,
        manifest: str | Path,
        cfg: DataConfig | None = None,
        *,
        train: bool = False,
        labels: str | Path | Sequence[str | Path] | None = None,
        langs: str | Path | None = "auto",
        eval_noise: tuple[str, float, int] | None = None,
        keep_clean_audio: bool = False,
    ) -> None:
        self.cfg = cfg = cfg or DataConfig()
        self.train = train
        self.keep_clean_audio = keep_clean_audio
        manifest = Path(manifest)
        try:
            self.manifest = read_manifest(manifest)
        except ManifestError as exc:
            raise UserError(str(exc)) from exc
        if not self.manifest.rows:
            raise UserError(f"{manifest}: manifest has no rows")
        n = len(self.manifest.rows)
        self.load_audio = cfg.modalities in ("av", "a")
        self.load_video = cfg.modalities in ("av", "v")
        units, texts = _read_label_files(labels, n)
        lang_list = _read_langs(langs, manifest, n)
        _check_config(cfg)
        if units is not None:
            self._check_units(units, manifest)

        keep = self._kept_rows(manifest)
        self.rows: list[ManifestRow] = [self.manifest.rows[i] for i in keep]
        self.units = [units[i] for i in keep] if units is not None else None
        self.texts = [texts[i] for i in keep] if texts is not None else None
        self.langs = [lang_list[i] for i in keep] if lang_list is not None else None

        self.crop_frames: int | None = None
        if train and cfg.max_crop_seconds is not None and self.texts is None:
            self.crop_frames = max(1, int(cfg.max_crop_seconds * VIDEO_FPS))
        self.noise_bank = self._noise_bank(eval_noise)
        self.eval_noise = eval_noise
        self.cache = ClipCache(cfg.cache_mb) if cfg.cache_mb > 0 else None

    def _kept_rows(self, manifest: Path) -> list[int]:
        """Indices of the rows within the length limits (``max_keep_seconds`` in training only)."""
        cfg, n = self.cfg, len(self.manifest.rows)
        keep = []
        max_keep = None if cfg.max_keep_seconds is None else int(cfg.max_keep_seconds * VIDEO_FPS)
        for i, r in enumerate(self.manifest.rows):
            frames = self._frames(r.n_video_frames, r.n_audio_samples)
            if frames < cfg.min_keep_frames or (
                self.train and max_keep is not None and frames > max_keep
            ):
                continue
            keep.append(i)
        if not keep:
            raise UserError(f"{manifest}: every clip was filtered out by the length limits")
        if len(keep) < n:
            log.info("%s: kept %d of %d clips (length limits)", manifest, len(keep), n)
        return keep

    def _noise_bank(self, eval_noise: tuple[str, float, int] | None) -> NoiseBank | None:
        """The noise files for training augmentation or the evaluation noise (None: no noise)."""
        cfg = self.cfg
        if cfg.noise_dir is not None and ((self.train and cfg.train_noise_prob > 0) or eval_noise is not None):
            cats = [eval_noise[0]] if eval_noise is not None and not self.train else cfg.noise_categories
            bank = NoiseBank(cfg.noise_dir, split=cfg.noise_split, categories=cats)
            for c in cats:
                bank.files(c)  # UserError naming the category and folder
            return bank
        if eval_noise is not None:
            raise UserError("eval_noise needs data.noise_dir")
        return None

    def _frames(self, n_video: int, n_audio: int) -> int:
        """Clip length on the 25 fps grid of the loaded modalities."""
        if self.load_video:
            return n_video
        return math.ceil(n_audio / SAMPLES_PER_VIDEO_FRAME)

    def _check_units(self, units: list[np.ndarray], manifest: Path) -> None:
        bad = [
            (r.id, u.size, cnn_frames(r.n_audio_samples))
            for r, u in zip(self.manifest.rows, units)
            if abs(u.size - cnn_frames(r.n_audio_samples)) > 2
        ]
        if bad:
            rid, got, want = bad[0]
            log.warning(
                "%s: %d clips have unit counts off by more than 2 frames from their audio (e.g. %s: %d vs %d); trimming/padding",
                manifest,
                len(bad),
                rid,
                got,
                want,
            )

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        """Per-item length in video frames (25 fps), after the training crop; for batching."""
        out = np.array(
            [self._frames(r.n_video_frames, r.n_audio_samples) for r in self.rows], dtype=np.int64
        )
        if self.crop_frames is not None:
            out = np.minimum(out, self.crop_frames)
        return out

    def __getitem__(self, key: ItemKey) -> AVSample:
        index, epoch = (
            (key, 0) if isinstance(key, (int, np.integer)) else (int(key[0]), int(key[1]))
        )
        row = self.rows[index]
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        m = self._load(index, row)
        if self.train and self.cfg.speed_perturb is not None:
            self._speed_perturb(m, rng)
        self._crop(m, rng)
        if m.video is not None:
            m.video = self._transform_video(m.video, rng, row.id)
        clean = None
        if m.audio is not None and self.noise_bank is not None:
            noisy = self._add_noise(m.audio, row.id, epoch, rng)
            if self.train and self.keep_clean_audio and noisy is not m.audio:
                clean = np.ascontiguousarray(m.audio, dtype=np.float32)
            m.audio = noisy
        return AVSample(
            id=row.id,
            index=index,
            n_audio=int(m.n_audio),
            n_video=int(m.n_video),
            audio=None if m.audio is None else np.ascontiguousarray(m.audio, dtype=np.float32),
            video=m.video,
            units=m.units,
            text=self.texts[index] if self.texts is not None else None,
            lang=self.langs[index] if self.langs is not None else None,
            clean_audio=clean,
        )

    def _decode(self, index: int, row: ManifestRow) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The loaded modalities as decoded (video resized to ``image_size``), from the cache
        when it holds them. Resizing is per frame, so it commutes with the later frame picks
        (speed perturbation, cropping)."""
        cached = self.cache.get(index) if self.cache is not None else None
        if cached is not None:
            return cached
        audio = read_audio(self.manifest.resolve(row.audio)) if self.load_audio else None
        video = read_video_gray(self.manifest.resolve(row.video)) if self.load_video else None
        if video is not None and self.cfg.image_size is not None:
            video = _resize(video, self.cfg.image_size)
        if self.cache is not None:
            self.cache.put(index, audio, video)
        return audio, video

    def _load(self, index: int, row: ManifestRow) -> _Media:
        """Decode the loaded modalities; units fitted to the audio's CNN frame count."""
        audio, video = self._decode(index, row)
        n_audio = audio.shape[0] if audio is not None else row.n_audio_samples
        n_video = video.shape[0] if video is not None else row.n_video_frames
        units = None
        if self.units is not None:
            # counts off by more than 2 frames were reported once when the labels were read
            units = fit_units(self.units[index], cnn_frames(n_audio), tolerance=10**9)
        return _Media(audio=audio, video=video, units=units, n_audio=n_audio, n_video=n_video)

    def _speed_perturb(self, m: _Media, rng: np.random.Generator) -> None:
        """Play the clip at a random speed from ``cfg.speed_perturb`` (all modalities follow)."""
        assert self.cfg.speed_perturb is not None
        factor = float(rng.uniform(*self.cfg.speed_perturb))
        if m.audio is not None:
            m.audio = resample_audio(m.audio, factor)
        if m.video is not None:
            m.video = resample_frames(m.video, factor)
        m.n_audio = m.audio.shape[0] if m.audio is not None else max(1, round(m.n_audio / factor))
        m.n_video = m.video.shape[0] if m.video is not None else max(1, round(m.n_video / factor))
        if m.units is not None:
            m.units = fit_units(resample_frames(m.units, factor), cnn_frames(m.n_audio), tolerance=10**9)

    def _crop(self, m: _Media, rng: np.random.Generator) -> None:
        """Random ``crop_frames`` window of a longer training clip (audio, video, units together)."""
        total = self._frames(m.n_video, m.n_audio)
        if self.crop_frames is None or total <= self.crop_frames:
            return
        length = self.crop_frames
        v0 = int(rng.integers(0, total - length + 1))
        a0 = v0 * SAMPLES_PER_VIDEO_FRAME
        m.n_audio = max(0, min(m.n_audio - a0, length * SAMPLES_PER_VIDEO_FRAME))
        m.n_video = max(0, min(m.n_video - v0, length))
        if m.audio is not None:
            m.audio = m.audio[a0 : a0 + m.n_audio]
        if m.video is not None:
            m.video = m.video[v0 : v0 + m.n_video]
        if m.units is not None:
            u0 = v0 * UNITS_PER_VIDEO_FRAME
            m.units = fit_units(
                m.units[u0 : u0 + cnn_frames(m.n_audio)], cnn_frames(m.n_audio), tolerance=10**9
            )

    def _add_noise(
        self, audio: np.ndarray, clip_id: str, epoch: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Training: random noise with probability ``noise_prob`` (from ``noise_start_epoch``);
        evaluation: the clip's deterministic ``eval_noise``."""
        cfg = self.cfg
        assert self.noise_bank is not None
        if self.train:
            if epoch >= cfg.noise_start_epoch and rng.random() < cfg.train_noise_prob:
                audio = self.noise_bank.augment(
                    audio, rng, snr_range=cfg.noise_snr_range, categories=cfg.noise_categories
                )
        elif self.eval_noise is not None:
            cat, snr, seed = self.eval_noise
            audio = self.noise_bank.mix_for_clip(audio, clip_id, cat, snr, seed)
        return audio

    def _transform_video(
        self, video: np.ndarray, rng: np.random.Generator, clip_id: str
    ) -> np.ndarray:
        cfg = self.cfg
        h, w = video.shape[1:]
        c = cfg.crop_size
        if h < c or w < c:
            raise UserError(f"{clip_id}: video frames {h}x{w} are smaller than crop_size {c}")
        if self.train:
            y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        else:
            y0, x0 = (h - c) // 2, (w - c) // 2
        video = video[:, y0 : y0 + c, x0 : x0 + c]
        if self.train and rng.random() < cfg.hflip_prob:
            video = video[:, :, ::-1]
        return np.ascontiguousarray(video)
