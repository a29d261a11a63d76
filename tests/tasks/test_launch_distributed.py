"""``avsr launch pretrain|finetune``: training as one job of N nodes x G tasks (one per GPU).

Through submitit's local executor, 2 tasks on CPU join a gloo rendezvous from the variables the
launcher exports and train the tiny AV pretraining as 2 DDP processes: the same losses as one
process with 2 micro-batches (what tests/tasks/test_pretrain.py checks for torchrun). The sbatch
script of the 64-GPU 2B example; a 2-process FSDP2 checkpoint resumed by 1 process.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest
import torch

from avsr.checkpoint import load_model_dir
from avsr.cli import main as avsr_main
from avsr.train.state import TRAINER_STATE, load_pt
from tasks.launch import _executor as launch_executor
from tasks.launch import add_arguments
from tests.helpers import REPO
from tests.tasks.test_pretrain import FAST, TINY, _data, _losses, _run

SETS = [
    *FAST,
    "model.visual.freeze_bn=true",  # under DDP BatchNorm statistics are per process
    "train.max_updates=3",
    "train.save_every=2",
    "valid_split=null",
    "data.noise_prob=0.0",
]


@pytest.fixture(autouse=True)
def _quiet_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("AVSR_NO_PROGRESS", "1")


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def _pretrain_args(data: Path, out: Path, sets: list[str]) -> list[str]:
    return ["--config", str(TINY), "--data", str(data), "--labels", str(data), "--out", str(out)] + _sets(sets)


@pytest.mark.slow
def test_local_two_task_job_equals_one_process(tmp_path: Path) -> None:
    data = _data(tmp_path / "data", n_train=24)
    assert _run(data, tmp_path / "one", [*SETS, "train.grad_accum=2"]) == [0]
    out, logs = tmp_path / "job", tmp_path / "logs"
    launch = ["launch", "pretrain", "--nodes", "1", "--gpus-per-node", "2", "--executor", "local"]
    launch += ["--log-dir", str(logs), "--slurm-time", "10", "--"]
    assert avsr_main([*launch, *_pretrain_args(data, out, SETS)]) == 0
    one, job = _losses(tmp_path / "one"), _losses(out)
    assert sorted(job) == [1, 2, 3]
    for u in one:
        assert abs(one[u] - job[u]) < 1e-5, (u, one[u], job[u])
    assert load_pt(out / "checkpoints" / "step_2" / TRAINER_STATE)["world_size"] == 2
    task_logs = "".join(p.read_text() for p in logs.glob("*/*_log.err"))
    assert "task 0 of 2" in task_logs and "task 1 of 2" in task_logs


def _fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``srun`` (submitit's check for SLURM) and ``sbatch`` that accepts and names job 4242."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "sbatch").write_text('#!/bin/sh\necho "Submitted batch job 4242"\n')
    for name in ("srun", "sbatch"):
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")


# The documented 2B example (docs/cluster.md): 8 nodes x 8 GPUs.
LAUNCH_2B = ["pretrain", "--nodes", "8", "--gpus-per-node", "8", "--slurm-partition", "gpu"]
LAUNCH_2B += ["--cpus-per-task", "12", "--mem-gb", "960", "--slurm-time", "2880"]
ARGS_2B = ["--config", str(REPO / "configs" / "pretrain_2b.yaml"), "--data", "DATA"]
ARGS_2B += ["--labels", "LABELS", "--init", "xlsr2_2B_1000k.pt"]


def test_sbatch_of_the_2b_example_on_64_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_slurm(tmp_path, monkeypatch)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    run = tmp_path / "RUN"
    args = parser.parse_args([*LAUNCH_2B, "--", *ARGS_2B, "--out", str(run)])
    slurm = launch_executor(args, run / "slurm", "pretrain")._executor
    text = slurm._make_submission_file_text("python -m job", "uid")
    for line in ("nodes=8", "ntasks-per-node=8", "gpus-per-node=8", "cpus-per-task=12"):
        assert f"#SBATCH --{line}\n" in text, line
    for line in ("mem=960GB", "time=2880", "partition=gpu", "job-name=avsr-pretrain"):
        assert f"#SBATCH --{line}\n" in text, line
    assert "#SBATCH --signal=USR2@" in text  # time limit -> checkpoint and requeue
    assert "--array" not in text
    assert "\nsrun --unbuffered --output " in text  # srun starts the 64 tasks


def test_launch_submits_one_training_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_slurm(tmp_path, monkeypatch)
    run = tmp_path / "RUN"
    argv = ["launch", *LAUNCH_2B, "--no-wait", "--", *ARGS_2B, "--out", str(run)]
    assert avsr_main(argv) == 0
    jobs = [p.name for p in (run / "slurm").iterdir() if not p.name.startswith(".")]
    assert jobs == ["4242"]  # one job, not an array
    script = (run / "slurm" / "4242" / "4242_submission.sh").read_text()
    assert "#SBATCH --ntasks-per-node=8\n" in script and "#SBATCH --nodes=8\n" in script


def test_launch_training_refuses_bad_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["launch", "finetune", "--gpus-per-node", "2", "--executor", "local"]
    ft = ["--data", "D", "--init", "I", "--out", str(tmp_path / "ft")]
    assert avsr_main([*base, "--nodes", "2", "--", *ft]) == 2  # local: one node only
    assert "one node" in capsys.readouterr().err
    assert avsr_main(["launch", "pretrain", "--gpus-per-node", "2", "--", "--dry-run"]) == 2
    assert "need --out" in capsys.readouterr().err
    assert avsr_main([*base[:2], "--gpus-per-node", "0", "--executor", "local", "--", *ft]) == 2


@pytest.mark.slow
def test_fsdp2_checkpoint_of_two_processes_resumes_in_one(tmp_path: Path) -> None:
    """Checkpoints hold full (unsharded) weights and optimizer state, gathered from the FSDP2
    shards: a run saved by 2 processes resumes in 1 (another GPU count) with the same weights."""
    data = _data(tmp_path / "data", n_train=24)
    run = tmp_path / "run"
    sets = [*SETS[:-2], "data.noise_prob=0.0", "train.max_updates=2", "train.distributed=fsdp2"]
    assert _run(data, run, sets, nproc=2) == [0, 0]
    saved, _ = load_model_dir(run / "checkpoints" / "step_2")
    shutil.rmtree(run / "model")
    assert _run(data, run, [*sets[:-2], "train.max_updates=2"]) == [0]  # resumes, no update left
    resumed, _ = load_model_dir(run / "model")
    assert saved.keys() == resumed.keys()
    for k in saved:
        torch.testing.assert_close(saved[k], resumed[k], atol=0, rtol=0)
    assert _run(data, run, [*sets[:-2], "train.max_updates=3"]) == [0]  # one more update
    state = load_pt(run / "checkpoints" / "step_3" / TRAINER_STATE)
    assert state["world_size"] == 1 and state["update"] == 3
    assert sorted(_losses(run)) == [1, 2, 3]
