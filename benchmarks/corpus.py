"""Corpus build benchmark: times of ``avsr corpus build --size tiny`` and ``--size small``.

Goals on a 2-core machine: tiny <= 30 s, small (>= 30 minutes of speech over
all languages) <= 5 minutes. Each build runs in a fresh process into a new
folder; the script prints wall time, the CPU time of the build and its worker
processes, the machine load average (other jobs on a shared machine slow the
wall time down; CPU time / 2 is what the build needs of 2 free cores), the
speech minutes, and for a few clips the mediapipe face share and the
correlation of the measured lip opening with the driving signal.

Run: ``.venv/bin/python benchmarks/corpus.py [--only tiny|small] [--keep DIR] [--no-check]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root (the builds run there)."""


def run_build(size: str, out: Path, seed: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "avsr.cli", "-q", "corpus", "build", "--size", size,
                    "--seed", str(seed), "--out", str(out)], check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    meta = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load, "load_after": os.getloadavg()[0],
            "speech_min": meta["total_speech_seconds"] / 60, "clips": meta["total_clips"]}


def check_clips(out: Path, every: int) -> tuple[float, float, int]:
    import numpy as np

    from avsr.corpus.check import correlation, decode_frames, track_mouth

    rows = [line.split("\t") for line in (out / "clips.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    found, meas, drive = [], [], []
    for r in rows[::every]:
        ali = json.loads((out / "alignments" / f"{r[0]}.json").read_text(encoding="utf-8"))
        track = track_mouth(decode_frames(out / r[1]))
        found.append(track.found)
        meas.append(track.opening)
        drive.append(np.asarray(ali["mouth"]["opening"]))
    f = np.concatenate(found)
    return float(f.mean()), correlation(np.concatenate(meas), np.concatenate(drive)), int(f.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["tiny", "small"], default=None)
    ap.add_argument("--keep", default=None, help="build into this folder (kept) instead of a temporary one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true", help="skip the mediapipe check")
    args = ap.parse_args()
    goals = {"tiny": 30.0, "small": 300.0}
    sizes = [args.only] if args.only else ["tiny", "small"]
    with tempfile.TemporaryDirectory(prefix="xlavsr-bench-corpus-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        for size in sizes:
            out = base / f"corpus-{size}"
            if out.exists():
                print(f"{out} exists; use another --keep folder", file=sys.stderr)
                return 2
            r = run_build(size, out, args.seed)
            verdict = "ok" if r["wall_s"] <= goals[size] else (
                "ok on 2 free cores" if r["cpu_s"] / 2 <= goals[size] else "SLOW")
            print(f"{size:5s}: wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s (cpu/2 {r['cpu_s'] / 2:6.1f} s)  "
                  f"goal {goals[size]:.0f} s [{verdict}]  load avg {r['load_before']:.1f}->{r['load_after']:.1f}  "
                  f"{r['clips']:.0f} clips, {r['speech_min']:.1f} min speech")
            if not args.no_check:
                share, corr, n = check_clips(out, every=4 if size == "tiny" else 40)
                print(f"{size:5s}: face mesh found a face in {100 * share:.2f}% of {n} frames; "
                      f"lip opening vs driving signal r = {corr:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
