"""The GPU check (``avsr env --gpu-check``, ``scripts/gpu_check.sh``): its CPU listing mode, its
commands (they parse, their configs load), its runner on the steps that also run on CPU (a gloo
process group of one), and the check itself where a CUDA device is visible."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest
import torch

from avsr.cli import build_parser
from avsr.cli import main as avsr_main
from tasks import gpu_check
from tasks.pretrain import load_pretrain_config
from tests.helpers import REPO

NAMES = [
    "data",
    "ddp_bf16",
    "fsdp2_bf16",
    "syncbn_kernels",
    "finetune_bf16",
    "features_bf16",
    "kmeans_faiss_gpu",
    "pretrain_300m_bf16",
]


def test_list_mode_prints_every_command_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert avsr_main(["env", "--gpu-check", "--list", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for i, name in enumerate(NAMES, 1):
        assert f"\n{i}. {name}: " in out
    assert out.count("-m torch.distributed.run --standalone --nproc-per-node=") == 5
    assert "dry-run estimate per GPU" in out and "AVSR_PROCESS_GROUP=1" in out
    assert not (tmp_path / "logs").exists()  # nothing ran


def test_without_cuda_the_check_lists_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.gpu_check(tmp_path, list_only=False) == 0
    out = capsys.readouterr().out
    assert "no CUDA device visible" in out and "nothing was run" in out


def test_script_lists_on_cpu(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the script would run the check, not list it")
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "pretrain_300m_bf16" in res.stdout and "nothing was run" in res.stdout


def test_commands_parse_and_their_configs_load(tmp_path: Path) -> None:
    checks = gpu_check.plan(tmp_path, gpus=2)
    assert [c.name for c in checks] == NAMES
    assert {c.nproc for c in checks if c.name in ("ddp_bf16", "fsdp2_bf16")} == {2}
    for check in checks:
        if check.argv[0].startswith("@"):
            assert check.argv[0] in gpu_check.BUILTINS
            continue
        args = build_parser(check.argv[0]).parse_args(check.argv)
        if args.command == "pretrain":
            load_pretrain_config(args.config, args.overrides)
    one = gpu_check.plan(tmp_path, gpus=1)
    assert all(c.nproc in (None, 1) for c in one)


def test_runner_on_the_steps_that_run_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """data + FSDP2 pretraining through torchrun in a gloo group of one
    (``AVSR_PROCESS_GROUP=1``), and a skipped dependant; the table and its JSON."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    checks = {c.name: c for c in gpu_check.plan(tmp_path, gpus=0)}
    fsdp = checks["fsdp2_bf16"]
    broken = gpu_check.Check("broken", "fails", ["pretrain", "--config", str(tmp_path / "no.yaml")])
    after = gpu_check.Check("after", "needs broken", ["env"], needs=("broken",))
    results = gpu_check.run_all([checks["data"], fsdp, broken, after], tmp_path, timeout=240)
    assert [r.status for r in results] == ["PASS", "PASS", "FAIL", "SKIP"]
    assert results[1].estimate and results[1].max_alloc is None  # no CUDA: nothing measured
    assert "no.yaml" in results[2].note and results[3].note == "needs broken"
    assert (tmp_path / "fsdp2" / "model").is_dir()
    report = json.loads((tmp_path / "reports" / "fsdp2_bf16.rank0.json").read_text())
    assert report["rc"] == 0 and report["device"] == "cpu"
    gpu_check.print_table(results)
    out = capsys.readouterr().out
    assert "fsdp2_bf16" in out and "SKIP" in out
    assert len(json.loads((tmp_path / "gpu_check.json").read_text())) == 4


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device visible: the GPU check runs nccl, bf16 on CUDA, SyncBatchNorm and faiss-GPU",
)
def test_gpu_check_passes(tmp_path: Path) -> None:
    assert gpu_check.gpu_check(tmp_path, list_only=False) == 0
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    assert all(r["status"] == "PASS" for r in rows)
    assert all(r["max_alloc"] for r in rows if r["name"] != "data")


def test_env_options_are_there() -> None:
    parser = argparse.ArgumentParser()
    from tasks.env import add_arguments

    add_arguments(parser)
    args = parser.parse_args(["--gpu-check", "--list", "--work", "W", "--timeout", "60"])
    assert args.gpu_check and args.list and args.work == Path("W") and args.timeout == 60
