"""The reduced demo runs every stage (tiny corpus, a few updates), and --encoder
takes a tiny XLS-R-shaped checkpoint in the HF and in the fairseq1 format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.fairseq1 import fairseq1_cfg, hf_to_fairseq1
from tests.helpers.hf_models import randomize, tiny_hf_config

pytestmark = pytest.mark.slow

STAGES = ["corpus", "preprocess", "stage0", "units", "pretrain", "finetune_a", "finetune_av", "finetune_avst", "evaluate_a", "evaluate_av", "evaluate_avst"]


def run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AVSR_NO_PROGRESS="1")
    res = subprocess.run(
        [sys.executable, "-m", "avsr.cli", "demo", "--quick", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    res = run_demo(out)
    return out, res.stdout


def test_every_stage_ran(quick_demo: tuple[Path, str]) -> None:
    out, stdout = quick_demo
    for stage in STAGES:
        marker = json.loads((out / ".stages" / f"{stage}.json").read_text())
        assert marker["seconds"] > 0 and marker["commands"], stage
    assert (out / "stage0" / "run" / "encoder" / "model.safetensors").is_file()
    assert (out / "units" / "labels" / "dict.km.txt").is_file()
    for run in ("finetune_a", "finetune_av", "finetune_avst"):
        assert (out / run / "model" / "model.safetensors").is_file()
    for name in ("finetune_a", "finetune_av", "finetune_avst_es"):
        res = json.loads((out / "eval" / name / "results.json").read_text())
        assert res["cells"], name
    assert list((out / "eval" / "finetune_av").glob("*.png")), "no plots"
    for name in ("finetune_a", "finetune_av"):  # decoded over the training transcripts' words
        ctc = json.loads((out / "eval" / name / "results.json").read_text())["config"]
        assert ctc["decoder"] == "beam" and ctc["ctc"]["vocab"] == str(out / "data" / "train.wrd"), name
    checks = json.loads((out / "checks.json").read_text())
    assert [c["goal"] for c in checks] == [1, 2, 2, 2, 3, 3, 3, 4, 5, 6]
    assert all(isinstance(c["passed"], bool) and c["sentence"] for c in checks)
    summary = (out / "summary.md").read_text()
    assert "Effect checks" in stdout and "total" in summary and "reported, not required" in summary
    assert "| input | clean | babble 0 dB |" in summary  # the translation BLEU table
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {*STAGES, "total_wall", "cpus"}
    # fine-tuning A and AV run side by side: the wall total is below the sum of the stages
    assert 0 < timings["total_wall"] < sum(timings[s] for s in STAGES)


def test_rerun_skips_finished_stages(quick_demo: tuple[Path, str]) -> None:
    out, _ = quick_demo
    res = run_demo(out)
    assert res.stdout.count("done earlier") == len(STAGES)


def _reuse_data(src: Path, dst: Path) -> None:
    """A new demo folder that shares the finished corpus and preprocessing."""
    (dst / ".stages").mkdir(parents=True)
    for name in ("corpus", "data"):
        (dst / name).symlink_to(src / name)
    for stage in ("corpus", "preprocess"):
        shutil.copy(src / ".stages" / f"{stage}.json", dst / ".stages" / f"{stage}.json")


def _tiny_hf_xlsr(path: Path) -> torch.nn.Module:
    import transformers

    model = transformers.Wav2Vec2Model(tiny_hf_config(num_hidden_layers=4)).eval()
    randomize(model, seed=3)
    model.save_pretrained(path)
    return model


@pytest.mark.parametrize("fmt", ["hf", "fairseq1"])
def test_encoder_option(quick_demo: tuple[Path, str], tmp_path: Path, fmt: str) -> None:
    src, _ = quick_demo
    out = tmp_path / "demo"
    _reuse_data(src, out)
    model = _tiny_hf_xlsr(tmp_path / "hf")
    if fmt == "hf":
        enc = tmp_path / "hf"
    else:
        enc = tmp_path / "xlsr_tiny.pt"
        torch.save({"model": hf_to_fairseq1(model.state_dict()), "cfg": {"model": fairseq1_cfg(model.config)}}, enc)
    res = run_demo(out, "--encoder", str(enc))
    assert "stage 0" in res.stdout and f"skipped (starting from the encoder {enc}" in res.stdout
    assert not (out / "stage0").exists()
    units = json.loads((out / ".stages" / "units.json").read_text())
    assert str(enc) in units["commands"][0] and "--layer 3" in units["commands"][0]  # 3/4 of 4 layers
    assert (out / "eval" / "finetune_a" / "results.json").is_file()
