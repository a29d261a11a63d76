"""benchmarks/demo_seeds.py on hand-made demo folders: folders per seed, the demo command,
per-seed checks, spread across seeds, the Markdown and JSON reports and the exit status."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.helpers.demo_results import write_demo

BENCH = REPO / "benchmarks" / "demo_seeds.py"


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    return runpy.run_path(str(BENCH))  # a script, not a module


def test_folders_and_demo_command(bench: dict[str, Any]) -> None:
    assert bench["seed_out"](Path("x/demo_out"), 0) == Path("x/demo_out")
    assert bench["seed_out"](Path("x/demo_out"), 2) == Path("x/demo_out_seed2")
    cmd = bench["demo_command"](Path("o_seed1"), 1, Path("c.yaml"), ["finetune.lr=0.001"])
    assert cmd[:4] == [sys.executable, "-m", "avsr.cli", "demo"]
    assert cmd[4:] == ["--out", "o_seed1", "--set", "seed=1", "--set", "finetune.lr=0.001", "--config", "c.yaml"]
    assert bench["demo_command"](Path("o"), 0, None, [], quick=True)[-1] == "--quick"


def test_seed_overrides_are_refused(bench: dict[str, Any]) -> None:
    with pytest.raises(SystemExit):
        bench["parse_args"](["--set", "seed=4"])
    assert bench["parse_args"](["--seeds", "3,5"]).seeds == [3, 5]


def test_report_over_seeds(bench: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "demo_out"
    write_demo(prefix, a={("clean", None, "a"): 14.0})
    write_demo(tmp_path / "demo_out_seed1", a={("clean", None, "a"): 18.0})
    write_demo(tmp_path / "demo_out_seed2", a={("clean", None, "a"): 22.0}, wall=1300.0)
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    code = bench["main"](["--report-only", "--out-prefix", str(prefix), "--md", str(md), "--json", str(js)])
    assert code == 1  # seed 2 fails goals 1 and 6
    out = capsys.readouterr().out
    assert "| A-only model, clean (1, <= 20 WER) | 14.0 PASS | 18.0 PASS | 22.0 FAIL | 18.0 ± 4.0 (14.0..22.0) | 2/3 |" in out
    assert "| wall time (6, <= 1200 s) | 1100 PASS | 1100 PASS | 1300 FAIL |" in out
    assert "| AVST es->en, AV, babble 0 dB | 15.0 | 15.0 | 15.0 | 15.0 ± 0.0 (15.0..15.0) |" in out
    assert md.read_text().startswith("# Demo effect checks over seeds 0, 1, 2")
    data = json.loads(js.read_text())
    stat = data["summary"]["checks"]["A-only model, clean"]["stat"]
    assert stat["values"] == [14.0, 18.0, 22.0] and stat["seeds"] == [0, 1, 2] and stat["std"] == pytest.approx(4.0)
    assert data["summary"]["checks"]["zero-shot AV, babble -5 dB"]["passes"] == 3
    assert [s["seed"] for s in data["seeds"]] == [0, 1, 2] and data["goals"]["avst_bleu"] == 20.0
    assert data["seeds"][0]["numbers"]["A-only model, A, clean"] == pytest.approx(14.0)


def test_all_seeds_passing_exits_0_and_a_missing_seed_fails(bench: dict[str, Any], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "d"
    write_demo(prefix)
    write_demo(tmp_path / "d_seed1")
    assert bench["main"](["--report-only", "--out-prefix", str(prefix), "--seeds", "0,1"]) == 0
    assert "Verdict: every check passes in every seed." in capsys.readouterr().out
    assert bench["main"](["--report-only", "--out-prefix", str(prefix), "--seeds", "0,1,2"]) == 1
    out = capsys.readouterr().out
    assert "## Seeds without results" in out and "d_seed2/eval: no finetune_avst_*/results.json" in out
    assert "| 2/3 |" in out
