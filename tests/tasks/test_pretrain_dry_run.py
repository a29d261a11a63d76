"""``tasks.pretrain_dry_run`` options used to compare the estimate with a measured CPU step:
one process (no FSDP2 blocks in flight), fp32 or bf16 activations (bf16: plus the autocast
weight copies), a batch split over several clips."""

from __future__ import annotations

import math
import runpy

import pytest

from tasks.pretrain import load_pretrain_config
from tasks.pretrain_dry_run import BF16_ACTIVATION_BYTES, dry_run, dry_run_total
from tests.helpers import REPO

TINY = REPO / "configs" / "pretrain_tiny.yaml"


def test_one_process_fp32_and_clips() -> None:
    bf16 = dry_run(load_pretrain_config(TINY, ["data.max_frames_per_batch=100"]), gpus=4)
    fp32 = dry_run(load_pretrain_config(TINY, ["data.max_frames_per_batch=100", "train.bf16=false"]), gpus=1)
    assert (bf16["precision"], fp32["precision"]) == ("bf16", "fp32")
    assert fp32["bytes"]["activations"] == pytest.approx(4 / BF16_ACTIVATION_BYTES * bf16["bytes"]["activations"])
    assert (fp32["bytes"]["bf16_weight_copies"], bf16["bytes"]["bf16_weight_copies"]) == (0, 2 * bf16["params"])
    assert fp32["bytes"]["unsharded_in_flight"] == 0 < bf16["bytes"]["unsharded_in_flight"]
    assert bf16["bytes"]["unsharded_in_flight"] == bf16["fsdp_in_flight"]
    assert fp32["bytes"]["total_per_gpu"] == fp32["bytes"]["params_grads_adam_sharded"] + fp32["bytes"]["activations"]
    assert dry_run_total(fp32, 1) == pytest.approx(fp32["bytes"]["total_per_gpu"])
    assert dry_run_total(fp32, 4) == pytest.approx(
        16 * fp32["params"] / 4 + fp32["fsdp_in_flight"] + fp32["bytes"]["activations"]
    )
    assert dry_run_total(bf16, 4) == pytest.approx(bf16["bytes"]["total_per_gpu"])
    two = dry_run(load_pretrain_config(TINY, ["data.max_frames_per_batch=100", "train.bf16=false"]), 1, clips=2)
    # 2 clips x 50 frames: nearly the activations of 1 clip x 100 frames
    assert two["bytes"]["activations"] == pytest.approx(fp32["bytes"]["activations"], rel=0.05)


@pytest.mark.parametrize(("stage", "precision"), [("pretrain", "fp32"), ("pretrain", "bf16"), ("finetune", "fp32")])
def test_real_size_benchmark_runs_on_tiny_shapes(stage: str, precision: str) -> None:
    """benchmarks/real_size.py, imported by path as other scripts do: two steps in a fresh
    process, peak memory beside the dry run's estimate (the real sizes run in the benchmark)."""
    bench = runpy.run_path(str(REPO / "benchmarks" / "real_size.py"))  # a script, not a module
    rep = bench["measure"]("tiny", stage, clips=2, seconds=0.4, threads=1, precision=precision)
    assert rep["peak"] > 0 and rep["autograd_saved"] > 0 and rep["ratio"] > 0
    assert len(rep["steps"]) == 2 and all(math.isfinite(s["loss"]) for s in rep["steps"])
    assert rep["estimate"]["precision"] == precision and rep["estimate"]["gpus"] == 1
