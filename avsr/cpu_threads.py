"""A CPU thread budget that may change while a process runs.

A stage runner that starts processes side by side gives each a share of the cores
(``OMP_NUM_THREADS``); once one of them finishes, the others may use its cores. The
runner writes the number of threads a process may use into the file named by the
environment variable ``AVSR_THREADS_FILE``; a long loop calls :meth:`ThreadBudget.poll`
once per step, which reads the file at most every few seconds and follows it with
``torch.set_num_threads``. Without the variable, ``poll`` does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from avsr.logging_utils import get_logger

log = get_logger(__name__)

THREADS_FILE_ENV = "AVSR_THREADS_FILE"
"""Environment variable naming the file that holds this process's thread budget."""


class ThreadBudget:
    """Follows the thread count in ``path`` (default: ``$AVSR_THREADS_FILE``)."""

    def __init__(self, path: str | Path | None = None, *, every: float = 5.0) -> None:
        if path is None:
            path = os.environ.get(THREADS_FILE_ENV) or None
        self.path = Path(path) if path is not None else None
        self.every = every
        self._next = 0.0

    def poll(self) -> int | None:
        """Apply a changed budget; return the new thread count, or None when nothing changed
        (no file, not yet time to look, same count, or an unreadable file)."""
        if self.path is None:
            return None
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.every
        try:
            n = int(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None  # not written yet, or being replaced: look again next time
        if n < 1 or n == torch.get_num_threads():
            return None
        torch.set_num_threads(n)
        log.info("CPU threads: %d (the share of the cores this process may use changed)", n)
        return n
