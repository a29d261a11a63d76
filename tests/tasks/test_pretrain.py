"""``avsr pretrain``: stage 0 -> XLS-R-format encoder -> AV pretraining end to end, the
dry run, and the real AV model under the torchrun loop (2 gloo processes == 1 process,
SIGKILL + resume == uninterrupted)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from avsr.checkpoint import read_model_config
from avsr.cli import main as cli_main
from avsr.config import load_config
from avsr.errors import UserError
from avsr.train import latest_checkpoint, read_metrics
from tasks.pretrain_config import PretrainConfig
from tasks.pretrain_run import check_loss_weights
from tests.helpers import REPO
from tests.helpers.forked import run_ranks

TINY = REPO / "configs" / "pretrain_tiny.yaml"
STAGE0 = REPO / "configs" / "stage0_tiny.yaml"

FAST = [
    "model.visual.widths=[4,8,8,16]",
    "model.visual.stem_channels=4",
    "data.max_frames_per_batch=60",
    "data.max_batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
    "valid_max_batches=2",
]


def _data(root: Path, n_train: int = 12) -> Path:
    from avsr.data import make_synthetic_av_data

    make_synthetic_av_data(
        root, n_clips=n_train, split="train", min_frames=10, max_frames=25, seed=3
    )
    make_synthetic_av_data(
        root, n_clips=4, split="valid", min_frames=10, max_frames=25, seed=4, noise=False
    )
    return root


def _sets(items: list[str]) -> list[str]:
    out: list[str] = []
    for s in items:
        out += ["--set", s]
    return out


@pytest.mark.slow
def test_stage0_then_av_pretraining_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from avsr.models.av.io import load_av_encoder
    from avsr.models.encoders import load_encoder

    data = _data(tmp_path / "data")
    s0 = tmp_path / "stage0"
    args = [
        "pretrain",
        "--config",
        str(STAGE0),
        "--data",
        str(data),
        "--labels",
        str(data),
        "--out",
        str(s0),
    ]
    assert cli_main([*args, *_sets([*FAST, "train.max_updates=3", "train.valid_every=3"])]) == 0
    enc = load_encoder(s0 / "encoder")  # an XLS-R-format encoder
    assert enc.config.arch == "tiny"
    assert read_model_config(s0 / "model")["av"]["modalities"] == ["audio"]
    valid = read_metrics(s0 / "metrics.jsonl", "valid")
    assert set(valid[3]) >= {"loss_masked", "acc_masked", "acc_unmasked"}
    # a rerun is a no-op
    capsys.readouterr()
    assert cli_main([*args, *_sets(FAST)]) == 0
    assert "already trained" in capsys.readouterr().out

    av = tmp_path / "av"
    args = ["pretrain", "--config", str(TINY), "--data", str(data), "--labels", str(data)]
    args += ["--init", str(s0 / "encoder"), "--out", str(av)]
    assert cli_main([*args, *_sets([*FAST, "train.max_updates=3", "train.save_every=2"])]) == 0
    model = load_av_encoder(av / "model")
    assert model.visual is not None and model.frame_rate == 50
    # the XLS-R weights came from stage 0 (the CNN is trained further, but started there)
    assert (av / "checkpoints" / "step_2").is_dir()
    assert read_model_config(av / "checkpoints" / "last")["kind"] == "av"
    load_av_encoder(av / "checkpoints" / "last")  # every checkpoint is an AV model dir
    train = read_metrics(av / "metrics.jsonl")
    assert sorted(train) == [1, 2, 3] and all("acc_masked" in r for r in train.values())


def test_dry_run_prints_fsdp2_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["pretrain", "--config", str(TINY), "--dry-run", "--gpus", "4"]) == 0
    out = capsys.readouterr().out
    assert "parameters:" in out and "FSDP2 over 4 GPUs" in out and "GiB" in out


@pytest.mark.slow
def test_dry_run_2b(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli_main(["pretrain", "--config", str(REPO / "configs" / "pretrain_2b.yaml"), "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    params = float(out.split("parameters:")[1].split("M")[0])
    assert 2170 < params < 2190  # 2159.26 M XLS-R 2B + ResNet-18 lip encoder + fusion + head
    assert "FSDP2 over 8 GPUs" in out


# --------------------------------------------------------------------------- torchrun loop


def _pretrain(data: str, out: str, sets: list[str], kill_at: int) -> None:
    """``tasks.pretrain_run.run`` on the tiny config; SIGKILL at training forward ``kill_at``."""
    from avsr.models.av.model import AVPretrainModel
    from tasks.pretrain import load_pretrain_config
    from tasks.pretrain_run import run

    if kill_at:
        original = AVPretrainModel.forward
        calls = {"n": 0}

        def forward(self, batch, **kw):  # type: ignore[no-untyped-def]
            if self.training:
                calls["n"] += 1
                if calls["n"] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(self, batch, **kw)

        AVPretrainModel.forward = forward  # type: ignore[method-assign]
    cfg = load_pretrain_config(TINY, sets)
    run(cfg, data=Path(data), labels=Path(data), out=Path(out), init=None)


def _run(
    data: Path, out: Path, sets: list[str], nproc: int = 1, kill_at: int = 0
) -> list[int | None]:
    return run_ranks(_pretrain, str(data), str(out), sets, kill_at, nproc=nproc, timeout=300)


def _losses(out: Path) -> dict[int, float]:
    return {u: r["loss"] for u, r in read_metrics(out / "metrics.jsonl").items()}


@pytest.mark.slow
def test_av_model_two_processes_equal_one_and_exact_resume(tmp_path: Path) -> None:
    """The real tiny AV model (lip encoder BatchNorm frozen: under DDP its batch statistics
    would be per process), masks and modality dropout seeded per clip and update:
    2 gloo processes x 1 micro-batch (DDP and FSDP2) == 1 process x 2 micro-batches over 5 updates;
    a run SIGKILLed after its update-2 checkpoint resumes to the same losses."""
    data = _data(tmp_path / "data", n_train=24)
    sets = [
        *FAST,
        "model.visual.freeze_bn=true",
        "train.max_updates=5",
        "train.save_every=2",
        "valid_split=null",
    ]
    sets += ["data.noise_prob=0.0"]
    assert _run(data, tmp_path / "one", [*sets, "train.grad_accum=2"]) == [0]
    assert _run(data, tmp_path / "ddp", sets, nproc=2) == [0, 0]
    assert _run(data, tmp_path / "fsdp", [*sets, "train.distributed=fsdp2"], nproc=2) == [0, 0]
    one, ddp, fsdp = (_losses(tmp_path / n) for n in ("one", "ddp", "fsdp"))
    assert sorted(one) == [1, 2, 3, 4, 5]
    for u in one:
        assert abs(one[u] - ddp[u]) < 1e-5, (u, one[u], ddp[u])
        assert abs(one[u] - fsdp[u]) < 1e-5, (u, one[u], fsdp[u])
    assert read_model_config(tmp_path / "fsdp" / "model")["kind"] == "av"
    # kill in update 4 (forward 7 of the 2-micro-batch run), after checkpoint step_2
    kill = tmp_path / "kill"
    assert _run(data, kill, [*sets, "train.grad_accum=2"], kill_at=7) == [-signal.SIGKILL]
    assert latest_checkpoint(kill / "checkpoints").name == "step_2"
    assert _run(data, kill, [*sets, "train.grad_accum=2"]) == [0]
    resumed = _losses(kill)
    for u in (3, 4, 5):
        assert resumed[u] == pytest.approx(one[u], abs=1e-6), u


def test_negative_loss_weight_is_refused() -> None:
    cfg = load_config(PretrainConfig, TINY)
    check_loss_weights(cfg)  # the shipped config is fine
    cfg = load_config(PretrainConfig, TINY, ["model.loss.lip_regression_weight=-1"])
    with pytest.raises(UserError, match=r"model\.loss\.lip_regression_weight is -1"):
        check_loss_weights(cfg)


def test_consistency_switch_without_its_weight_is_refused() -> None:
    for switch in ("consistency_all_blocks", "consistency_frozen_teacher", "consistency_instance_norm"):
        cfg = load_config(PretrainConfig, TINY, [f"model.loss.{switch}=true"])
        with pytest.raises(UserError, match=rf"model\.loss\.{switch} is on but model\.loss\.consistency_weight is 0"):
            check_loss_weights(cfg)
        check_loss_weights(load_config(PretrainConfig, TINY, [f"model.loss.{switch}=true", "model.loss.consistency_weight=2"]))
