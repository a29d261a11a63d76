"""How a training stage reads its clips, measured on a short AV fine-tuning, in one run.

Three settings of the same run (``avsr finetune --modality av``, the demo's AV recipe):

1. ``train.num_workers=1``, no cache (the demo before 2026-12-06);
2. ``train.num_workers=0``: the training process reads the clips itself;
3. ``train.num_workers=0`` and ``data.cache_mb``: decoded clips kept in memory, so epochs
   after the first skip the video decoding.

Every item's augmentation is seeded by (seed, epoch, index), so the three runs must log
the same training losses; the script checks that and prints each run's time from its
first to its last logged update (startup and the final validation left out) and the
ratios to setting 1. Run it on an idle machine:

    .venv/bin/python benchmarks/train_loading.py --data demo_out/data \\
        --init demo_out/finetune_a/model --noise-dir demo_out/corpus/noise [--updates 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SETTINGS = {
    "1 worker, no cache": ["train.num_workers=1", "data.cache_mb=0"],
    "0 workers, no cache": ["train.num_workers=0", "data.cache_mb=0"],
    "0 workers, cache": ["train.num_workers=0", "data.cache_mb=1024"],
}


def _command(args: argparse.Namespace, out: Path, sets: list[str]) -> list[str]:
    recipe = [
        f"train.max_updates={args.updates}", "train.valid_every=100000", "train.log_every=20", "valid.max_clips=8",
        "data.max_frames_per_batch=300", f"data.noise_dir={args.noise_dir}", "data.noise_prob=0.4",
        "data.noise_snr_range=[-5.0, 5.0]", "data.noise_start_epoch=1", "tokenizer.vocab_size=60",
        "model.modality_dropout.p=0.7", "model.modality_dropout.audio_share=0.4",
        "model.modality_dropout.clean_audio_alone=true", *sets,
    ]
    cmd = [sys.executable, "-m", "avsr.cli", "finetune", "--task", "avsr", "--head", "ctc", "--modality", "av",
           "--data", str(args.data), "--init", str(args.init), "--out", str(out),
           "--config", str(REPO / "configs" / "finetune_tiny.yaml")]
    return cmd + [x for s in recipe for x in ("--set", s)]


def _train_log(out: Path) -> tuple[float, list[float]]:
    """(seconds from the first to the last logged update, the logged training losses)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["split"] == "train"]
    if len(train) < 2:
        raise SystemExit(f"{out}: fewer than two logged updates")
    return train[-1]["time"] - train[0]["time"], [r["loss"] for r in train]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a preprocessed DATA folder (demo_out/data)")
    ap.add_argument("--init", type=Path, required=True, help="the model the AV run starts from (demo_out/finetune_a/model)")
    ap.add_argument("--noise-dir", type=Path, required=True, help="the noise folder (demo_out/corpus/noise)")
    ap.add_argument("--updates", type=int, default=400, help="updates per run (default 400: three epochs of the demo corpus)")
    args = ap.parse_args()
    times: dict[str, float] = {}
    losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, sets) in enumerate(SETTINGS.items()):
            out = Path(tmp) / f"run{i}"
            print(f"{name}: {args.updates} updates ...", flush=True)
            subprocess.run(_command(args, out, sets), check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name], losses[name] = _train_log(out)
    first = next(iter(SETTINGS))
    same = all(v == losses[first] for v in losses.values())
    for name, t in times.items():
        print(f"{name:>20}: {t:6.1f} s for updates 20..{args.updates}, ratio to '{first}' {times[first] / t:.2f}")
    print(f"training losses identical in all settings: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
