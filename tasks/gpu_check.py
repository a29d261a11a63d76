"""``avsr env --gpu-check``: every GPU path at small size in one command, a pass/fail table.

The checks, in order (``--list`` prints each one's exact command):

- ``data``: a synthetic AV corpus (16 train + 4 valid clips, units, noise) in ``WORK/data``;
- ``ddp_bf16``: the tiny AV pretraining under torchrun, nccl DDP, bf16 autocast,
  ``train.sync_batchnorm=true`` (the lip encoder's BatchNorm converted), 3 updates + validation;
- ``fsdp2_bf16``: the same with ``train.distributed=fsdp2`` (sharded, full-state checkpoint);
- ``syncbn_kernels``: the lip encoder's SyncBatchNorm through torch's sync function (CUDA
  kernels + an nccl all-gather) against plain BatchNorm: outputs, gradients, running statistics;
- ``finetune_bf16``: CTC fine-tuning of the ``ddp_bf16`` model under DDP + bf16, 3 updates,
  validation WER (greedy decoding);
- ``features_bf16``: the feature dump of the XLS-R 300M shape (random weights) at layer 18, bf16;
- ``kmeans_faiss_gpu``: ``avsr kmeans fit --gpu yes`` on those features (faiss on the GPU);
- ``pretrain_300m_bf16``: 3 AV pretraining updates with the XLS-R 300M-shaped model
  (``configs/pretrain_300m.yaml``, random weights, 200-frame batches), checkpoint included.

With one GPU, torchrun starts one process and ``AVSR_PROCESS_GROUP=1`` makes it join an nccl
group of one, so DDP and FSDP2 really wrap the model (a world of one process otherwise trains
unwrapped). SyncBatchNorm falls back to plain BatchNorm in a group of one: ``syncbn_kernels``
forces its sync function; with two GPUs visible, DDP and FSDP2 run two processes and the
pretraining's SyncBatchNorm synchronises for real.

Every command is ``python -m tasks.gpu_check --probe REPORT -- ARGS``, under torchrun where a
process group is needed: the probe runs ``avsr ARGS`` (or a built-in step named ``@...``) and
writes ``REPORT.rankR.json`` with the process's ``torch.cuda.max_memory_allocated()``. The table
puts the largest value beside ``avsr pretrain --dry-run``'s estimate for the same config.
Logs: ``WORK/logs/CHECK.log``; the table as JSON: ``WORK/gpu_check.json``; a rerun first removes
the outputs of the previous one (finished training runs would otherwise be no-ops).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from avsr.cli import main as avsr_main
from avsr.errors import UserError
from avsr.io import atomic_write_text
from avsr.train.distributed import SINGLE_GROUP_ENV, cleanup_distributed, init_distributed

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_TIMEOUT_S = 300
"""Per-check time limit (the whole check takes a few minutes on one GPU)."""


@dataclass(frozen=True)
class Check:
    """One step of the GPU check."""

    name: str
    """Short name (table row, log and report file names)."""
    what: str
    """What it exercises."""
    argv: list[str]
    """``avsr`` arguments, or a built-in step ``@name`` and its arguments."""
    nproc: int | None = None
    """torchrun processes; None: a plain process (no process group)."""
    estimate: tuple[Path, list[str], int] | None = None
    """(pretrain config, overrides, GPUs) of the dry-run estimate; None: no estimate."""
    needs: tuple[str, ...] = field(default_factory=tuple)
    """Checks whose outputs this one reads (skipped when one of them failed)."""


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def _pretrain_checks(work: Path, nproc: int) -> list[Check]:
    data = str(work / "data")
    tiny = CONFIGS / "pretrain_tiny.yaml"
    common = ["train.max_updates=3", "train.log_every=1", "train.valid_every=3"]
    common += ["train.num_workers=0", "valid_max_batches=2", "train.bf16=true"]
    ddp = [*common, "train.distributed=ddp", "train.sync_batchnorm=true"]
    fsdp = [*common, "train.distributed=fsdp2"]
    big = ["train.max_updates=3", "train.log_every=1", "train.valid_every=3", "valid_max_batches=2"]
    big += ["train.num_workers=1", "data.max_frames_per_batch=200", f"data.noise_dir={data}/noise"]
    args = ["--data", data, "--labels", data]
    return [
        Check("ddp_bf16", "tiny AV pretraining: nccl DDP, bf16 autocast, SyncBatchNorm conversion",
              ["pretrain", "--config", str(tiny), *args, "--out", str(work / "ddp"), *_sets(ddp)],
              nproc, (tiny, ddp, nproc), ("data",)),
        Check("fsdp2_bf16", "tiny AV pretraining: FSDP2 sharding, bf16 autocast, full-state checkpoint",
              ["pretrain", "--config", str(tiny), *args, "--out", str(work / "fsdp2"), *_sets(fsdp)],
              nproc, (tiny, fsdp, nproc), ("data",)),
        Check("pretrain_300m_bf16", "3 AV pretraining updates, XLS-R 300M shape, random weights",
              ["pretrain", "--config", str(CONFIGS / "pretrain_300m.yaml"), *args,
               "--out", str(work / "pretrain_300m"), *_sets(big)],
              1, (CONFIGS / "pretrain_300m.yaml", big, 1), ("data",)),
    ]  # fmt: skip


def plan(work: Path, gpus: int) -> list[Check]:
    """The checks for ``gpus`` visible GPUs (two processes for DDP/FSDP2 when >= 2), in order."""
    nproc = 2 if gpus >= 2 else 1
    data = work / "data"
    ddp, fsdp, big = _pretrain_checks(work, nproc)
    ft = ["train.max_updates=3", "train.freeze_updates=1", "train.log_every=1"]
    ft += ["train.valid_every=3", "train.num_workers=0", "train.bf16=true"]
    feats = ["features", "--manifest", str(data / "train.tsv"), "--encoder", "xlsr_300m"]
    feats += ["--layer", "18", "--dtype", "bf16", "--device", "cuda", "--out", str(work / "feats")]
    km = ["kmeans", "fit", "--feats", str(work / "feats"), "--out", str(work / "km")]
    km += ["--k", "20", "--sample-share", "1.0", "--niter", "10", "--gpu", "yes"]
    return [
        Check("data", "synthetic AV corpus: 16 train + 4 valid clips, units, noise",
              ["@make-data", str(data)]),
        ddp,
        fsdp,
        Check("syncbn_kernels", "lip encoder SyncBatchNorm (CUDA kernels, nccl) == BatchNorm",
              ["@syncbn"], 1),
        Check("finetune_bf16", "CTC fine-tuning of the ddp_bf16 model: DDP, bf16, greedy WER",
              ["finetune", "--config", str(CONFIGS / "finetune_tiny.yaml"), "--data", str(data),
               "--init", str(work / "ddp" / "model"), "--out", str(work / "finetune"), *_sets(ft)],
              nproc, None, ("ddp_bf16",)),
        Check("features_bf16", "feature dump, XLS-R 300M shape (random weights), layer 18, bf16",
              feats, None, None, ("data",)),
        Check("kmeans_faiss_gpu", "faiss k-means on the GPU (k=20) on the dumped features",
              km, None, None, ("features_bf16",)),
        big,
    ]  # fmt: skip


def command(check: Check, work: Path) -> list[str]:
    """The check's full command line (absolute paths; torchrun as ``python -m torch.distributed.run``)."""
    report = work / "reports" / check.name
    probe = ["-m", "tasks.gpu_check", "--probe", str(report), "--", *check.argv]
    if check.nproc is None:
        return [sys.executable, *probe]
    run = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={check.nproc}"]
    return [sys.executable, *run, *probe]


