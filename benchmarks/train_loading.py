"""How a training stage reads its clips, measured on a short AV fine-tuning, in one run.

Three settings of the same run: the demo's AV fine-tuning (its command as ``avsr demo``
builds it from ``configs/demo.yaml``, from the demo folder's audio-only model), cut short:

1. ``train.num_workers=1``, no cache (the demo before 2026-12-06);
2. ``train.num_workers=0``: the training process reads the clips itself;
3. ``train.num_workers=0`` and ``data.cache_mb``: decoded clips kept in memory, so epochs
   after the first skip the video decoding.

Every item's augmentation is seeded by (seed, epoch, index), so the three runs must log
the same training losses; the script checks that and prints each run's time from its
first to its last logged update (startup and the final validation left out) and the
ratios to setting 1. Run it on an idle machine:

    .venv/bin/python benchmarks/train_loading.py --demo-out demo_out [--updates 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from avsr.config import load_config
from tasks.demo_config import DemoConfig
from tasks.demo_stages import DemoPaths, finetune_commands, set_args

REPO = Path(__file__).resolve().parent.parent

SETTINGS = {
    "1 worker, no cache": ["train.num_workers=1", "data.cache_mb=0"],
    "0 workers, no cache": ["train.num_workers=0", "data.cache_mb=0"],
    "0 workers, cache": ["train.num_workers=0", "data.cache_mb=1024"],
}


def _command(demo_out: Path, updates: int, out: Path, sets: list[str]) -> list[str]:
    """The demo's AV fine-tuning command, writing to ``out``, cut to ``updates`` without
    validation on the way, with ``sets`` last (the last ``--set`` of a key wins)."""
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    cmd = [str(c) for c in finetune_commands(cfg, DemoPaths(out=demo_out, encoder=None), "av")[0]]
    cmd[cmd.index("--out") + 1] = str(out)
    extra = [f"train.max_updates={updates}", "train.valid_every=100000", "valid.max_clips=8", *sets]
    return cmd + set_args(extra)


def _train_log(out: Path) -> tuple[float, list[float]]:
    """(seconds from the first to the last logged update, the logged training losses)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["split"] == "train"]
    if len(train) < 2:
        raise SystemExit(f"{out}: fewer than two logged updates")
    return train[-1]["time"] - train[0]["time"], [r["loss"] for r in train]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", type=Path, required=True, help="a demo folder with its audio-only model (demo_out)")
    ap.add_argument("--updates", type=int, default=400, help="updates per run (default 400: three epochs of the demo corpus)")
    args = ap.parse_args()
    times: dict[str, float] = {}
    losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, sets) in enumerate(SETTINGS.items()):
            out = Path(tmp) / f"run{i}"
            print(f"{name}: {args.updates} updates ...", flush=True)
            subprocess.run(_command(args.demo_out.resolve(), args.updates, out, sets), check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name], losses[name] = _train_log(out)
    first = next(iter(SETTINGS))
    same = all(v == losses[first] for v in losses.values())
    for name, t in times.items():
        print(f"{name:>20}: {t:6.1f} s for updates 20..{args.updates}, ratio to '{first}' {times[first] / t:.2f}")
    print(f"training losses identical in all settings: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
