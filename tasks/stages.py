"""A resumable sequence of pipeline stages, each a subprocess ``avsr ...`` command.

Each finished stage leaves ``<out>/.stages/<name>.json`` (command, seconds,
finish time); a rerun skips finished stages. While stages run, a line every 15 s tells
each one's progress (training update and time left, read from its log). Running each stage in its own
process keeps memory flat and makes every stage exactly what a user would type.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from avsr.errors import UserError
from avsr.io import atomic_write_json
from avsr.logging_utils import get_logger
from tasks.stage_progress import ProgressPrinter

log = get_logger(__name__)

PROGRESS_EVERY = 15.0
"""Seconds between two progress lines while stages run."""


@dataclass(kw_only=True)
class Stage:
    """One step: a name, a title for the progress line, and its ``avsr`` commands.

    Consecutive stages with the same ``group`` run at the same time, each with an equal
    share of the CPU threads (``OMP_NUM_THREADS``) of the (not ``background``) stages
    running when it starts: two 1-thread trainings of small models on 2 cores get more done
    than one 2-thread training after the other. A stage keeps its thread count to the end:
    a model's numbers depend on the thread count its float sums were split over, so a
    training that changed it mid-run at a time set by the other stages would not give the
    same model twice. A stage of a group with ``after`` set starts once that stage has
    finished, so one model can be evaluated while another is still training.
    """

    name: str
    """Stage id: names its log (``logs/{name}.log``) and finish marker (``.stages/{name}.json``)."""
    title: str
    """What the stage does, for the progress line."""
    commands: Callable[[], Sequence[Sequence[str]]]
    """Builds the command lines when the stage starts (they may depend on earlier outputs)."""
    skip_reason: str | None = None
    """Why the stage does not run (printed); None: it runs."""
    outputs: Sequence[Path] = field(default_factory=tuple)
    """Paths the stage writes (informational)."""
    group: str | None = None
    """Consecutive stages of one group run side by side."""
    background: bool = False
    """A side job of its group (an evaluation beside a training): one thread, at niceness
    :data:`BACKGROUND_NICE`, so it takes the CPU time the others leave; it does not count
    when the others' threads are shared."""
    after: str | None = None
    """In a group: the stage (same group, listed earlier) whose outputs this one needs; it
    starts when that one has finished (finished in an earlier run: at once). None: at the
    start of the group."""


def avsr_command(*args: str | Path | int) -> list[str]:
    """The command line of ``avsr ARGS`` run by this interpreter (every argument a string)."""
    return [sys.executable, "-m", "avsr.cli", *[str(a) for a in args]]


def _batches(stages: Sequence[Stage]) -> list[list[tuple[int, Stage]]]:
    """Stages (1-based index) in runs: consecutive stages of one group together."""
    out: list[list[tuple[int, Stage]]] = []
    for i, stage in enumerate(stages, start=1):
        if out and stage.group is not None and out[-1][-1][1].group == stage.group:
            out[-1].append((i, stage))
        else:
            out.append([(i, stage)])
    return out


BACKGROUND_NICE = 10
"""Scheduling niceness (POSIX) of a ``background`` stage's processes."""


def _niced(cmd: list[str], nice: int) -> list[str]:
    """``cmd`` run through coreutils ``nice`` (no preexec_fn: stages run from threads)."""
    exe = shutil.which("nice") if nice else None
    return [exe, "-n", str(nice), *cmd] if exe else cmd


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _threads_each(n: int) -> int:
    return max(1, (os.cpu_count() or 1) // n)


def _run_one(
    stage: Stage, log_dir: Path, threads: int | None, progress: ProgressPrinter,
) -> tuple[float, list[list[str]]]:
    """Run a stage's commands in order, output to its log; raise UserError on failure."""
    ok = False
    try:
        result = _run_commands(stage, log_dir, threads, progress)
        ok = True
        return result
    finally:
        progress.finished(stage.name, ok=ok)


def _run_commands(
    stage: Stage, log_dir: Path, threads: int | None, progress: ProgressPrinter,
) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    cmds = [list(c) for c in stage.commands()]
    log_path = log_dir / f"{stage.name}.log"
    env = dict(os.environ, AVSR_NO_PROGRESS=os.environ.get("AVSR_NO_PROGRESS", "1"))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, "w", encoding="utf-8") as logf:
        progress.started(stage.name, log_path, len(cmds))
        for cmd in cmds:
            logf.write("$ " + shlex.join(cmd) + "\n")
            logf.flush()
            res = subprocess.run(_niced(cmd, BACKGROUND_NICE if stage.background else 0), stdout=logf, stderr=subprocess.STDOUT, env=env, check=False)
            if res.returncode != 0:
                tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
                raise UserError(
                    f"stage '{stage.name}' failed (exit {res.returncode}) running: {shlex.join(cmd)}\n"
                    f"log: {log_path}\n" + "\n".join(tail)
                )
    return time.perf_counter() - t0, cmds


def _ready(pending: list[tuple[str, Stage]], names: set[str], done: set[str]) -> list[tuple[str, Stage]]:
    """Pending stages whose ``after`` has finished (or is not in this batch: finished earlier)."""
    return [(h, s) for h, s in pending if s.after is None or s.after not in names or s.after in done]


