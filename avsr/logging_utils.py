"""One logging setup for every stage, and progress bars for long loops."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_CONFIGURED = False


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the root logger once: ``HH:MM:SS level name: message`` on stderr."""
    global _CONFIGURED
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if _CONFIGURED:
        logging.getLogger().setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL", "fairseq2", "absl", "h5py", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _CONFIGURED = True


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    disable: bool | None = None,
) -> Iterator[T]:
    """A tqdm progress bar (off when ``AVSR_NO_PROGRESS=1`` or stderr is not a terminal and CI is set)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("AVSR_NO_PROGRESS") == "1"
    yield from tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True, mininterval=1.0)
