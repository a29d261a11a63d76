"""``avsr launch``: shards of a stage as one job array, then the merge, or training on
N nodes x G GPUs (submitit: SLURM or local).

Examples::

    avsr launch preprocess --shards 64 --executor slurm --slurm-partition cpu --cpus-per-task 8 \\
        -- --input clips.tsv --out DATA --workers 8
    avsr launch preprocess --shards 64 --only 17 -- --input clips.tsv --out DATA --workers 8
    avsr launch features --shards 8 --executor slurm --gpus-per-task 1 \\
        -- --manifest DATA/train.tsv --encoder xlsr2_300m.pt --layer 18 --out FEATS

Shard ``k`` of ``preprocess`` runs ``avsr preprocess ARGS --shard k/N``; when every
job has ended, ``avsr preprocess ARGS --merge-shards N`` writes the manifests and
``report.jsonl``. Shard ``k`` of ``features`` runs ``avsr features ARGS --rank k
--world N``; afterwards every rank's files must be present. ``--no-wait`` submits
and returns (merge later by hand). Submission files and job logs go to
``--log-dir`` (default ``OUT/shards/logs`` for preprocess, ``OUT/logs`` for features).

Training runs as one job of ``--nodes N`` x ``--gpus-per-node G`` tasks, one process per
GPU (``sbatch --nodes=N --ntasks-per-node=G --gpus-per-node=G``; SLURM's ``srun`` starts the
tasks)::

    avsr launch pretrain --nodes 8 --gpus-per-node 8 --slurm-partition gpu \
        -- --config configs/pretrain_2b.yaml --data DATA --labels LABELS --init xlsr2_2B.pt --out RUN
    avsr launch finetune --nodes 1 --gpus-per-node 8 -- --config ... --out RUN

Each task sets torchrun's variables from SLURM's (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` = the first node, ``MASTER_PORT`` from the job id:
submitit's ``TorchDistributedEnvironment``) and runs ``avsr pretrain|finetune ARGS``, which
joins the process group with ``init_distributed`` (env:// rendezvous, nccl). A job stopped at
its time limit is requeued and resumes from ``RUN/checkpoints/last``. Logs:
``RUN/slurm/{job}/`` (``--log-dir``). ``--executor local`` runs the G tasks on this machine
(on CPU with gloo when it has fewer than G GPUs).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import torch

from avsr.cli import main as avsr_main
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from clustering import features_cli
from clustering.features import find_shards
from preprocessing import cli as preprocess_cli
from tasks import finetune as finetune_cli
from tasks import pretrain as pretrain_cli

log = get_logger("launch")


class AvsrJob(submitit.helpers.Checkpointable):
    """The body of one job: ``avsr ARGV`` in the job's process; raises when it fails.

    Checkpointable: when SLURM signals the time limit, the job is requeued with the
    same ARGV (at most 3 times) and the stage resumes where it stopped.
    """

    def __call__(self, argv: list[str]) -> int:
        rc = avsr_main(argv)
        if rc != 0:
            raise RuntimeError(f"'avsr {shlex.join(argv)}' exited with status {rc}")
        return rc


class AvsrTrainJob(AvsrJob):
    """One task of a training job: torchrun's variables from SLURM's, then ``avsr ARGV``.

    Each task sees all the GPUs of its node (SLURM's default) and trains on
    ``cuda:LOCAL_RANK``; where the cluster binds one GPU per task, on that GPU.
    """

    def __call__(self, argv: list[str]) -> int:
        env = submitit.helpers.TorchDistributedEnvironment()
        env.export(set_cuda_visible_devices=False, overwrite=True)
        if 0 < torch.cuda.device_count() < env.local_world_size:  # one GPU bound per task
            os.environ["LOCAL_RANK"] = "0"
        print(  # the job's log (avsr's logging starts inside avsr_main)
            f"avsr launch: task {env.rank} of {env.world_size} (node-local {env.local_rank}), "
            f"rendezvous {env.master_addr}:{env.master_port}",
            file=sys.stderr,
            flush=True,
        )
        return super().__call__(argv)


TRAIN_STAGES: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "pretrain": pretrain_cli.add_arguments,
    "finetune": finetune_cli.add_arguments,
}


@dataclass(frozen=True)
class _Stage:
    """How to shard and finish one stage."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    """The stage's own argument parser (checks ARGS before anything is submitted)."""
    shard_flags: Callable[[int, int], list[str]]
    """(shard, shards) -> the flags that select one shard."""
    own_flags: tuple[str, ...]
    """Flags the launcher sets itself (refused in ARGS)."""
    default_log_dir: Callable[[argparse.Namespace], Path]
    """Submitit's folder from the stage's parsed ARGS."""
    finish: Callable[[argparse.Namespace, int], int]
    """Run after all jobs ended: merge or check the shards' outputs; returns the exit status."""
    later: Callable[[Sequence[str], int], str]
    """(ARGS, shards) -> what to run once the jobs have ended (said with ``--no-wait``)."""


def _preprocess_stage() -> _Stage:
    def finish(stage_args: argparse.Namespace, n: int) -> int:
        stage_args.merge_shards, stage_args.shard = n, None
        return preprocess_cli.main(stage_args)

    return _Stage(
        add_arguments=preprocess_cli.add_arguments,
        shard_flags=lambda k, n: ["--shard", f"{k}/{n}", "--no-progress"],
        own_flags=("--shard", "--merge-shards"),
        default_log_dir=lambda a: Path(a.out) / "shards" / "logs",
        finish=finish,
        later=lambda rest, n: f"avsr preprocess {shlex.join(rest)} --merge-shards {n}",
    )


def _features_stage() -> _Stage:
    def finish(stage_args: argparse.Namespace, n: int) -> int:
        split = Path(stage_args.manifest).stem
        found = find_shards(stage_args.out, split)  # names missing ranks
        if len(found) != n:
            raise UserError(f"{stage_args.out}: '{split}' has {len(found)} shard(s), expected {n}")
        log.info("%s: all %d feature shard(s) of '%s' present", stage_args.out, n, split)
        return 0

    return _Stage(
        add_arguments=features_cli.add_arguments,
        shard_flags=lambda k, n: ["--rank", str(k), "--world", str(n)],
        own_flags=("--rank", "--world"),
        default_log_dir=lambda a: Path(a.out) / "logs",
        finish=finish,
        later=lambda rest, n: f"nothing to merge: 'avsr kmeans' reads all {n} ranks",
    )


STAGES: dict[str, Callable[[], _Stage]] = {
    "preprocess": _preprocess_stage,
    "features": _features_stage,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the shards of 'avsr preprocess' or 'avsr features' as one job array, or "
        "'avsr pretrain'/'avsr finetune' on N nodes x G GPUs (submitit: SLURM, or local "
        "processes), and wait."
    )
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    kinds = [(n, _add_shard_options) for n in sorted(STAGES)]
    kinds += [(n, _add_train_options) for n in sorted(TRAIN_STAGES)]
    for name, add_own in kinds:
        what = (
            f"shards of 'avsr {name}' as one job array"
            if name in STAGES
            else f"'avsr {name}' as one job of N nodes x G tasks, one per GPU (env:// rendezvous)"
        )
        stage = sub.add_parser(
            name,
            help=what,
            description=f"{what}; ARGS after '--' are the arguments of 'avsr {name}'.",
        )
        add_own(stage)
        _add_launch_options(stage)


def _add_shard_options(parser: argparse.ArgumentParser) -> None:
    """Options of the sharded stages (preprocess, features)."""
    parser.add_argument("--shards", type=int, required=True, metavar="N", help="number of shards")
    parser.add_argument(
        "--only",
        metavar="K[,K...]",
        help="(re)run only these shards, e.g. a killed one; the others must have finished",
    )
    parser.add_argument(
        "--slurm-array-parallelism", type=int, metavar="M", help="at most M jobs running at once"
    )
    parser.add_argument("--gpus-per-task", type=int, metavar="G", help="GPUs per job (features)")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """Options of the training stages (pretrain, finetune)."""
    parser.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes (default 1)")
    parser.add_argument(
        "--gpus-per-node",
        type=int,
        required=True,
        metavar="G",
        help="GPUs per node = training processes per node",
    )


def _add_launch_options(parser: argparse.ArgumentParser) -> None:
    """The launcher's common options (before '--') and the stage's ARGS (after it)."""
    parser.add_argument(
        "--executor",
        choices=("slurm", "local"),
        default="slurm",
        help="slurm: sbatch; local: processes on this machine (default: slurm)",
    )
    parser.add_argument("--no-wait", action="store_true", help="submit and return")
    parser.add_argument("--log-dir", type=Path, help="submitit's folder: job scripts and logs")
    parser.add_argument(
        "--slurm-time",
        type=int,
        default=240,
        metavar="MIN",
        help="time limit per job in minutes, also for local jobs (default 240); "
        "a job stopped at its limit is requeued (3 times at most) and resumes",
    )
    parser.add_argument("--slurm-partition", help="SLURM partition")
    parser.add_argument("--slurm-account", help="SLURM account")
    parser.add_argument("--cpus-per-task", type=int, metavar="C", help="CPU cores per task")
    parser.add_argument("--mem-gb", type=float, help="memory per job (per node) in GB")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="the stage's arguments"
    )


