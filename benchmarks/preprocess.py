"""Benchmark `avsr preprocess`: frames/s end to end, tracking face mesh vs full detection per frame.

Makes synthetic 640x480 talking-face clips (25 fps, AAC audio; not timed), then
runs the whole stage (worker start-up, decoding, landmarks, alignment, ROI
encoding, audio, report, manifests) twice in the same process tree:

* ``default``: the default configuration, face mesh in video mode (one tracker
  per clip) on every second output frame (``landmark_stride=2``), the others
  interpolated before the 13-frame smoothing;
* ``tracking/1``: the same with face mesh on every frame (``landmark_stride=1``);
* ``baseline``: face mesh with full face detection on every frame
  (``static_detection=True``, ``landmark_stride=1``), everything else identical.

Wall-clock rates depend on what else runs on the machine; the CPU time of all
processes per frame (and the rate it implies on idle cores) is printed too.

Prints frames/s of each and the ratios against the baseline. Goal: >= 150
frames/s with 2 workers and a ratio >= 1.5.

    python benchmarks/preprocess.py [--clips 8] [--frames 250] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=250, help="frames per clip (25 fps)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--detect-max-side", type=int, default=640)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    os.environ.setdefault("AVSR_NO_PROGRESS", "1")
    from avsr.logging_utils import setup_logging
    from preprocessing.clip import PreprocessConfig, read_input
    from preprocessing.pipeline import run
    from preprocessing.synthetic import write_face_video

    setup_logging(quiet=True)
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        raw = Path(tmp) / "raw"
        raw.mkdir()
        t = time.perf_counter()
        for i in range(args.clips):
            write_face_video(raw / f"clip{i:03d}.mp4", args.frames, 25, args.width, args.height)
        print(
            f"made {args.clips} clips of {args.frames} frames at {args.width}x{args.height} "
            f"in {time.perf_counter() - t:.1f} s; {os.cpu_count()} CPU cores; workers={args.workers}"
        )
        clips = read_input(raw, lang="en")
        results = {}
        runs = (("default", False, 2), ("tracking/1", False, 1), ("baseline", True, 1))
        for name, static, stride in runs:
            cfg = PreprocessConfig(
                workers=args.workers,
                static_detection=static,
                landmark_stride=stride,
                detect_max_side=args.detect_max_side,
            )
            t, cpu = time.perf_counter(), _cpu_seconds()
            summary = run(clips, Path(tmp) / name, cfg, show_progress=False)
            dt, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
            if summary["statuses"] != {"ok": args.clips}:
                print(f"{name}: unexpected statuses {summary['statuses']}", file=sys.stderr)
                return 1
            fps = summary["frames"] / dt
            cpu_ms = 1000 * cpu / summary["frames"]
            results[name] = {
                "frames": summary["frames"],
                "seconds": round(dt, 2),
                "frames_per_s": round(fps, 1),
                "cpu_ms_per_frame": round(cpu_ms, 2),
            }
            print(
                f"{name:10s} {summary['frames']} frames in {dt:6.2f} s -> {fps:6.1f} frames/s end to end; "
                f"{cpu_ms:.2f} CPU-ms/frame (all processes) -> ~{args.workers * 1000 / cpu_ms:.0f} frames/s "
                f"on {args.workers} idle cores"
            )
    base = results["baseline"]
    load = os.getloadavg()[0]
    print(
        f"load average after the runs: {load:.1f} on {os.cpu_count()} cores (wall-clock rates need an idle machine)"
    )
    for name in ("default", "tracking/1"):
        r = results[name]
        ratio = r["frames_per_s"] / base["frames_per_s"]
        cpu_ratio = base["cpu_ms_per_frame"] / r["cpu_ms_per_frame"]
        r["ratio"], r["cpu_ratio"] = round(ratio, 2), round(cpu_ratio, 2)
        goal = r["frames_per_s"] >= 150 and ratio >= 1.5
        print(
            f"{name:10s} vs full detection: wall-clock ratio {ratio:.2f}, CPU-time ratio {cpu_ratio:.2f}; "
            f"goal (>= 150 frames/s, ratio >= 1.5) {'met' if goal else 'not met'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
