"""The resumable stage runner: order, markers, resume, side-by-side groups, failures."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pytest

from avsr.errors import UserError
from tasks.stages import BACKGROUND_NICE, Stage, _batches, run_stages


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _stage(name: str, code: str, group: str | None = None) -> Stage:
    return Stage(name=name, title=name, commands=lambda: [_py(code)], group=group)


def test_batches_group_only_consecutive_stages() -> None:
    s = [_stage("a", ""), _stage("b", "", "g"), _stage("c", "", "g"), _stage("d", ""), _stage("e", "", "g")]
    assert [[st.name for _, st in b] for b in _batches(s)] == [["a"], ["b", "c"], ["d"], ["e"]]


def test_group_runs_side_by_side_with_a_thread_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = (
        "import os, time, pathlib; time.sleep(1.0); "
        "pathlib.Path(r'{p}').write_text(os.environ.get('OMP_NUM_THREADS', '-'))"
    )
    stages = [
        _stage("first", code.format(p=tmp_path / "first.txt"), "g"),
        _stage("second", code.format(p=tmp_path / "second.txt"), "g"),
        _stage("alone", code.format(p=tmp_path / "alone.txt")),
    ]
    t0 = time.perf_counter()
    timings = run_stages(stages, tmp_path / "out")
    # the two grouped stages overlap: three 1-s stages in about 2 s, not 3
    assert time.perf_counter() - t0 < 2.8
    assert (tmp_path / "first.txt").read_text() == (tmp_path / "second.txt").read_text() != "-"
    # a lone stage keeps the environment's setting
    assert (tmp_path / "alone.txt").read_text() == os.environ.get("OMP_NUM_THREADS", "-")
    saved = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert set(saved) == {"first", "second", "alone", "total_wall", "cpus"}
    assert saved["cpus"] >= 1
    assert saved["total_wall"] < timings["first"] + timings["second"] + timings["alone"]
    assert "side by side" in capsys.readouterr().out

    # a rerun skips everything and keeps the wall total
    run_stages(stages, tmp_path / "out")
    again = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert again["total_wall"] == pytest.approx(saved["total_wall"], rel=1e-6)
    assert capsys.readouterr().out.count("done earlier") == 3


def test_failing_stage_in_a_group_names_itself_and_keeps_the_other(tmp_path: Path) -> None:
    stages = [
        _stage("ok", "import time; time.sleep(0.3)", "g"),
        _stage("bad", "import sys; print('boom'); sys.exit(3)", "g"),
    ]
    with pytest.raises(UserError, match=r"stage 'bad' failed \(exit 3\)[\s\S]*boom"):
        run_stages(stages, tmp_path)
    assert (tmp_path / ".stages" / "ok.json").is_file()
    assert not (tmp_path / ".stages" / "bad.json").exists()


def _lane_stage(name: str, code: str, after: str | None = None) -> Stage:
    return Stage(name=name, title=name, commands=lambda: [_py(code)], group="g", after=after)


def test_a_stage_follows_its_stage_and_overlaps_the_others(tmp_path: Path) -> None:
    stamp = "import os, time, pathlib; t0 = time.time(); time.sleep({s}); pathlib.Path(r'{p}').write_text(f'{{t0}} {{time.time()}} ' + os.environ.get('OMP_NUM_THREADS', '-'))"
    stages = [
        _lane_stage("train_a", stamp.format(s=0.8, p=tmp_path / "train_a")),
        _lane_stage("eval_a", stamp.format(s=0.2, p=tmp_path / "eval_a"), after="train_a"),
        _lane_stage("train_b", stamp.format(s=1.2, p=tmp_path / "train_b")),
    ]
    run_stages(stages, tmp_path / "out", progress_every=0)
    times = {n: (tmp_path / n).read_text().split() for n in ("train_a", "eval_a", "train_b")}
    assert float(times["eval_a"][0]) >= float(times["train_a"][1])  # after its stage ...
    assert float(times["eval_a"][0]) < float(times["train_b"][1])  # ... while the other lane runs
    assert {t[2] for t in times.values()} == {str(max(1, (os.cpu_count() or 1) // 2))}  # two at a time share the CPUs
    assert all((tmp_path / "out" / ".stages" / f"{n}.json").is_file() for n in times)


def test_a_failing_stage_stops_its_followers_only(tmp_path: Path) -> None:
    stages = [
        _lane_stage("bad", "import sys; sys.exit(2)"),
        _lane_stage("after_bad", f"import pathlib; pathlib.Path(r'{tmp_path / 'ran'}').touch()", after="bad"),
        _lane_stage("other", "import time; time.sleep(0.3)"),
        _lane_stage("after_after", f"import pathlib; pathlib.Path(r'{tmp_path / 'ran2'}').touch()", after="after_bad"),
    ]
    with pytest.raises(UserError, match=r"stage 'bad' failed \(exit 2\)"):
        run_stages(stages, tmp_path / "out", progress_every=0)
    assert not (tmp_path / "ran").exists() and not (tmp_path / "ran2").exists()
    assert (tmp_path / "out" / ".stages" / "other.json").is_file()
    # the rerun runs the failed lane again, the finished stage not
    stages[0] = _lane_stage("bad", "pass")
    timings = run_stages(stages, tmp_path / "out", progress_every=0)
    assert (tmp_path / "ran2").exists() and set(timings) == {"bad", "after_bad", "other", "after_after"}


def test_a_stage_whose_predecessor_finished_earlier_starts_at_once(tmp_path: Path) -> None:
    stages = [_lane_stage("first", "pass"), _lane_stage("second", "pass", after="first")]
    (tmp_path / "out" / ".stages").mkdir(parents=True)
    (tmp_path / "out" / ".stages" / "first.json").write_text(json.dumps({"seconds": 5.0}))
    timings = run_stages(stages, tmp_path / "out", progress_every=0)
    assert timings["first"] == 5.0 and "second" in timings


def test_two_stages_after_one_run_side_by_side_once_it_finished(tmp_path: Path) -> None:
    stamp = "import time, pathlib; t0 = time.time(); time.sleep({s}); pathlib.Path(r'{p}').write_text(f'{{t0}} {{time.time()}}')"
    stages = [
        _lane_stage("model", stamp.format(s=0.3, p=tmp_path / "model")),
        _lane_stage("eval", stamp.format(s=0.6, p=tmp_path / "eval"), after="model"),
        _lane_stage("more", stamp.format(s=0.6, p=tmp_path / "more"), after="model"),
    ]
    run_stages(stages, tmp_path / "out", progress_every=0)
    t = {n: [float(x) for x in (tmp_path / n).read_text().split()] for n in ("model", "eval", "more")}
    assert min(t["eval"][0], t["more"][0]) >= t["model"][1]
    assert t["eval"][0] < t["more"][1] and t["more"][0] < t["eval"][1]  # they overlap


def test_a_stage_after_a_later_listed_one_is_refused(tmp_path: Path) -> None:
    stages = [_lane_stage("b", "pass", after="a"), _lane_stage("a", "pass")]
    with pytest.raises(ValueError, match="after a stage listed after them"):
        run_stages(stages, tmp_path / "out", progress_every=0)


def test_a_stage_alone_gets_the_cpus_the_finished_ones_left(tmp_path: Path) -> None:
    code = "import os, time, pathlib; time.sleep({s}); pathlib.Path(r'{p}').write_text(os.environ.get('OMP_NUM_THREADS', '-'))"
    stages = [
        _lane_stage("short", code.format(s=0.0, p=tmp_path / "short")),
        _lane_stage("long", code.format(s=0.8, p=tmp_path / "long")),
        _lane_stage("then", code.format(s=0.0, p=tmp_path / "then"), after="long"),
    ]
    run_stages(stages, tmp_path / "out", progress_every=0)
    cpus = os.cpu_count() or 1
    assert (tmp_path / "long").read_text() == str(max(1, cpus // 2))
    assert (tmp_path / "then").read_text() == str(cpus)


def test_a_stage_keeps_its_threads_and_background_stages_take_one(tmp_path: Path) -> None:
    report = (
        "import os, time, pathlib; time.sleep({s}); "
        "pathlib.Path(r'{p}').write_text(os.environ.get('OMP_NUM_THREADS', '-') + ' ' + str(os.nice(0)))"
    )
    stages = [
        _lane_stage("short", report.format(s=0.0, p=tmp_path / "short")),
        _lane_stage("long", report.format(s=0.8, p=tmp_path / "long")),
        dataclasses.replace(_lane_stage("eval", report.format(s=0.0, p=tmp_path / "eval")), background=True),
    ]
    run_stages(stages, tmp_path / "out", progress_every=0)
    cpus = os.cpu_count() or 1
    # the background stage does not count; "long" keeps its share after "short" has finished
    assert (tmp_path / "long").read_text() == f"{max(1, cpus // 2)} {os.nice(0)}"
    threads, nice = (tmp_path / "eval").read_text().split()
    assert threads == "1" and int(nice) >= BACKGROUND_NICE