def _stage_args(stage: _Stage, name: str, argv: Sequence[str]) -> argparse.Namespace:
    """Parse (and so check) the stage's ARGS; the launcher's own shard flags are refused."""
    taken = [a for a in argv if a.split("=")[0] in stage.own_flags]
    if taken:
        raise UserError(f"do not pass {', '.join(taken)} after '--': 'avsr launch' sets them")
    parser = argparse.ArgumentParser(prog=f"avsr {name}")
    stage.add_arguments(parser)
    return parser.parse_args(list(argv))


def _shard_list(only: str | None, n: int) -> list[int]:
    """The shards to submit: all of ``0..n-1``, or those of ``--only``."""
    if n < 1:
        raise UserError(f"--shards {n}: need N >= 1")
    if not only:
        return list(range(n))
    try:
        picked = sorted({int(k) for k in only.split(",") if k.strip()})
    except ValueError as exc:
        raise UserError(f"--only {only!r}: expected shard numbers like 3,17") from exc
    bad = [k for k in picked if not 0 <= k < n]
    if bad or not picked:
        raise UserError(f"--only {only!r}: shard numbers must be in 0..{n - 1}")
    return picked


def _executor(args: argparse.Namespace, folder: Path, name: str) -> Any:
    """A submitit executor with the job resources of ``args``."""
    try:
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=args.executor)
    except RuntimeError as exc:  # no srun/sbatch on this machine
        raise UserError(f"--executor {args.executor}: {exc}") from exc
    try:
        executor.update_parameters(
            name=f"avsr-{name}",
            timeout_min=args.slurm_time,
            cpus_per_task=args.cpus_per_task,
            mem_gb=args.mem_gb,
            slurm_partition=args.slurm_partition,
            slurm_account=args.slurm_account,
            slurm_array_parallelism=getattr(args, "slurm_array_parallelism", None),
            **_placement(args),
        )
    except ValueError as exc:  # e.g. --nodes 2 with --executor local
        raise UserError(f"--executor {args.executor}: {exc}") from exc
    return executor


