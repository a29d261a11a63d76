"""Live progress of running stages, read from their logs: one plain line every few seconds.

Each stage's commands write to ``logs/<stage>.log``; training commands log lines like
``15:56:34 INFO avsr.train: train 280/600 | loss ...``. :class:`LogWatch` follows one log
(new lines only) and keeps the current command and the first and latest training update;
the update rate between those two log timestamps gives the time left.
:class:`ProgressPrinter` prints, while a batch of stages runs, a line such as
``[06:12] finetune_a 480/1200 (3m10s left) | finetune_av 350/1000 (4m05s left)``:
plain text, no control characters, so it reads the same on a terminal and in a log file.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TRAIN_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) [A-Z]+ [\w.]+: train (\d+)/(\d+)\b")
"""A trainer's progress line: clock time, update, total updates."""
DAY = 86400.0


@dataclass(frozen=True)
class TrainPoint:
    """One training progress line."""

    clock: float
    """Seconds since midnight of the day the watch started (past midnight: above 86400)."""
    step: int
    """Updates done."""
    total: int
    """Updates planned."""


def seconds_of_day(t: float | None = None) -> float:
    """Local clock time ``t`` (default now) in seconds since midnight, as the logs write it."""
    t = time.time() if t is None else t
    lt = time.localtime(t)
    return lt.tm_hour * 3600.0 + lt.tm_min * 60.0 + lt.tm_sec + t % 1


def duration(seconds: float) -> str:
    """``45`` -> ``45s``, ``190`` -> ``3m10s``, ``3720`` -> ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def subcommand(line: str) -> str:
    """``$ python -m avsr.cli kmeans fit --feats ...`` -> ``kmeans fit`` (the first words
    after the program)."""
    words = line[2:].split()
    for i, w in enumerate(words):
        if w in ("avsr.cli", "avsr") or w.endswith("/avsr"):
            words = words[i + 1:]
            break
    else:
        words = words[-1:]
    picked = []
    for w in words[:2]:
        if w.startswith("-") or "/" in w:
            break
        picked.append(w)
    return " ".join(picked)


class LogWatch:
    """Follows one stage's log: commands started (``$ `` lines) and training progress."""

    def __init__(self, path: Path, n_commands: int | None = None) -> None:
        self.path = path
        self.n_commands = n_commands
        """Commands of the stage (None: unknown)."""
        self._reset()

    def _reset(self) -> None:
        """Forget what was read (the log was rewritten)."""
        self.commands = 0
        """Commands started so far."""
        self.current = ""
        """Subcommand of the running command, e.g. ``kmeans fit``."""
        self.first: TrainPoint | None = None
        self.last: TrainPoint | None = None
        self._offset = 0
        self._partial = ""
        self._day = 0.0
        self._prev_clock: float | None = None

    def poll(self) -> None:
        """Read the lines written since the last poll (a shorter file starts over)."""
        try:
            size = self.path.stat().st_size
            if size < self._offset:
                self._reset()
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))

    def _line(self, line: str) -> None:
        if line.startswith("$ "):
            self.commands += 1
            self.current = subcommand(line)
            self.first = self.last = None
            return
        m = TRAIN_LINE.match(line)
        if not m:
            return
        h, mi, s, step, total = (int(x) for x in m.groups())
        clock = h * 3600.0 + mi * 60.0 + s
        if self._prev_clock is not None and clock + self._day < self._prev_clock - DAY / 2:
            self._day += DAY  # past midnight
        self._prev_clock = clock = clock + self._day
        point = TrainPoint(clock=clock, step=step, total=total)
        if self.first is None:
            self.first = point
        self.last = point

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the last update at the rate so far (None: fewer than two progress
        lines); ``now``: seconds of day, as :func:`seconds_of_day`."""
        first, last = self.first, self.last
        if first is None or last is None or last.clock <= first.clock or last.step <= first.step:
            return None
        rate = (last.step - first.step) / (last.clock - first.clock)
        now += self._day
        if now < last.clock - DAY / 2:
            now += DAY
        since = min(max(0.0, now - last.clock), 3600.0)
        return max(0.0, (last.total - last.step) / rate - since)

    def describe(self, now: float) -> str:
        """``480/1200 (3m10s left)``, ``[cmd 3/5: kmeans fit]`` or ``running``."""
        last = self.last
        if last is not None:
            if last.step >= last.total:
                return f"{last.step}/{last.total} (finishing)"
            left = self.seconds_left(now)
            return f"{last.step}/{last.total}" + (f" ({duration(left)} left)" if left is not None else "")
        if self.n_commands and self.n_commands > 1 and self.commands:
            return f"[cmd {self.commands}/{self.n_commands}: {self.current}]"
        return "running"


class ProgressPrinter:
    """While a batch of stages runs, prints a line about each of them every ``every``
    seconds (``every <= 0``: never). Use as a context manager; stages call
    :meth:`started` once their log is open and :meth:`finished` at the end."""

    def __init__(self, names: Sequence[str], every: float, write: Callable[[str], None] | None = None,
                 after: Mapping[str, str] | None = None) -> None:
        self.names = list(names)
        self.after = dict(after or {})
        """Stage -> the stage it waits for (listed after ``waiting:`` until it starts)."""
        self.every = every
        self._write = write or (lambda line: print(line, flush=True))
        self._watches: dict[str, LogWatch] = {}
        self._done: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def started(self, name: str, log: Path, n_commands: int) -> None:
        """Stage ``name`` writes to ``log`` from now on (its ``n_commands`` commands)."""
        with self._lock:
            self._watches[name] = LogWatch(log, n_commands)

    def finished(self, name: str, *, ok: bool = True) -> None:
        """Stage ``name`` ended (``ok``: all its commands succeeded)."""
        with self._lock:
            self._done[name] = "done" if ok else "failed"

    def line(self, now: float | None = None) -> str:
        """``[mm:ss] name progress | name progress ...`` (time since the batch started)."""
        now = seconds_of_day() if now is None else now
        parts, waiting = [], []
        with self._lock:
            for name in self.names:
                watch = self._watches.get(name)
                if name in self._done:
                    parts.append(f"{name} {self._done[name]}")
                elif watch is None and name in self.after:
                    waiting.append(name)
                elif watch is None:
                    parts.append(f"{name} starting")
                else:
                    watch.poll()
                    parts.append(f"{name} {watch.describe(now)}")
        if waiting:
            parts.append("waiting: " + ", ".join(waiting))
        elapsed = time.monotonic() - self._t0
        clock = f"{int(elapsed // 60):02d}:{int(elapsed % 60):02d}" if elapsed < 3600 else duration(elapsed)
        return f"[{clock}] " + " | ".join(parts)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._write(self.line())

    def __enter__(self) -> ProgressPrinter:
        self._t0 = time.monotonic()
        if self.every > 0:
            self._thread = threading.Thread(target=self._loop, name="stage-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
