"""How often the demo's audio-only CTC run sits on the blank plateau, over fine-tuning seeds.

Runs the demo's audio-only fine-tuning command (``configs/demo.yaml`` unless ``--config``;
its data, noise and units from ``--demo-out``, a demo folder finished up to its pretraining)
from ``--init`` once per fine-tuning seed, only up to its first validation: ``--updates``
updates (default 500), with ``optim.decay_updates`` at the full run's length, so the learning
rate follows the full run's schedule and the run is the full run's beginning. ``--jobs``
runs side by side, one thread each; a seed whose run already validated is read, not rerun.
A run is on the plateau when its valid WER (the run's own validation, ``metrics.jsonl``) is
at least ``--plateau-wer`` (default 90; the learning runs of the demo read 45-70 there, the
plateau 97-100). Prints the WER per seed and the plateau count; ``--json`` writes them.

Run: ``.venv/bin/python benchmarks/ctc_plateau.py --demo-out demo_out [--init MODEL]
[--seeds 0-9] [--updates 500] [--jobs 2] [--set KEY=VALUE ...] [--out DIR] [--json PATH]``.
``--set`` goes to ``avsr finetune`` (e.g. ``train.freeze_updates=0``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from avsr.config import load_config
from avsr.io import atomic_write_json
from avsr.train.logger import read_metrics
from tasks.demo_config import DemoConfig
from tasks.demo_stages import (
    CONFIGS,
    DemoPaths,
    audio_only_updates,
    finetune_commands,
    resolve_demo_encoder,
    set_args,
)


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return seeds


def run_command(cfg_path: Path, demo_out: Path, init: Path, seed: int, updates: int, out: Path, sets: list[str]) -> list[str]:
    """The demo's audio-only command of ``seed`` from ``init`` into ``out``, stopped after
    ``updates`` updates and validated there, on the full run's learning-rate schedule."""
    cfg = load_config(DemoConfig, cfg_path, [f"seed={seed}"])
    paths = DemoPaths(out=demo_out, encoder=resolve_demo_encoder(cfg.encoder))
    cmd = [str(c) for c in finetune_commands(cfg, paths, "a")[0]]
    cmd[cmd.index("--init") + 1] = str(init)
    cmd[cmd.index("--out") + 1] = str(out)
    full = audio_only_updates(cfg)
    return cmd + set_args([f"train.max_updates={updates}", f"optim.decay_updates={full}",
                           f"train.valid_every={updates}", f"train.save_every={updates}", *sets])


def valid_wer(run_dir: Path, update: int) -> float | None:
    """The run's valid WER at ``update`` (None before it validated)."""
    path = run_dir / "metrics.jsonl"
    rec = read_metrics(path, "valid").get(update) if path.is_file() else None
    return None if rec is None else float(rec["wer"])


def run_seed(cmd: list[str], log: Path) -> int:
    """One run with one thread, its output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False).returncode


def table(wers: dict[int, float | None], plateau_wer: float) -> str:
    """Per-seed WER and verdict, then the count."""
    lines = ["| seed | valid WER | plateau |", "|---:|---:|---|"]
    for s, w in wers.items():
        lines.append(f"| {s} | {'-' if w is None else f'{w:.1f}'} | {'-' if w is None else ('yes' if w >= plateau_wer else 'no')} |")
    done = [w for w in wers.values() if w is not None]
    stuck = sum(w >= plateau_wer for w in done)
    return "\n".join([*lines, "", f"On the plateau (valid WER >= {plateau_wer:g}): {stuck} of {len(done)} seeds"
                      + (f" ({len(wers) - len(done)} without a result)" if len(done) < len(wers) else "")]) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo-out", type=Path, required=True, help="demo folder (data/, corpus/noise/; pretrain/ unless --init)")
    ap.add_argument("--init", type=Path, default=None, help="the AV pretrained model (default DEMO_OUT/pretrain/model)")
    ap.add_argument("--config", type=Path, default=CONFIGS / "demo.yaml", help="the demo config (default configs/demo.yaml)")
    ap.add_argument("--seeds", default="0-9", help="fine-tuning seeds: 0-9, or 0,3,5 (default 0-9)")
    ap.add_argument("--updates", type=int, default=500, help="updates per run, then one validation (default 500)")
    ap.add_argument("--plateau-wer", type=float, default=90.0, help="valid WER from which a run counts as on the plateau")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each (default 2)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="passed to avsr finetune")
    ap.add_argument("--out", type=Path, default=None, help="run folders (default DEMO_OUT/ctc_plateau)")
    ap.add_argument("--json", type=Path, default=None, help="write the WER per seed here")
    args = ap.parse_args(argv)
    try:
        args.seeds = parse_seeds(args.seeds)
    except ValueError:
        ap.error(f"--seeds: expected integers and ranges like 0-9,12, got {args.seeds!r}")
    if any(s.split("=", 1)[0].strip() == "train.seed" for s in args.sets):
        ap.error("--set train.seed=...: the seeds come from --seeds")
    args.init = args.init or args.demo_out / "pretrain" / "model"
    args.out = args.out or args.demo_out / "ctc_plateau"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.init.is_dir():
        sys.exit(f"--init {args.init}: no such model folder")
    if not (args.demo_out / "data").is_dir():
        sys.exit(f"--demo-out {args.demo_out}: no data/ folder (run the demo up to its pretraining first)")
    args.out.mkdir(parents=True, exist_ok=True)
    todo = {}
    for s in args.seeds:
        run = args.out / f"seed{s}"
        if valid_wer(run, args.updates) is None:
            todo[s] = run_command(args.config, args.demo_out, args.init, s, args.updates, run, args.sets)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for s, code in zip(todo, pool.map(lambda s: run_seed(todo[s], args.out / f"seed{s}.log"), todo)):
            if code != 0:
                print(f"seed {s}: avsr finetune exited {code}, see {args.out / f'seed{s}.log'}", file=sys.stderr)
    wers = {s: valid_wer(args.out / f"seed{s}", args.updates) for s in args.seeds}
    print(table(wers, args.plateau_wer), flush=True)
    if args.json is not None:
        atomic_write_json(args.json, {"init": str(args.init), "updates": args.updates, "plateau_wer": args.plateau_wer,
                                      "sets": args.sets, "valid_wer": {str(s): w for s, w in wers.items()}})
    return 0 if all(w is not None for w in wers.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
