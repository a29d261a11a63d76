"""The resumable stage runner: order, markers, resume, side-by-side groups, failures."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from avsr.errors import UserError
from tasks.stages import Stage, _batches, run_stages


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


def test_nice_stage_runs_with_that_niceness(tmp_path: Path) -> None:
    code = f"import os, pathlib; pathlib.Path(r'{tmp_path / 'nice.txt'}').write_text(str(os.nice(0)))"
    run_stages([Stage(name="n", title="n", commands=lambda: [_py(code)], nice=7)], tmp_path / "out")
    assert int((tmp_path / "nice.txt").read_text()) >= 7