def _placement(args: argparse.Namespace) -> dict[str, Any]:
    """Nodes, tasks and GPUs: one task per shard job, or one task per GPU for training
    (local jobs get GPUs only when this machine has enough; else they train on CPU)."""
    if args.stage not in TRAIN_STAGES:
        return {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": args.gpus_per_task}
    n, g = args.nodes, args.gpus_per_node
    if n < 1 or g < 1:
        raise UserError(f"--nodes {n} --gpus-per-node {g}: need N >= 1 and G >= 1")
    gpus = g if args.executor == "slurm" or torch.cuda.device_count() >= g else 0
    return {"nodes": n, "tasks_per_node": g, "gpus_per_node": gpus}


_AVSR_ERROR = re.compile(r"^avsr [\w-]+: error: ")
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b")


def _failure_reason(job: Any, exc: Exception) -> str:
    """Why a job failed: avsr's error message in its log, else the exception's last line."""
    try:
        log_lines = (job.stderr() or "").splitlines()
    except OSError:
        log_lines = []
    for lines, pattern in ((log_lines, _AVSR_ERROR), (str(exc).splitlines(), _EXCEPTION)):
        found = [ln.strip() for ln in lines if pattern.match(ln.strip())]
        if found:
            return found[-1]
    return type(exc).__name__


def _wait(jobs: Sequence[Any], shards: Sequence[int], n: int) -> list[int]:
    """Wait for every job; returns the shards whose job failed (each logged with its log file)."""
    failed = []
    for k, job in zip(shards, jobs):
        try:
            job.result()
        except Exception as exc:  # a failed, killed or timed-out job: named, with its log
            failed.append(k)
            why = _failure_reason(job, exc)
            log.error(
                "shard %d/%d (job %s) failed: %s; log: %s", k, n, job.job_id, why, job.paths.stderr
            )
    return failed


def _train_main(args: argparse.Namespace, rest: list[str]) -> int:
    """Submit ``avsr pretrain|finetune ARGS`` as one job of nodes x GPUs tasks; wait for it."""
    parser = argparse.ArgumentParser(prog=f"avsr {args.stage}")
    TRAIN_STAGES[args.stage](parser)
    stage_args = parser.parse_args(rest)  # checks ARGS before anything is submitted
    if getattr(stage_args, "dry_run", False) or stage_args.out is None:
        raise UserError(f"'avsr launch {args.stage}' trains: ARGS need --out and no --dry-run")
    folder = (args.log_dir or Path(stage_args.out) / "slurm").resolve()
    executor = _executor(args, folder, args.stage)
    job = executor.submit(AvsrTrainJob(), [args.stage, *rest])
    tasks = args.nodes * args.gpus_per_node
    log.info(
        "submitted %s job %s (%s): %d node(s) x %d task(s); logs in %s",
        args.stage, job.job_id, args.executor, args.nodes, args.gpus_per_node, folder,
    )  # fmt: skip
    if args.no_wait:
        log.info("outputs: %s (resubmitting the same command resumes it)", stage_args.out)
        return 0
    try:
        job.results()
    except Exception as exc:  # a failed, killed or timed-out task: named, with its log
        raise UserError(
            f"{args.stage} job {job.job_id} ({tasks} tasks) failed: {_failure_reason(job, exc)}; "
            f"log: {job.paths.stderr}; the same command resumes from "
            f"{Path(stage_args.out) / 'checkpoints' / 'last'}"
        ) from exc
    log.info("%s job %s done: %s", args.stage, job.job_id, stage_args.out)
    return 0


def main(args: argparse.Namespace) -> int:
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if args.stage in TRAIN_STAGES:
        return _train_main(args, list(rest))
    stage = STAGES[args.stage]()
    stage_args = _stage_args(stage, args.stage, rest)
    shards = _shard_list(args.only, args.shards)
    folder = (args.log_dir or stage.default_log_dir(stage_args)).resolve()
    executor = _executor(args, folder, args.stage)
    argvs = [[args.stage, *rest, *stage.shard_flags(k, args.shards)] for k in shards]
    jobs = executor.map_array(AvsrJob(), argvs)
    log.info(
        "submitted %d %s job(s) (%s): %s; logs in %s",
        len(jobs),
        args.stage,
        args.executor,
        ", ".join(j.job_id for j in jobs),
        folder,
    )
    if args.no_wait:
        log.info("when the jobs have ended: %s", stage.later(rest, args.shards))
        return 0
    failed = _wait(jobs, shards, args.shards)
    if failed:
        again = ",".join(str(k) for k in failed)
        raise UserError(
            f"{len(failed)} of {len(jobs)} shard(s) failed: {again}; rerun them alone with "
            f"'avsr launch {args.stage} --shards {args.shards} --only {again} ...'"
        )
    return stage.finish(stage_args, args.shards)