def check_env() -> dict[str, str]:
    """Variables the checks add to the environment."""
    return {SINGLE_GROUP_ENV: "1", "AVSR_NO_PROGRESS": "1"}


def estimate_bytes(check: Check) -> float | None:
    """``avsr pretrain --dry-run``'s total per GPU for the check's config (meta device)."""
    if check.estimate is None:
        return None
    from tasks.pretrain import load_pretrain_config
    from tasks.pretrain_dry_run import dry_run

    path, sets, gpus = check.estimate
    return float(dry_run(load_pretrain_config(path, sets), gpus)["bytes"]["total_per_gpu"])


def print_plan(checks: list[Check], work: Path) -> None:
    """The checks with their exact commands (shell-quoted)."""
    env = " ".join(f"{k}={v}" for k, v in check_env().items())
    print(f"GPU check: {len(checks)} steps, outputs in {work} (every command runs with {env})")
    for i, c in enumerate(checks, 1):
        print(f"\n{i}. {c.name}: {c.what}")
        if c.needs:
            print(f"   needs: {', '.join(c.needs)}")
        if c.estimate is not None:
            print(f"   dry-run estimate per GPU: {_gib(estimate_bytes(c))}")
        print(f"   {shlex.join(command(c, work))}")


# ---------------------------------------------------------------- running the checks