def _drop_followers(pending: list[tuple[str, Stage]], failed: set[str], progress: ProgressPrinter) -> None:
    """Remove from ``pending`` every stage that comes after a failed one (directly or not)."""
    while dropped := [(h, s) for h, s in pending if s.after in failed]:
        for h, s in dropped:
            pending.remove((h, s))
            failed.add(s.name)
            progress.finished(s.name, ok=False)
            print(f"{h}: not run ({s.after} failed)", flush=True)


def _start_message(head: str, stage: Stage, threads: int | None, side_by_side: bool, follows: bool) -> str:
    how = [f"after {stage.after}"] if follows else []
    how += [f"side by side, {threads} thread(s)"] if threads is not None and side_by_side else []
    how += ["in the background"] if stage.background and side_by_side else []
    return f"{head} ..." + (f" ({', '.join(how)})" if how else "")


def _run_batch(
    todo: list[tuple[str, Stage]], log_dir: Path, progress_every: float,
) -> tuple[list[tuple[str, Stage, float, list[list[str]]]], list[BaseException], float]:
    """Run stages side by side, each as soon as the stage it comes ``after`` has finished, with
    ``cpus // running`` threads (running: the stages not in the background, once it has
    started; a background stage: 1; a batch of one: the environment's threads), kept to its end.
    A failed stage's followers do not run. Return the finished stages (head, stage, seconds,
    commands), the errors, and the wall seconds."""
    order = [s.name for _, s in todo]
    names = set(order)
    late = [s.name for _, s in todo if s.after in names and order.index(s.after) > order.index(s.name)]
    if late:
        raise ValueError(f"stages {late} come after a stage listed after them")
    pending = list(todo)
    done: set[str] = set()
    failed: set[str] = set()
    errors: list[BaseException] = []
    finished: list[tuple[str, Stage, float, list[list[str]]]] = []
    running: dict[Future[tuple[float, list[list[str]]]], tuple[str, Stage]] = {}
    after = {s.name: s.after for _, s in todo if s.after in names}
    t0 = time.perf_counter()
    with (
        ProgressPrinter([s.name for _, s in todo], progress_every, after=after) as progress,
        ThreadPoolExecutor(max_workers=len(todo)) as pool,
    ):
        side_by_side = len(todo) > 1
        while pending or running:
            _drop_followers(pending, failed, progress)
            ready = _ready(pending, names, done)
            n = sum(not s.background for _, s in [*running.values(), *ready])  # once these have started
            for h, s in ready:
                pending.remove((h, s))
                threads = (1 if s.background else _threads_each(n)) if side_by_side else None
                print(_start_message(h, s, threads, side_by_side, s.name in after), flush=True)
                running[pool.submit(_run_one, s, log_dir, threads, progress)] = (h, s)
            if not running:
                break
            complete, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in complete:
                h, s = running.pop(fut)
                try:
                    secs, cmds = fut.result()
                except BaseException as exc:  # noqa: BLE001 - let the others finish, then raise
                    errors.append(exc)
                    failed.add(s.name)
                    continue
                done.add(s.name)
                finished.append((h, s, secs, cmds))
    return finished, errors, time.perf_counter() - t0


def run_stages(
    stages: Sequence[Stage], out: Path, *, log_dir: Path | None = None, progress_every: float = PROGRESS_EVERY,
) -> dict[str, float]:
    """Run stages in order (a group's stages side by side), skipping finished ones; return
    seconds per stage (stages of a group overlap; ``timings.json`` adds the wall total and
    the CPUs). While stages run, a progress line every ``progress_every`` seconds (0: none)."""
    done_dir = out / ".stages"
    done_dir.mkdir(parents=True, exist_ok=True)
    log_dir = log_dir or out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    wall = 0.0
    n = len(stages)
    for batch in _batches(stages):
        todo: list[tuple[str, Stage]] = []
        for i, stage in batch:
            marker = done_dir / f"{stage.name}.json"
            head = f"[{i}/{n}] {stage.title}"
            if stage.skip_reason:
                print(f"{head}: skipped ({stage.skip_reason})", flush=True)
            elif marker.is_file():
                prev = json.loads(marker.read_text())
                timings[stage.name] = float(prev.get("seconds", 0.0))
                wall += float(prev.get("wall_seconds", prev.get("seconds", 0.0)))
                print(f"{head}: done earlier ({prev.get('seconds', 0):.0f} s), skipping", flush=True)
            else:
                todo.append((head, stage))
        if not todo:
            continue
        finished, errors, secs_wall = _run_batch(todo, log_dir, progress_every)
        share = secs_wall / len(todo)  # each stage's part of the wall time
        for head, stage, secs, cmds in finished:
            timings[stage.name] = secs
            atomic_write_json(done_dir / f"{stage.name}.json", {
                "stage": stage.name, "seconds": secs, "wall_seconds": share,
                "commands": [shlex.join(c) for c in cmds],
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
            print(f"{head}: done in {secs:.0f} s", flush=True)
        if errors:
            raise errors[0]
        wall += share * len(todo)
    atomic_write_json(out / "timings.json", {**timings, "total_wall": wall, "cpus": usable_cpus()})
    return timings
