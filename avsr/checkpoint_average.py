"""Parameter averaging of a training run's checkpoints into one model directory.

The ``step_N`` checkpoints of a run (``RUN/checkpoints/step_N/model.safetensors`` +
``config.yaml``, see :mod:`avsr.train.state`) are chosen either as the last ``N`` or as
the best ``N`` by a validation metric read from ``RUN/metrics.jsonl``; their weights
are averaged (floating tensors summed in float64, divided, cast back to their dtype;
integer buffers such as BatchNorm's ``num_batches_tracked`` taken from the newest
checkpoint) and written as a model directory with the newest checkpoint's config (and
the run's ``tokenizer.model``), which ``load_finetuned`` / ``avsr evaluate`` /
``avsr transcribe`` load like any fine-tuned model. Weights are read from safetensors
only (never unpickled).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avsr.checkpoint import load_model_dir, save_model_dir
from avsr.errors import UserError
from avsr.io import atomic_write_json
from avsr.train.logger import read_metrics
from avsr.train.state import step_dirs

METRICS_FILE = "metrics.jsonl"
TOKENIZER_FILE = "tokenizer.model"
SUMMARY_FILE = "average.json"
HIGHER_IS_BETTER = ("bleu", "acc")
"""Validation metrics (name prefixes) for which a larger value is better."""


@dataclass(frozen=True)
class Selected:
    """One checkpoint chosen for averaging."""

    step: int
    """Update at which it was written."""
    path: Path
    """Its ``step_N`` folder."""
    value: float | None = None
    """Its validation metric (``--best``), None for ``--last``."""


def metric_key(metric: str) -> str:
    """``valid_loss`` -> ``loss`` (the key of a ``valid`` record of ``metrics.jsonl``)."""
    return metric[len("valid_") :] if metric.startswith("valid_") else metric


def run_steps(run: Path) -> list[tuple[int, Path]]:
    """Complete ``step_N`` checkpoints of a run folder, oldest first (UserError: none)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"--run {run}: not a folder")
    steps = step_dirs(run / "checkpoints")
    if not steps:
        raise UserError(f"--run {run}: no complete checkpoints under {run / 'checkpoints'}")
    return steps


def select_last(run: Path, n: int) -> list[Selected]:
    """The newest ``n`` checkpoints, oldest first."""
    steps = run_steps(run)
    _check_count(run, n, [s for s, _ in steps])
    return [Selected(step, path) for step, path in steps[-n:]]


def select_best(run: Path, n: int, metric: str = "valid_loss") -> list[Selected]:
    """The ``n`` checkpoints with the best validation ``metric`` (``valid_loss``,
    ``valid_wer``, ``valid_bleu``, ...: lower is better except for BLEU/accuracy), oldest first.
    Only checkpoints with a validation record at their update are candidates."""
    steps = run_steps(run)
    metrics_path = Path(run) / METRICS_FILE
    if not metrics_path.is_file():
        raise UserError(f"--run {run}: no {METRICS_FILE} to rank the checkpoints by {metric}")
    key = metric_key(metric)
    valid = read_metrics(metrics_path, split="valid")
    if valid and not any(key in rec for rec in valid.values()):
        known = sorted({k for rec in valid.values() for k in rec} - {"split", "update", "time"})
        raise UserError(f"--metric {metric}: not in the run's validation records ({known})")
    candidates = []
    for step, path in steps:
        value = valid.get(step, {}).get(key)
        if value is not None and math.isfinite(float(value)):
            candidates.append(Selected(step, path, float(value)))
    _check_count(run, n, [c.step for c in candidates], f" with a validation {key}")
    larger_better = key.startswith(HIGHER_IS_BETTER)
    ranked = sorted(candidates, key=lambda c: (-c.value if larger_better else c.value, -c.step))  # type: ignore[operator]
    return sorted(ranked[:n], key=lambda c: c.step)


def _check_count(run: Path, n: int, steps: list[int], what: str = "") -> None:
    if n < 1:
        raise UserError(f"the number of checkpoints to average must be >= 1, got {n}")
    if len(steps) < n:
        names = ", ".join(f"step_{s}" for s in steps) or "none"
        raise UserError(f"--run {run}: {n} checkpoints asked for, it has {len(steps)}{what} ({names})")


def _check_same_layout(name: str, state: dict[str, Tensor], ref_name: str, ref: dict[str, Tensor]) -> None:
    """UserError naming ``name`` when its keys, shapes or dtypes differ from ``ref``."""
    missing, extra = sorted(ref.keys() - state.keys()), sorted(state.keys() - ref.keys())
    if missing or extra:
        raise UserError(
            f"{name}: its weights do not match {ref_name}: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for key, t in ref.items():
        other = state[key]
        if other.shape != t.shape or other.dtype != t.dtype:
            raise UserError(
                f"{name}: {key} is {tuple(other.shape)} {other.dtype}, "
                f"but {tuple(t.shape)} {t.dtype} in {ref_name}"
            )


def average_state_dicts(paths: list[Path]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(averaged weights, config of the last model dir) of the model dirs ``paths``, read one
    at a time: floating tensors averaged in float64 and cast back, others from the last."""
    if not paths:
        raise UserError("no checkpoints to average")
    ref_name = str(paths[0])
    ref, cfg = load_model_dir(paths[0])
    sums = {k: t.to(torch.float64) for k, t in ref.items() if t.is_floating_point()}
    last = ref
    for path in paths[1:]:
        state, cfg = load_model_dir(path)
        _check_same_layout(str(path), state, ref_name, ref)
        for key in sums:
            sums[key] += state[key].to(torch.float64)
        last = state
    n = float(len(paths))
    out = {k: (sums[k] / n).to(t.dtype) if k in sums else last[k].clone() for k, t in ref.items()}
    return out, cfg


def _tokenizer_of(run: Path, last: Path) -> Path | None:
    for cand in (last / TOKENIZER_FILE, Path(run) / TOKENIZER_FILE):
        if cand.is_file():
            return cand
    return None


def write_average(run: Path, selected: list[Selected], out: Path, *, how: str) -> Path:
    """Average ``selected`` into the model dir ``out`` (with the run's tokenizer and an
    ``average.json`` naming the sources); returns ``out``."""
    out = Path(out)
    sources = {s.path.resolve() for s in selected}
    if out.resolve() in sources or out.resolve() == (Path(run) / "checkpoints").resolve():
        raise UserError(f"--out {out}: would overwrite a checkpoint of the run")
    weights, cfg = average_state_dicts([s.path for s in selected])
    kind = str(cfg.get("kind", "model"))
    config = {k: v for k, v in cfg.items() if k not in ("format", "version", "kind")}
    tok = _tokenizer_of(run, selected[-1].path)
    if kind == "finetuned" and tok is None:
        raise UserError(f"--run {run}: no {TOKENIZER_FILE} in the run folder for the fine-tuned model")
    save_model_dir(out, weights, config, kind=kind)
    if tok is not None:
        shutil.copyfile(tok, out / TOKENIZER_FILE)
    atomic_write_json(
        out / SUMMARY_FILE,
        {
            "run": str(run),
            "selection": how,
            "checkpoints": [
                {"step": s.step, "path": str(s.path), **({} if s.value is None else {"value": s.value})}
                for s in selected
            ],
        },
    )
    return out
