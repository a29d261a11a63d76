"""Training-input benchmark: how fast the AV data loader produces batches.

:func:`loader_batches_per_second` decodes synthetic 96x96 ROI mp4 + 16 kHz wav
clips (written once into a temporary folder) through the real pipeline
(:class:`avsr.data.AVDataset` in training mode: crop, resize, flip, noise
augmentation, units; length-bucketed batches; DataLoader worker processes) and
reports batches per second. The model's updates per second, measured on the
same batches, go beside it (goal: loader >= 3x faster than the tiny model
consumes); :func:`synthetic_loader` gives those batches to a model benchmark.

Run: ``.venv/bin/python benchmarks/train.py [--workers 2] [--batches 30]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def synthetic_loader(
    root: Path,
    *,
    n_clips: int = 24,
    num_workers: int = 2,
    crop_size: int = 88,
    image_size: int | None = None,
    max_frames_per_batch: int = 200,
    max_crop_seconds: float = 2.0,
    noise: bool = True,
    seed: int = 0,
) -> Any:
    """(DataLoader, dataset) over synthetic clips written under ``root`` (reused if present)."""
    from avsr.data import AVDataset, DataConfig, make_dataloader, make_synthetic_av_data

    manifest = root / "train.tsv"
    if not manifest.is_file():
        make_synthetic_av_data(root, n_clips=n_clips, min_frames=25, max_frames=75, seed=seed)
    cfg = DataConfig(
        max_crop_seconds=max_crop_seconds,
        crop_size=crop_size,
        image_size=image_size,
        max_frames_per_batch=max_frames_per_batch,
        noise_dir=str(root / "noise") if noise else None,
        noise_prob=0.25,
        noise_snr_range=(-5.0, 5.0),
        seed=seed,
    )
    ds = AVDataset(manifest, cfg, train=True, labels=root / "train.km")
    return make_dataloader(ds, num_workers=num_workers, persistent_workers=num_workers > 0), ds


def loader_batches_per_second(
    root: Path | None = None,
    *,
    n_batches: int = 30,
    warmup: int = 3,
    **loader_kwargs: Any,
) -> dict[str, float]:
    """Batches/s (and clips/s, video frames/s) of the AV loader over synthetic data.

    ``root``: folder for the synthetic data (a temporary one when None);
    ``loader_kwargs`` go to :func:`synthetic_loader`. Epochs repeat until
    ``n_batches`` were timed (after ``warmup`` untimed batches).
    """
    with tempfile.TemporaryDirectory() as tmp:
        loader, ds = synthetic_loader(Path(root or tmp), **loader_kwargs)
        sampler = loader.batch_sampler
        seen = clips = frames = 0
        epoch = 0
        start = time.perf_counter()
        while seen < warmup + n_batches:
            sampler.set_epoch(epoch)
            for batch in loader:
                if seen == warmup:
                    start = time.perf_counter()
                    clips = frames = 0
                seen += 1
                clips += len(batch)
                frames += int(batch.video_lens.sum())
                if seen >= warmup + n_batches:
                    break
            epoch += 1
        elapsed = time.perf_counter() - start
    return {
        "batches_per_s": n_batches / elapsed,
        "clips_per_s": clips / elapsed,
        "video_frames_per_s": frames / elapsed,
        "batches_timed": float(n_batches),
        "num_workers": float(loader.num_workers),
        "clips_in_dataset": float(len(ds)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--crop-size", type=int, default=88)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument(
        "--max-frames", type=int, default=200, help="max_frames_per_batch (video frames)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    res = loader_batches_per_second(
        n_batches=args.batches, n_clips=args.clips, num_workers=args.workers,
        crop_size=args.crop_size, image_size=args.image_size, max_frames_per_batch=args.max_frames,
    )  # fmt: skip
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"data loader: {res['batches_per_s']:.2f} batches/s, {res['clips_per_s']:.1f} clips/s, "
            f"{res['video_frames_per_s']:.0f} video frames/s ({args.workers} workers, "
            f"max {args.max_frames} frames per batch, crop {args.crop_size})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
