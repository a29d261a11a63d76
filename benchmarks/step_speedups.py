"""Two CPU speed-ups of a training step, each measured against what it replaced, in one run.

1. ROI video decoding (``avsr.data.media.read_video_gray``): the luma plane through
   libswscale's own gray table vs converting every decoded frame with
   ``to_ndarray(format="gray")``. Identical pixels (checked here on every clip).
2. The XLS-R CNN front end (``avsr.models.xlsr.fast_cnn``): forward + backward of the
   ``tiny`` encoder's CNN with the contiguous layer forward vs fairseq2's layer forward,
   on a batch of the demo's shape (5 clips of 2 s). Same outputs up to float rounding.

Run: ``.venv/bin/python benchmarks/step_speedups.py [--data DATA] [--clips 60] [--repeats 8]``
(``--data``: a preprocessed DATA folder; default: 60 synthetic 96x96 ROI clips of 2 s).
Needs an idle machine; prints times and ratios (old / new).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _reference_gray(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(container.streams.video[0])])


def _clips(data: Path | None, n: int, tmp: Path) -> list[Path]:
    if data is not None:
        clips = sorted((data / "video").glob("*.mp4"))[:n]
        if not clips:
            raise SystemExit(f"{data}/video: no .mp4 clips")
        return clips
    from avsr.data.media import write_video_gray

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        frames = rng.integers(0, 256, size=(50, 96, 96), dtype=np.uint8)
        frames = (frames // 4 + np.linspace(0, 190, 96, dtype=np.uint8)[None, None, :]).astype(np.uint8)
        p = tmp / f"clip{i:03d}.mp4"
        write_video_gray(p, frames, crf=18)
        out.append(p)
    return out


def decode_speed(clips: list[Path]) -> tuple[float, float]:
    """(old, new) seconds per clip; asserts identical pixels."""
    from avsr.data.media import read_video_gray

    for p in clips[:3]:  # warm up both paths
        read_video_gray(p), _reference_gray(p)
    t = time.perf_counter()
    ref = [_reference_gray(p) for p in clips]
    old = (time.perf_counter() - t) / len(clips)
    t = time.perf_counter()
    got = [read_video_gray(p) for p in clips]
    new = (time.perf_counter() - t) / len(clips)
    bad = [str(p) for p, a, b in zip(clips, ref, got) if not np.array_equal(a, b)]
    if bad:
        raise SystemExit(f"fast decode differs from the converter on {bad[:3]}")
    return old, new


def cnn_speed(repeats: int) -> tuple[float, float]:
    """(old, new) seconds per forward + backward of the tiny CNN on 5 x 2 s of audio."""
    import torch
    from fairseq2.models.wav2vec2.feature_extractor import Wav2Vec2FeatureExtractionLayer

    from avsr.models.xlsr import build_encoder
    from avsr.models.xlsr.fast_cnn import ContiguousFeatureExtractionLayer

    torch.manual_seed(0)
    layers = build_encoder("tiny").frontend.feature_extractor.layers
    wav = torch.randn(5, 1, 32000)

    def run() -> None:
        y = layers(wav)
        y.sum().backward()

    def timed(cls: type) -> float:
        for layer in layers:
            layer.__class__ = cls
        run()
        t = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - t) / repeats

    olds, news = [], []
    for _ in range(2):  # interleaved, best of two
        olds.append(timed(Wav2Vec2FeatureExtractionLayer))
        news.append(timed(ContiguousFeatureExtractionLayer))
    return min(olds), min(news)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a preprocessed DATA folder (default: synthetic clips)")
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in the demo's fine-tunings)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clips = _clips(args.data, args.clips, Path(tmp))
        d_old, d_new = decode_speed(clips)
    c_old, c_new = cnn_speed(args.repeats)
    print(f"ROI decode ({len(clips)} clips): converter {d_old * 1000:.1f} ms/clip, luma table {d_new * 1000:.1f} ms/clip, ratio {d_old / d_new:.2f}")
    print(f"CNN front end fwd+bwd (5 x 2 s, {args.threads} thread): fairseq2 layers {c_old * 1000:.1f} ms, contiguous {c_new * 1000:.1f} ms, ratio {c_old / c_new:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
