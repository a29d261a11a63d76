"""benchmarks/ctc_plateau.py: seeds, the shortened audio-only command, reading the valid WER
and the plateau count."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from avsr.config import load_config
from tasks.demo_config import DemoConfig
from tests.helpers import REPO

BENCH = REPO / "benchmarks" / "ctc_plateau.py"


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    return runpy.run_path(str(BENCH))  # a script, not a module


def test_seeds_and_args(bench: dict[str, Any]) -> None:
    assert bench["parse_seeds"]("0-3,7") == [0, 1, 2, 3, 7]
    args = bench["parse_args"](["--demo-out", "d", "--seeds", "2,4-5"])
    assert args.seeds == [2, 4, 5]
    assert args.init == Path("d/pretrain/model") and args.out == Path("d/ctc_plateau")
    with pytest.raises(SystemExit):
        bench["parse_args"](["--demo-out", "d", "--set", "train.seed=3"])


def test_missing_inputs_are_named(bench: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such model folder"):
        bench["main"](["--demo-out", str(tmp_path), "--init", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="no data/ folder"):
        bench["main"](["--demo-out", str(tmp_path), "--init", str(tmp_path)])


def test_command_is_the_full_runs_beginning(bench: dict[str, Any]) -> None:
    cmd = bench["run_command"](REPO / "configs" / "demo.yaml", Path("d"), Path("m"), 3, 500, Path("r"), ["train.freeze_updates=0"])
    assert cmd[cmd.index("--init") + 1] == "m" and cmd[cmd.index("--out") + 1] == "r"
    assert cmd[cmd.index("--modality") + 1] == "a"
    full = bench["audio_only_updates"](load_config(DemoConfig, REPO / "configs" / "demo.yaml"))
    sets = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]
    assert "train.seed=3" in sets and f"optim.decay_updates={full}" in sets and "train.valid_every=500" in sets
    assert sets.index("train.max_updates=500") > sets.index(f"train.max_updates={full}")  # the later --set wins
    assert sets[-1] == "train.freeze_updates=0"


def test_valid_wer_and_table(bench: dict[str, Any], tmp_path: Path) -> None:
    run = tmp_path / "seed0"
    run.mkdir()
    assert bench["valid_wer"](run, 500) is None
    recs = [{"split": "train", "update": 500, "loss": 1.0}, {"split": "valid", "update": 500, "wer": 99.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert bench["valid_wer"](run, 500) == 99.1
    text = bench["table"]({0: 99.1, 1: 54.3, 2: None}, 90.0)
    assert "| 0 | 99.1 | yes |" in text and "| 1 | 54.3 | no |" in text and "| 2 | - | - |" in text
    assert "1 of 2 seeds (1 without a result)" in text
