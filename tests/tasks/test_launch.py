"""`avsr launch` through submitit's local executor: shards as jobs, then the merge."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pytest

from avsr.cli import main as avsr_main
from preprocessing.clip import PreprocessConfig, read_input
from preprocessing.pipeline import output_paths, run
from tasks.launch import _executor as launch_executor
from tasks.launch import add_arguments
from tests.helpers.preprocess_shards import assert_same_outputs, write_corpus


@pytest.fixture(autouse=True)
def _quiet_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("AVSR_NO_PROGRESS", "1")


def _launch(stage: str, shards: int, logs: Path, args: list[str], *extra: str) -> int:
    cmd = ["launch", stage, "--shards", str(shards), "--executor", "local"]
    return avsr_main([*cmd, "--log-dir", str(logs), "--slurm-time", "5", *extra, "--", *args])


def test_four_local_shards_equal_one_run_and_a_killed_shard_reruns_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tsv = write_corpus(tmp_path / "raw")
    ref = tmp_path / "ref"
    run(read_input(tsv), ref, PreprocessConfig(), show_progress=False)
    out = tmp_path / "out"
    args = ["--input", str(tsv), "--out", str(out), "--workers", "1"]
    assert _launch("preprocess", 4, tmp_path / "logs", args) == 0
    assert_same_outputs(ref, out)

    # shard 0 (clips de1, en2) killed while on en2: no done marker, a torn report line
    (out / "shards" / "done.0-of-4.json").unlink()
    report = out / "shards" / "report.0-of-4.jsonl"
    report.write_text(report.read_text().splitlines()[0] + "\n" + '{"id": "en2", "st')
    for path in output_paths(out, "en2"):
        path.unlink()
    capsys.readouterr()
    assert avsr_main(["preprocess", *args, "--merge-shards", "4"]) == 2
    err = capsys.readouterr().err
    assert "shard 0/4: not finished" in err and "shard 1/4" not in err

    others = {k: (out / "shards" / f"report.{k}-of-4.jsonl").read_bytes() for k in (1, 2, 3)}
    assert _launch("preprocess", 4, tmp_path / "logs2", args, "--only", "0") == 0
    assert len(list((tmp_path / "logs2").glob("[0-9]*"))) == 1  # one job's folder
    assert {k: (out / "shards" / f"report.{k}-of-4.jsonl").read_bytes() for k in others} == others
    assert_same_outputs(ref, out)


def test_launch_features_shards(tmp_path: Path) -> None:
    tsv = write_corpus(tmp_path / "raw")
    data = tmp_path / "data"
    run(read_input(tsv)[:3], data, PreprocessConfig(), show_progress=False)
    feats = tmp_path / "feats"
    args = ["--manifest", str(data / "test.tsv"), "--encoder", "mfcc", "--out", str(feats)]
    assert _launch("features", 2, tmp_path / "logs", [*args, "--device", "cpu"]) == 0
    rows = [json.loads((feats / f"test_{r}_2.json").read_text())["rows"] for r in range(2)]
    assert sum(rows) == 2  # de1, de2 (de3 is in train)


def test_launch_refuses_its_own_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--input", str(tmp_path), "--out", str(tmp_path / "out"), "--shard", "0/2"]
    assert _launch("preprocess", 2, tmp_path / "logs", args) == 2
    assert "'avsr launch' sets them" in capsys.readouterr().err
    assert (
        _launch(
            "features",
            2,
            tmp_path / "logs",
            ["--manifest", "m", "--encoder", "mfcc", "--out", "o"],
            "--only",
            "5",
        )
        == 2
    )


def test_failed_jobs_are_named_with_their_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    args = ["--input", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]
    assert _launch("preprocess", 2, tmp_path / "logs", args) == 2
    err = capsys.readouterr().err
    assert "2 of 2 shard(s) failed: 0,1" in err and "--only 0,1" in err
    assert "shard 1/2 (job" in caplog.text and "_log.err" in caplog.text
    assert "no such file or directory" in caplog.text  # the job's own error message
    assert not (tmp_path / "out" / "report.jsonl").exists()  # no merge


def test_slurm_options_become_sbatch_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = ["launch", "features", "--shards", "8", "--log-dir", str(tmp_path / "logs")]
    stage = ["--", "--manifest", "m.tsv", "--encoder", "mfcc", "--out", str(tmp_path / "f")]
    if shutil.which("srun") is None:  # no SLURM here: a clear error, nothing submitted
        assert avsr_main([*launch, *stage]) == 2
        assert "--executor slurm" in capsys.readouterr().err
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [*launch[1:], "--slurm-partition", "gpu", "--slurm-account", "acc", "--slurm-time", "90"]
        + ["--cpus-per-task", "8", "--mem-gb", "32", "--gpus-per-task", "1"]
        + ["--slurm-array-parallelism", "4", *stage]
    )
    slurm = launch_executor(args, tmp_path / "logs", "features")._executor
    text = slurm._make_submission_file_text("python -m job", "uid")
    for line in ("partition=gpu", "account=acc", "time=90", "cpus-per-task=8", "mem=32GB"):
        assert f"#SBATCH --{line}\n" in text
    assert "#SBATCH --gpus-per-node=1\n" in text and "--job-name=avsr-features" in text
    assert slurm.parameters["array_parallelism"] == 4
