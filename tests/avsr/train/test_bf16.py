"""bf16 autocast on CPU (``train.bf16_cpu=true``): PyTorch's CPU autocast applies the same per-op
dtype policy as CUDA's, so the tiny AV pretraining and the tiny fine-tuning (CTC and seq2seq)
exercise the GPU's bf16 path here.

Tolerance: every logged training loss of a 2-update run within 2% (relative) of the fp32
run's. Measured (torch 2.9.1, x86 CPU): pretraining 0.05%, CTC fine-tuning 0.06%, seq2seq
fine-tuning 0.003%; the margin covers other CPUs' bf16 kernels. The default (no
``bf16_cpu``) stays fp32: bit-identical to ``train.bf16=false``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from avsr.cli import main
from avsr.data import make_synthetic_av_data
from avsr.models.av.model import AVPretrainModel
from avsr.models.finetuned import FinetunedModel
from avsr.train import read_metrics
from tests.helpers import REPO
from tests.tasks.test_finetune_cli import TINY as FINETUNE_SETS
from tests.tasks.test_pretrain import FAST as PRETRAIN_SETS

REL_TOL = 0.02
BF16 = ["train.bf16_cpu=true"]


def _sets(items: list[str]) -> list[str]:
    return [arg for s in items for arg in ("--set", s)]


def _record_autocast(monkeypatch: pytest.MonkeyPatch, cls: type, seen: list[bool]) -> None:
    """Wrap ``cls.forward`` to record whether CPU autocast (bf16) is on in training forwards."""
    original: Callable[..., Any] = cls.forward

    def forward(self: torch.nn.Module, *args: Any, **kw: Any) -> Any:
        if self.training:
            seen.append(
                torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
            )
        return original(self, *args, **kw)

    monkeypatch.setattr(cls, "forward", forward)


def _train_losses(argv: list[str], sets: list[str], out: Path) -> dict[int, float]:
    """Run the CLI ``argv --out out --set ...``; its training losses per update."""
    assert main([*argv, "--out", str(out), *_sets(sets)]) == 0
    return {u: r["loss"] for u, r in read_metrics(out / "metrics.jsonl").items()}


def _assert_close(fp32: dict[int, float], bf16: dict[int, float]) -> None:
    assert sorted(fp32) == sorted(bf16) == [1, 2]
    for u in fp32:
        assert torch.isfinite(torch.tensor(bf16[u])), (u, bf16[u])
        assert abs(bf16[u] - fp32[u]) <= REL_TOL * abs(fp32[u]), (u, fp32[u], bf16[u])
    assert bf16 != fp32  # autocast changed the numbers


def test_tiny_pretraining_under_cpu_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    make_synthetic_av_data(data, n_clips=8, split="train", min_frames=10, max_frames=25, seed=3)
    sets = [*PRETRAIN_SETS, "valid_split=null", "data.noise_prob=0.0", "train.max_updates=2"]
    argv = ["pretrain", "--config", str(REPO / "configs" / "pretrain_tiny.yaml")]
    argv += ["--data", str(data), "--labels", str(data)]
    seen: list[bool] = []
    _record_autocast(monkeypatch, AVPretrainModel, seen)
    fp32 = _train_losses(argv, sets, tmp_path / "fp32")
    assert seen and not any(seen)
    # the default on CPU is plain fp32
    assert _train_losses(argv, [*sets, "train.bf16=false"], tmp_path / "off") == fp32
    seen.clear()
    bf16 = _train_losses(argv, [*sets, *BF16], tmp_path / "bf16")
    assert seen and all(seen)
    _assert_close(fp32, bf16)


@pytest.mark.parametrize("head", ["ctc", "s2s"])
def test_tiny_finetuning_under_cpu_bf16(
    head: str, tiny_av_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two updates and a validation (greedy CTC / beam search under autocast)."""
    data = tmp_path / "data"
    make_synthetic_av_data(data, n_clips=6, split="train", min_frames=8, max_frames=16, noise=False, seed=1)
    make_synthetic_av_data(data, n_clips=2, split="valid", min_frames=8, max_frames=12, noise=False, seed=2)
    sets = [*FINETUNE_SETS, "train.max_updates=2", "train.valid_every=2"]
    argv = ["finetune", "--task", "avsr", "--head", head, "--modality", "av"]
    argv += ["--data", str(data), "--init", str(tiny_av_init)]
    seen: list[bool] = []
    _record_autocast(monkeypatch, FinetunedModel, seen)
    fp32 = _train_losses(argv, sets, tmp_path / "fp32")
    bf16 = _train_losses(argv, [*sets, *BF16], tmp_path / "bf16")
    assert seen and all(seen[len(seen) // 2 :]) and not any(seen[: len(seen) // 2])
    _assert_close(fp32, bf16)
    summary = json.loads((tmp_path / "bf16" / "finetune.json").read_text())
    valid = read_metrics(tmp_path / "bf16" / "metrics.jsonl", "valid")
    assert summary["updates"] == 2 and torch.isfinite(torch.tensor(valid[2]["loss"]))
