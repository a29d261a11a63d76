"""Live stage progress from fake logs: update counts, time left, commands, the printed lines."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tasks.stage_progress import LogWatch, ProgressPrinter, duration, subcommand
from tasks.stages import Stage, run_stages


def _train(clock: str, step: int, total: int) -> str:
    return f"{clock} INFO avsr.train: train {step}/{total} | loss 1.5 | lr 0.001 | ups 2.0\n"


def _secs(clock: str) -> float:
    h, m, s = (int(x) for x in clock.split(":"))
    return h * 3600.0 + m * 60.0 + s


def test_time_left_from_the_rate_between_log_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("$ python -m avsr.cli finetune --task avsr\n10:00:00 INFO avsr.finetune: loading\n"
                   + _train("10:00:00", 20, 200) + "10:00:05 INFO avsr.train: valid 20/200 | wer 50\n")
    w = LogWatch(log, 1)
    w.poll()
    assert w.describe(_secs("10:00:05")) == "20/200"  # one progress line: no rate yet
    with open(log, "a") as f:
        f.write(_train("10:00:10", 40, 200))
    w.poll()
    # 20 updates in 10 s: 160 left take 80 s, minus the 10 s since that line
    assert w.seconds_left(_secs("10:00:20")) == pytest.approx(70.0)
    assert w.describe(_secs("10:00:10")) == "40/200 (1m20s left)"
    with open(log, "a") as f:
        f.write(_train("10:01:30", 200, 200))
    w.poll()
    assert w.describe(_secs("10:01:31")) == "200/200 (finishing)"


def test_rate_across_midnight(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text(_train("23:59:50", 20, 100) + _train("00:00:10", 60, 100))
    w = LogWatch(log)
    w.poll()
    assert w.seconds_left(_secs("00:00:10")) == pytest.approx(20.0)


def test_partial_lines_wait_and_a_rewritten_log_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    line = _train("10:00:00", 20, 100)
    log.write_text(line[:25])
    w = LogWatch(log)
    w.poll()
    assert w.last is None and w.describe(0.0) == "running"
    with open(log, "a") as f:
        f.write(line[25:] + _train("10:00:10", 40, 100))
    w.poll()
    assert w.last is not None and w.last.step == 40
    log.write_text("$ python -m avsr.cli evaluate --model m\n")  # the stage ran again
    w.poll()
    assert w.last is None and w.commands == 1 and w.current == "evaluate"


def test_each_command_has_its_own_progress(tmp_path: Path) -> None:
    log = tmp_path / "stage0.log"
    log.write_text("$ /v/bin/python -m avsr.cli features --manifest /d/train.tsv\nwrote\n"
                   "$ /v/bin/python -m avsr.cli kmeans fit --feats /f --k 50\n")
    w = LogWatch(log, 3)
    w.poll()
    assert w.describe(0.0) == "[cmd 2/3: kmeans fit]"
    with open(log, "a") as f:
        f.write("$ /v/bin/python -m avsr.cli pretrain --stage0\n" + _train("10:00:00", 20, 600))
    w.poll()
    assert w.describe(_secs("10:00:00")) == "20/600"
    assert subcommand("$ /usr/bin/avsr corpus build --size small") == "corpus build"


def test_durations() -> None:
    assert [duration(s) for s in (0, 45, 190, 3720)] == ["0s", "45s", "3m10s", "1h02m"]


def test_printer_line_names_every_stage(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(_train("10:00:00", 20, 100) + _train("10:00:10", 40, 100))
    lines: list[str] = []
    with ProgressPrinter(["a", "b", "c", "d", "e", "f"], every=0, write=lines.append, after={"e": "a", "f": "e"}) as p:
        p.started("a", tmp_path / "a.log", 1)
        p.started("c", tmp_path / "c.log", 1)
        p.finished("c")
        p.started("d", tmp_path / "d.log", 1)
        p.finished("d", ok=False)
        line = p.line(now=_secs("10:00:10"))
    assert line.startswith("[00:00] ")
    assert line[8:] == "a 40/100 (30s left) | b starting | c done | d failed | waiting: e, f"
    assert lines == []  # every=0: nothing printed on its own


def test_run_stages_prints_progress_lines_while_a_stage_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = (
        "import time\n"
        "for step in range(20, 101, 20):\n"
        "    print(time.strftime('%H:%M:%S') + f' INFO avsr.train: train {step}/100 | loss 1', flush=True)\n"
        "    time.sleep(0.3)\n"
    )
    stages = [Stage(name=n, title=n, commands=lambda: [[sys.executable, "-c", code]], group="g") for n in ("s1", "s2")]
    t0 = time.perf_counter()
    run_stages(stages, tmp_path, progress_every=0.25)
    assert time.perf_counter() - t0 < 10
    out = capsys.readouterr().out
    progress = [ln for ln in out.splitlines() if ln.startswith("[00:0")]
    assert progress, out
    assert any("s1 " in ln and "/100" in ln and " | s2 " in ln for ln in progress), progress
    assert "\r" not in out and "\x1b" not in out