@dataclass
class Result:
    """What one check gave."""

    name: str
    """The check's name."""
    status: str
    """PASS, FAIL or SKIP."""
    seconds: float = 0.0
    """Wall time of its command."""
    max_alloc: float | None = None
    """Largest ``torch.cuda.max_memory_allocated()`` over its processes (bytes)."""
    estimate: float | None = None
    """Dry-run estimate per GPU (bytes)."""
    note: str = ""
    """Why it failed or was skipped (the last error line of its log)."""


def _last_error(log_file: Path) -> str:
    lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error:" in ln or "FAIL" in ln]
    return (errors or lines or ["(no output)"])[-1][:160]


def _peak_memory(work: Path, name: str) -> float | None:
    values = []
    for report in sorted((work / "reports").glob(f"{name}.rank*.json")):
        value = json.loads(report.read_text()).get("max_memory_allocated")
        if value is not None:
            values.append(float(value))
    return max(values) if values else None


def run_check(check: Check, work: Path, timeout: float) -> Result:
    """Run one check's command (log in ``WORK/logs``); PASS when it exits with 0."""
    (work / "logs").mkdir(parents=True, exist_ok=True)
    log_file = work / "logs" / f"{check.name}.log"
    env = {**os.environ, **check_env()}
    t0 = time.perf_counter()
    with log_file.open("w") as log:
        log.write(f"$ {shlex.join(command(check, work))}\n")
        log.flush()
        try:
            rc = subprocess.run(
                command(check, work), stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            rc = None
    result = Result(check.name, "PASS" if rc == 0 else "FAIL", time.perf_counter() - t0)
    result.max_alloc = _peak_memory(work, check.name)
    if rc is None:
        result.note = f"timed out after {timeout:.0f} s; log: {log_file}"
    elif rc != 0:
        result.note = f"exit {rc}: {_last_error(log_file)}"
    return result


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def print_table(results: list[Result]) -> None:
    """Pass/fail table: time, measured peak memory, dry-run estimate and their ratio."""
    head = f"{'check':<20} {'result':<6} {'time':>8} {'max allocated':>14} {'dry-run est.':>13} {'meas/est':>8}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        ratio = f"{r.max_alloc / r.estimate:.2f}" if r.max_alloc and r.estimate else "-"
        print(
            f"{r.name:<20} {r.status:<6} {r.seconds:7.1f}s {_gib(r.max_alloc):>14} "
            f"{_gib(r.estimate):>13} {ratio:>8}"
        )
        if r.note:
            print(f"{'':<20} {r.note}")


OUTPUTS = ("data", "ddp", "fsdp2", "finetune", "feats", "km", "pretrain_300m", "reports", "logs")
"""What the checks write under WORK (removed before a run: finished runs would be no-ops)."""


def _fresh(work: Path) -> None:
    """Remove the outputs of an earlier check (only the folders it writes)."""
    for name in OUTPUTS:
        shutil.rmtree(work / name, ignore_errors=True)


def run_all(checks: list[Check], work: Path, timeout: float) -> list[Result]:
    """Run the checks in order (a check whose inputs failed is skipped); table in JSON too."""
    _fresh(work)
    results: list[Result] = []
    failed: set[str] = set()
    for check in checks:
        missing = [n for n in check.needs if n in failed]
        if missing:
            results.append(Result(check.name, "SKIP", note=f"needs {', '.join(missing)}"))
            failed.add(check.name)
            continue
        print(f"[gpu-check] {check.name}: {check.what} ...", flush=True)
        result = run_check(check, work, timeout)
        result.estimate = estimate_bytes(check)
        if result.status != "PASS":
            failed.add(check.name)
        print(f"[gpu-check] {check.name}: {result.status} ({result.seconds:.1f} s)", flush=True)
        results.append(result)
    atomic_write_text(work / "gpu_check.json", json.dumps([r.__dict__ for r in results], indent=2) + "\n")
    return results


def gpu_check(work: Path, list_only: bool, timeout: float = DEFAULT_TIMEOUT_S) -> int:
    """``avsr env --gpu-check``: list (``list_only``, or no CUDA device) or run every check."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    work = work.resolve()
    checks = plan(work, gpus)
    if list_only or gpus == 0:
        print_plan(checks, work)
        if gpus == 0:
            print("\nno CUDA device visible: listed what the GPU check runs; nothing was run.")
        print("Run it on a machine with a GPU: bash scripts/gpu_check.sh (= avsr env --gpu-check)")
        return 0
    print(f"GPU check on {gpus} x {torch.cuda.get_device_name(0)}; outputs in {work}")
    results = run_all(checks, work, timeout)
    print_table(results)
    bad = [r.name for r in results if r.status != "PASS"]
    print(f"\n{len(results) - len(bad)} of {len(results)} passed" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


# ---------------------------------------------------------------- inside one check's process


def _make_data(argv: list[str]) -> int:
    """``@make-data DIR``: 16 train clips (20-50 frames, with noise) and 4 valid clips."""
    from avsr.data import make_synthetic_av_data

    root = Path(argv[0])
    make_synthetic_av_data(root, n_clips=16, split="train", min_frames=20, max_frames=50, seed=1)
    make_synthetic_av_data(
        root, n_clips=4, split="valid", min_frames=20, max_frames=50, seed=2, noise=False
    )
    print(f"{root}: synthetic AV corpus written")
    return 0


def _forced_sync_forward(bn: nn.SyncBatchNorm, x: torch.Tensor) -> torch.Tensor:
    """SyncBatchNorm's training forward through its sync function even in a group of one."""
    from torch.nn.modules._functions import SyncBatchNorm as SyncBatchNormFunction

    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked.add_(1)
    return SyncBatchNormFunction.apply(  # type: ignore[no-any-return]
        x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps, bn.momentum,
        dist.group.WORLD, dist.get_world_size(),
    )  # fmt: skip


def _syncbn(_argv: list[str]) -> int:
    """``@syncbn``: the tiny lip encoder with SyncBatchNorm (forced sync path) == BatchNorm:
    outputs, parameter gradients and running statistics after one training forward/backward."""
    from avsr.models.av.visual import LipEncoder, convert_sync_bn

    info = init_distributed()
    if info.device.type != "cuda" or not dist.is_initialized():
        raise UserError("@syncbn needs CUDA and a process group (run it under torchrun)")
    torch.manual_seed(0)
    ref = LipEncoder(stem_channels=8, widths=(8, 16, 32, 64)).to(info.device).train()
    sync = convert_sync_bn(copy.deepcopy(ref))
    for m in sync.modules():
        if isinstance(m, nn.SyncBatchNorm):
            m.forward = _forced_sync_forward.__get__(m)  # type: ignore[method-assign]
    video = torch.randn(2, 1, 6, 44, 44, device=info.device)
    outs = [model(video) for model in (ref, sync)]
    for out in outs:
        out.square().mean().backward()
    pairs = [("output", outs[0], outs[1])]
    pairs += [(f"grad {n}", a.grad, b.grad) for (n, a), b in zip(ref.named_parameters(), sync.parameters())]
    pairs += [(f"buffer {n}", a, b) for (n, a), b in zip(ref.named_buffers(), sync.buffers())]
    diffs = {name: _relative_diff(a, b) for name, a, b in pairs}
    worst = max(diffs, key=lambda k: diffs[k])
    print(f"SyncBatchNorm vs BatchNorm: largest relative difference {diffs[worst]:.2e} ({worst})")
    cleanup_distributed()
    return 0 if diffs[worst] < 1e-3 else 1


def _relative_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    """max |a - b| / max |a| (inf when one is missing)."""
    if a is None or b is None:
        return float("inf")
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


BUILTINS = {"@make-data": _make_data, "@syncbn": _syncbn}


def probe(report: Path, argv: list[str]) -> int:
    """Run ``avsr ARGV`` (or a built-in step) in this process; write ``REPORT.rankR.json``
    with its exit status, time and ``torch.cuda.max_memory_allocated()``."""
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step = BUILTINS.get(argv[0]) if argv else None
    rc = step(argv[1:]) if step is not None else avsr_main(argv)
    report.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "argv": argv,
        "rank": rank,
        "rc": rc,
        "seconds": time.perf_counter() - t0,
        "max_memory_allocated": torch.cuda.max_memory_allocated() if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
    atomic_write_text(Path(f"{report}.rank{rank}.json"), json.dumps(record, indent=2) + "\n")
    return rc


def main(argv: list[str] | None = None) -> int:
    """``python -m tasks.gpu_check --probe REPORT -- ARGS`` (one check's process), or the
    whole check: ``python -m tasks.gpu_check [--list] [--work DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m tasks.gpu_check")
    parser.add_argument("--probe", type=Path, metavar="REPORT", help="run one check's ARGS")
    parser.add_argument("--list", action="store_true", help="list the checks; run nothing")
    parser.add_argument("--work", type=Path, default=Path("gpu_check"), help="outputs folder")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if args.probe is not None:
        return probe(args.probe, rest)
    return gpu_check(args.work, args.list)


if __name__ == "__main__":
    sys.exit(main())
