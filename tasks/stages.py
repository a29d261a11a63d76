"""A resumable sequence of pipeline stages, each a subprocess ``avsr ...`` command.

Each finished stage leaves ``<out>/.stages/<name>.json`` (command, seconds,
finish time); a rerun skips finished stages. Running each stage in its own
process keeps memory flat and makes every stage exactly what a user would type.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avsr.errors import UserError
from avsr.io import atomic_write_json
from avsr.logging_utils import get_logger

log = get_logger(__name__)


@dataclass(kw_only=True)
class Stage:
    """One step: a name, a title for the progress line, and its ``avsr`` commands."""

    name: str
    title: str
    commands: Callable[[], Sequence[Sequence[str]]]
    skip_reason: str | None = None
    outputs: Sequence[Path] = field(default_factory=tuple)


def avsr_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "avsr.cli", *[str(a) for a in args]]


def run_stages(stages: Sequence[Stage], out: Path, *, log_dir: Path | None = None) -> dict[str, float]:
    """Run stages in order, skipping finished ones; return seconds per stage."""
    done_dir = out / ".stages"
    done_dir.mkdir(parents=True, exist_ok=True)
    log_dir = log_dir or out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    n = len(stages)
    for i, stage in enumerate(stages, start=1):
        marker = done_dir / f"{stage.name}.json"
        head = f"[{i}/{n}] {stage.title}"
        if stage.skip_reason:
            print(f"{head}: skipped ({stage.skip_reason})", flush=True)
            continue
        if marker.is_file():
            prev = json.loads(marker.read_text())
            timings[stage.name] = float(prev.get("seconds", 0.0))
            print(f"{head}: done earlier ({prev.get('seconds', 0):.0f} s), skipping", flush=True)
            continue
        print(f"{head} ...", flush=True)
        t0 = time.perf_counter()
        cmds = [list(c) for c in stage.commands()]
        log_path = log_dir / f"{stage.name}.log"
        with open(log_path, "w", encoding="utf-8") as logf:
            for cmd in cmds:
                logf.write("$ " + shlex.join(cmd) + "\n")
                logf.flush()
                env = dict(os.environ, AVSR_NO_PROGRESS=os.environ.get("AVSR_NO_PROGRESS", "1"))
                res = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, check=False)
                if res.returncode != 0:
                    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
                    raise UserError(
                        f"stage '{stage.name}' failed (exit {res.returncode}) running: {shlex.join(cmd)}\n"
                        f"log: {log_path}\n" + "\n".join(tail)
                    )
        secs = time.perf_counter() - t0
        timings[stage.name] = secs
        atomic_write_json(marker, {"stage": stage.name, "seconds": secs, "commands": [shlex.join(c) for c in cmds], "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        print(f"{head}: done in {secs:.0f} s", flush=True)
    atomic_write_json(out / "timings.json", timings)
    return timings
