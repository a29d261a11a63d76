"""Console progress, ``metrics.jsonl`` and optional TensorBoard (rank 0 only)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from avsr.logging_utils import get_logger

log = get_logger("avsr.train")


class MetricsLogger:
    """Writes one JSON line per logged event to ``out/metrics.jsonl`` (appending across resumes)."""

    def __init__(self, out_dir: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self._tb: Any = None
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
                except ImportError as exc:  # tensorboard not installed
                    log.warning("TensorBoard disabled: %s", exc)

    def write(self, split: str, update: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        rec = {"split": split, "update": update, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{split}/{k}", v, update)

    def console(self, split: str, update: int, max_updates: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        parts = [f"{split} {update}/{max_updates}"]
        for k, v in values.items():
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        log.info(" | ".join(parts))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: str | Path, split: str = "train") -> dict[int, dict[str, Any]]:
    """Last record per update of ``split`` from a ``metrics.jsonl`` (later lines win, e.g. after a resume)."""
    out: dict[int, dict[str, Any]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("split") == split:
                out[int(rec["update"])] = rec
    return out
