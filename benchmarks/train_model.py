"""Model-side training benchmark: AV pretraining updates per second on the CPU.

:func:`model_updates_per_second` times full updates (forward + backward + Adam
step) of :class:`avsr.models.av.AVPretrainModel` in training mode (masking and
modality dropout on) for two shapes:

- ``tiny``: ``configs/pretrain_tiny.yaml`` (XLS-R ``tiny`` + ResNet-18 lip
  encoder with widths 8/16/32/64 on 44x44 crops), fed real loader batches;
- ``300m``: XLS-R 300M (24 x 1024) + the full-size lip encoder on 88x88 crops,
  short sequences (2 clips of 1 s), to show the scale of a real update on a CPU.

``compare_with_loader`` puts the tiny model's updates/s beside the loader's
batches/s (``loader_batches_per_second`` of ``benchmarks/train.py``, same batch shape);
goal: the loader at least 3x faster than the tiny model consumes.

Run: ``.venv/bin/python benchmarks/train_model.py [--shape tiny|300m|both] [--updates 10]``.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
"""The repository root (configs/)."""


def _loader_benchmark(name: str) -> Any:
    """The function ``name`` of ``benchmarks/train.py``, the loader benchmark (the benchmarks
    are scripts, not a package: it is run from its path)."""
    return runpy.run_path(str(Path(__file__).with_name("train.py")))[name]


def _tiny_batches(root: Path, n: int, max_frames: int) -> list[Any]:
    loader, _ = _loader_benchmark("synthetic_loader")(
        root, num_workers=0, crop_size=44, image_size=48, max_frames_per_batch=max_frames, max_crop_seconds=2.0
    )  # fmt: skip
    out: list[Any] = []
    while len(out) < n:
        out.extend(b for _, b in zip(range(n - len(out)), loader))
    return out


def _short_batch(n_clips: int, frames: int, crop: int, num_units: int, seed: int = 0) -> Any:
    import torch

    from avsr.data import AVBatch

    g = torch.Generator().manual_seed(seed)
    n_audio = frames * 640
    units = n_audio // 320 - 1
    return AVBatch(
        ids=[f"b{i}" for i in range(n_clips)],
        indices=torch.arange(n_clips),
        audio=torch.randn(n_clips, n_audio, generator=g),
        audio_lens=torch.full((n_clips,), n_audio),
        video=torch.randn(n_clips, 1, frames, crop, crop, generator=g),
        video_lens=torch.full((n_clips,), frames),
        units=torch.randint(0, num_units, (n_clips, units), generator=g),
        unit_lens=torch.full((n_clips,), units),
    )


def model_updates_per_second(
    shape: str = "tiny",
    *,
    n_updates: int = 10,
    warmup: int = 2,
    max_frames: int = 200,
    root: Path | None = None,
) -> dict[str, float]:
    """Updates/s (and video frames/s) of AV pretraining for ``shape`` ``tiny`` or ``300m``."""
    import torch

    from avsr.models.av.model import AVPretrainModel, build_av_encoder
    from tasks.pretrain import load_pretrain_config

    torch.manual_seed(0)
    if shape == "tiny":
        cfg = load_pretrain_config(REPO / "configs" / "pretrain_tiny.yaml", [])
        num_units = 100
        with tempfile.TemporaryDirectory() as tmp:
            batches = _tiny_batches(Path(root or tmp), warmup + n_updates, max_frames)
    elif shape == "300m":
        cfg = load_pretrain_config(REPO / "configs" / "pretrain_300m.yaml", [])
        num_units = 1000
        batches = [_short_batch(2, 25, 88, num_units, s) for s in range(warmup + n_updates)]
    else:
        raise ValueError(f"shape must be tiny or 300m, got {shape!r}")
    model = AVPretrainModel(build_av_encoder(cfg.model), num_units).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01
    )
    frames = 0
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
            frames = 0
        model.set_num_updates(i)
        out = model(batch)
        (out.loss / max(float(out.sample_size), 1.0)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        frames += int(batch.video_lens.sum())
    elapsed = time.perf_counter() - start
    return {
        "updates_per_s": n_updates / elapsed,
        "video_frames_per_s": frames / elapsed,
        "params_m": params / 1e6,
        "threads": float(torch.get_num_threads()),
    }


def compare_with_loader(
    n_updates: int = 10, max_frames: int = 200, workers: int = 2
) -> dict[str, float]:
    """Tiny model updates/s vs loader batches/s on the same batch shape; ratio = loader / model."""
    loader_batches_per_second = _loader_benchmark("loader_batches_per_second")
    model = model_updates_per_second("tiny", n_updates=n_updates, max_frames=max_frames)
    loader = loader_batches_per_second(
        n_batches=max(10, n_updates),
        num_workers=workers,
        crop_size=44,
        image_size=48,
        max_frames_per_batch=max_frames,
    )
    return {
        "model_updates_per_s": model["updates_per_s"],
        "loader_batches_per_s": loader["batches_per_s"],
        "loader_over_model": loader["batches_per_s"] / model["updates_per_s"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=["tiny", "300m", "both"], default="tiny")
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--max-frames", type=int, default=200)
    p.add_argument("--workers", type=int, default=2, help="loader workers for the comparison")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    if args.shape in ("tiny", "both"):
        results["tiny_vs_loader"] = compare_with_loader(args.updates, args.max_frames, args.workers)
    if args.shape in ("300m", "both"):
        results["300m"] = model_updates_per_second(
            "300m", n_updates=max(1, args.updates // 5), warmup=1
        )
    if args.json:
        print(json.dumps(results))
        return 0
    if "tiny_vs_loader" in results:
        r = results["tiny_vs_loader"]
        print(
            f"tiny AV pretraining: {r['model_updates_per_s']:.2f} updates/s; loader {r['loader_batches_per_s']:.2f} "
            f"batches/s -> loader/model = {r['loader_over_model']:.1f}x (goal >= 3x)"
        )
    if "300m" in results:
        r = results["300m"]
        print(
            f"300M AV pretraining (2 x 1 s clips): {r['updates_per_s']:.3f} updates/s ({r['params_m']:.0f} M params)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
