"""Training checkpoints: layout, atomic writes, RNG state, pruning.

Layout under ``OUT/checkpoints/``::

    step_{N}/model.safetensors   # weights (a model dir: avsr.checkpoint.load_model_dir works)
    step_{N}/config.yaml
    step_{N}/trainer_state.pt    # optimizer, scheduler, data position, counters (plain tensors/dicts)
    step_{N}/rng_rank{R}.pt      # python/numpy/torch/cuda RNG of every rank
    last -> step_{N}             # symlink to the newest complete checkpoint
    best/                        # model dir of the best validation result + best.json

A checkpoint is written into ``.step_{N}.tmp`` and renamed when complete, so a
killed run never leaves a half-written ``step_{N}``. Everything is loaded with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STEP_RE = re.compile(r"^step_(\d+)$")
TRAINER_STATE = "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    """RNG states as plain tensors/ints (loadable with ``weights_only=True``)."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_dirs(ckpt_root: Path) -> list[tuple[int, Path]]:
    """Complete ``step_N`` checkpoints, oldest first."""
    if not ckpt_root.is_dir():
        return []
    out = []
    for p in ckpt_root.iterdir():
        m = STEP_RE.match(p.name)
        if m and p.is_dir() and (p / TRAINER_STATE).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The ``last`` checkpoint (or the newest complete ``step_N`` when the link is broken)."""
    last = ckpt_root / "last"
    if last.is_symlink() or last.exists():
        target = last.resolve()
        if target.is_dir() and (target / TRAINER_STATE).is_file():
            return target
    dirs = step_dirs(ckpt_root)
    return dirs[-1][1] if dirs else None


def point_last(ckpt_root: Path, target: Path) -> None:
    """Atomically re-point the ``last`` symlink at ``target`` (relative link)."""
    tmp = ckpt_root / ".last.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, ckpt_root / "last")


def prune(ckpt_root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints; return the deleted ones."""
    dirs = step_dirs(ckpt_root)
    keep = max(1, keep_last)
    removed = []
    for _, p in dirs[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    for p in ckpt_root.glob(".step_*.tmp"):  # leftovers of a killed save
        shutil.rmtree(p, ignore_errors=True)
    return removed


def load_pt(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)
