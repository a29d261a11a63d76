"""One logging setup for every stage, progress bars for long loops, and quiet native libraries."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_CONFIGURED = False

NATIVE_LOGS_ENV = "AVSR_NATIVE_LOGS"
"""Environment variable: ``1`` lets native libraries (mediapipe's C++ ``W0000 ...`` lines,
TFLite's ``INFO: ...``) write to stderr. ``avsr -v`` sets it; worker processes inherit it."""


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
    if verbose:
        os.environ[NATIVE_LOGS_ENV] = "1"
    for noisy in ("matplotlib", "PIL", "fairseq2", "absl", "h5py", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _CONFIGURED = True


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


class _StderrSilencer:
    """Points file descriptor 2 at /dev/null while at least one user is inside (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    def enter(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = self._redirect()
            self._depth += 1

    def leave(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                os.dup2(self._saved, 2)
                os.close(self._saved)
                self._saved = None

    @staticmethod
    def _redirect() -> int | None:
        """Flush Python's stderr, keep a copy of fd 2 and point fd 2 at /dev/null (None: no fd 2)."""
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            return None
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        return saved


_SILENCER = _StderrSilencer()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hide what native code writes to stderr (file descriptor 2) inside the block.

    Wrap calls into C++ libraries that log on their own (mediapipe face mesh); Python
    logging of other threads during the block is hidden too, so keep blocks short.
    A no-op when ``AVSR_NATIVE_LOGS=1`` (``avsr -v``). Nested and concurrent blocks
    are safe: the first to enter redirects, the last to leave restores.
    """
    if os.environ.get(NATIVE_LOGS_ENV) == "1":
        yield
        return
    _SILENCER.enter()
    try:
        yield
    finally:
        _SILENCER.leave()


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
