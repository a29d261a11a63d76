"""Data options shared by pretraining, fine-tuning and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from avsr.errors import UserError

DEFAULT_NOISE_PROB = 0.25
"""Noise probability of a config that gives ``noise_dir`` but not ``noise_prob``."""


@dataclass(kw_only=True)
class DataConfig:
    """How clips become batches.

    Lengths are counted in **video frames at 25 fps** (1 frame = 640 audio
    samples = 2 units at 50 Hz); ``max_frames_per_batch`` bounds the *padded*
    batch size ``batch_size * longest clip`` in those frames (AV-HuBERT: 1000
    video frames = 40 s per GPU). A single clip longer than the bound gets a
    batch of its own.
    """

    max_crop_seconds: float | None = 16.0
    """Training clips longer than this are randomly cropped (audio, video and units together).
    Not applied to clips with text labels or at evaluation."""
    max_keep_seconds: float | None = None
    """Training clips longer than this are skipped (None: keep all)."""
    min_keep_frames: int = 2
    """Clips shorter than this many video frames are skipped."""
    max_frames_per_batch: int = 1000
    """Bound on ``batch_size * longest clip`` (video frames, padding included)."""
    max_batch_size: int | None = None
    """Bound on the clips per batch (None: only ``max_frames_per_batch``)."""
    image_size: int | None = None
    """Resize the (96x96) ROI to image_size x image_size before cropping (None: keep)."""
    crop_size: int = 88
    """Random crop in training, centre crop at evaluation."""
    hflip_prob: float = 0.5
    """Training only: probability of flipping a clip's video horizontally."""
    modalities: Literal["av", "a", "v"] = "av"
    """Which media to decode; the other modality's tensor in the batch is None."""
    speed_perturb: tuple[float, float] | None = None
    """Training only: play each clip at a speed drawn uniformly from this range (e.g.
    ``[0.85, 1.15]``), audio resampled (pitch and formants move, as for another speaker),
    video and units following (:mod:`avsr.data.speed`). None: off. Batching budgets use
    the unperturbed lengths, so a batch can exceed ``max_frames_per_batch`` by up to
    ``1 / min`` times."""
    noise_dir: str | None = None
    """MUSAN-layout folder (``avsr noise prepare``); None disables noise augmentation."""
    noise_split: str | None = "train"
    """Use ``{category}/{noise_split}.tsv`` lists when present."""
    noise_prob: float | None = None
    """Training only: probability of mixing a clip with noise. None: 0.25 (the XLAVS-R and
    AV-HuBERT recipe) when ``noise_dir`` is set, no noise otherwise. A number above 0 asks
    for noise: ``avsr pretrain`` and ``avsr finetune`` then stop at start when ``noise_dir``
    is null (:func:`check_noise_request`)."""
    noise_start_epoch: int = 0
    """Training only: no noise augmentation before this epoch (a clean warm-up; measured on
    the embedded corpus: CTC fine-tuning from a small encoder with noise from the first
    update stalled at 100% WER for 1000 updates, clean it reached 61%)."""
    noise_snr_range: tuple[float, float] = (0.0, 0.0)
    """Training noise SNR in dB, uniform in [min, max] (min = max: that SNR)."""
    noise_categories: list[str] = field(
        default_factory=lambda: ["babble", "music", "noise", "speech"]
    )
    """Training noise categories (sub-folders of ``noise_dir``), drawn uniformly."""
    seed: int = 1
    """Seed of the batch shuffling and of every item's augmentation."""
    cache_mb: float = 0
    """Keep up to this many MiB of decoded clips (audio, and video resized to
    ``image_size``) in memory, so later epochs skip the decoding; 0: off. The cache is per
    process: the main one with ``train.num_workers: 0``, else each loader worker (they
    are kept alive across epochs when the cache is on). Pays off when the training split
    fits: the demo's training split (0.5 h, ROIs resized to 48x48) takes 169 MiB. Results
    do not change."""

    @property
    def train_noise_prob(self) -> float:
        """The noise probability in effect: ``noise_prob``, or its default (see there)."""
        if self.noise_prob is not None:
            return float(self.noise_prob)
        return DEFAULT_NOISE_PROB if self.noise_dir is not None else 0.0


def check_noise_request(cfg: DataConfig, config_file: str | Path | None = None) -> None:
    """UserError naming the keys when ``cfg`` asks for noise (``noise_prob > 0``) without
    a noise folder (``noise_dir`` null); called at the start of training."""
    if cfg.noise_prob is None or cfg.noise_prob <= 0 or cfg.noise_dir is not None:
        return
    where = f"{config_file}: " if config_file else ""
    raise UserError(
        f"{where}data.noise_prob is {cfg.noise_prob:g} (noise augmentation) but data.noise_dir "
        "is null: pass --set data.noise_dir=NOISE (a noise folder, e.g. made by 'avsr noise "
        "prepare --musan MUSAN --out NOISE'), or --set data.noise_prob=0 to train without noise"
    )
