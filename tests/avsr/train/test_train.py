"""Training loop: global normalisation across processes, exact resume after SIGKILL,
NaN guard, checkpoints (keep-last-K, best, atomicity), freezing, LR schedule."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest
import torch

from avsr.checkpoint import load_model_dir
from avsr.errors import UserError
from avsr.train import (
    DistInfo,
    OptimConfig,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    WarmupPolyDecay,
    latest_checkpoint,
    read_metrics,
)
from tests.helpers import REPO, train_toy
from tests.helpers.forked import run_ranks
from tests.helpers.train_toy import ToyData, ToyModel, make_loader


def _toy_main(args: list[str], env: dict[str, str]) -> int:
    os.environ.update(env)
    return train_toy.main(args)


def _run(
    out: Path, *args: str, nproc: int = 1, env: dict[str, str] | None = None
) -> list[int | None]:
    """Run tests/helpers/train_toy.py's main in ``nproc`` forked gloo processes."""
    return run_ranks(_toy_main, ["--out", str(out), *args], env or {}, nproc=nproc, timeout=120)


def _losses(out: Path) -> dict[int, float]:
    return {u: r["loss"] for u, r in read_metrics(out / "metrics.jsonl").items()}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    sd, _ = load_model_dir(out / "checkpoints" / "last")
    return sd


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path: Path) -> None:
    """1 process x 2 micro-batches == 2 gloo processes x 1 micro-batch (rank r takes batch r of
    each pair), over 5 updates; with the first layer frozen for 2 updates (DDP is re-wrapped).
    The toy has no BatchNorm (under DDP BatchNorm statistics are per process)."""
    common = ["--max-updates", "5", "--freeze", "net.0.*", "--freeze-updates", "2"]
    assert _run(tmp_path / "one", *common, "--grad-accum", "2") == [0]
    assert _run(tmp_path / "ddp", *common, nproc=2) == [0, 0]
    assert _run(tmp_path / "fsdp", *common, "--distributed", "fsdp2", nproc=2) == [0, 0]
    one, ddp, fsdp = (_losses(tmp_path / n) for n in ("one", "ddp", "fsdp"))
    assert sorted(one) == [1, 2, 3, 4, 5]
    for u in one:
        assert abs(one[u] - ddp[u]) < 1e-5, (u, one[u], ddp[u])
        assert abs(one[u] - fsdp[u]) < 1e-5, (u, one[u], fsdp[u])
    assert one[5] < one[1]
    w1, w2, w3 = (_weights(tmp_path / n) for n in ("one", "ddp", "fsdp"))
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0)
        torch.testing.assert_close(w1[k], w3[k], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_sigkill_and_resume_gives_same_losses(tmp_path: Path) -> None:
    """Dropout (torch RNG), a worker process and an epoch boundary are all in play."""
    args = ["--max-updates", "16", "--save-every", "4", "--dropout", "0.2", "--workers", "1"]
    assert _run(tmp_path / "ref", *args) == [0]
    assert _run(tmp_path / "run", *args, env={"TOY_KILL_AT_FORWARD": "11"}) == [-9]
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_8"
    assert _run(tmp_path / "run", *args, env={"TOY_KILL_AT_FORWARD": "0"}) == [0]  # resume=auto
    ref, run = _losses(tmp_path / "ref"), _losses(tmp_path / "run")
    assert sorted(run) == list(range(1, 17))
    for u in range(9, 17):
        assert ref[u] == pytest.approx(run[u], abs=1e-7), u
    wr, wk = _weights(tmp_path / "ref"), _weights(tmp_path / "run")
    for k in wr:
        torch.testing.assert_close(wr[k], wk[k], atol=1e-7, rtol=0)


@pytest.mark.slow
def test_av_pipeline_two_processes_and_resume(tmp_path: Path) -> None:
    """The real AV loader (worker processes, crops, noise, units) feeding the loop: 2 gloo
    processes == 1 process with 2 micro-batches, and a SIGKILLed run resumes exactly."""
    from avsr.data import make_synthetic_av_data

    data = tmp_path / "data"
    make_synthetic_av_data(data, n_clips=16, min_frames=10, max_frames=30, seed=1)
    common = ["--av-data", str(data), "--workers", "1", "--max-updates", "6", "--save-every", "2"]
    assert _run(tmp_path / "one", *common, "--grad-accum", "2") == [0]
    assert _run(tmp_path / "ddp", *common, nproc=2) == [0, 0]
    one, ddp = _losses(tmp_path / "one"), _losses(tmp_path / "ddp")
    assert sorted(one) == list(range(1, 7))
    for u in one:
        assert abs(one[u] - ddp[u]) < 1e-5, (u, one[u], ddp[u])
    # kill during update 4 of the single-process run (after step_2), resume
    assert _run(
        tmp_path / "kill", *common, "--grad-accum", "2", env={"TOY_KILL_AT_FORWARD": "7"}
    ) != [0]
    assert _run(
        tmp_path / "kill", *common, "--grad-accum", "2", env={"TOY_KILL_AT_FORWARD": "0"}
    ) == [0]
    killed = _losses(tmp_path / "kill")
    for u in range(3, 7):
        assert killed[u] == pytest.approx(one[u], abs=1e-7), u


def _trainer(
    tmp_path: Path,
    model: ToyModel | None = None,
    optim: OptimConfig | None = None,
    *,
    cfg: TrainConfig | None = None,
    trainer: dict[str, object] | None = None,
    **kw: object,
) -> Trainer:
    """A Trainer of the toy; ``cfg`` (default: 6 updates, seed 3, updated with ``kw``) and the
    Trainer's other keywords ``trainer``."""
    cfg = cfg or TrainConfig(**{"max_updates": 6, "log_every": 1, "tensorboard": False, "seed": 3, **kw})  # type: ignore[arg-type]
    return Trainer(
        model or ToyModel(),
        make_loader(ToyData()),
        cfg=cfg,
        optim=optim or OptimConfig(lr=0.05),
        out_dir=tmp_path,
        dist=DistInfo(),
        **(trainer or {}),  # type: ignore[arg-type]
    )


def test_nan_guard(tmp_path: Path) -> None:
    class Flaky(ToyModel):
        """NaN on the 3rd and 4th forward calls only."""

        def forward(self, batch):  # type: ignore[no-untyped-def]
            out = super().forward(batch)
            if self.forward_calls in (3, 4):
                out.loss = out.loss * float("nan")
            return out

    model = Flaky()
    t = _trainer(tmp_path / "a", model, nan_max_skips=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = t.fit()
    assert res.nan_skips == 2 and res.updates == 6 and sorted(res.losses) == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    class Broken(ToyModel):
        def forward(self, batch):  # type: ignore[no-untyped-def]
            out = super().forward(batch)
            if self.forward_calls >= 2:
                out.loss = out.loss * float("inf")
            return out

    with pytest.raises(TrainingDiverged, match="nan_max_skips=3"):
        _trainer(tmp_path / "b", Broken(), nan_max_skips=3).fit()


def test_checkpoints_keep_last_best_and_atomicity(tmp_path: Path) -> None:
    values = iter([5.0, 3.0, 4.0, 6.0, 7.0])

    def validate(model: torch.nn.Module) -> dict[str, float]:
        assert not model.training
        return {"wer": next(values)}

    cfg = TrainConfig(max_updates=9, save_every=2, keep_last=2, valid_every=2, best_metric="wer",
                      log_every=3, tensorboard=False)  # fmt: skip
    extra = {"validate_fn": validate, "model_kind": "toy", "model_config": {"dim": 6}}
    res = _trainer(tmp_path, optim=OptimConfig(lr=0.01), cfg=cfg, trainer=extra).fit()
    ck = tmp_path / "checkpoints"
    assert sorted(p.name for p in ck.glob("step_*")) == ["step_8", "step_9"]
    assert (ck / "last").resolve().name == "step_9" and res.last_checkpoint == (
        ck / "step_9"
    ).resolve()
    assert res.best == {"metric": "wer", "value": 3.0, "update": 4, "mode": "min"}
    sd, conf = load_model_dir(ck / "best")
    assert conf["kind"] == "toy" and conf["dim"] == 6 and "net.0.weight" in sd
    state = torch.load(ck / "step_9" / "trainer_state.pt", weights_only=True)
    assert state["update"] == 9 and state["data"]["position"] > 0
    assert (ck / "step_9" / "rng_rank0.pt").is_file()
    valid = read_metrics(tmp_path / "metrics.jsonl", split="valid")
    assert sorted(valid) == [2, 4, 6, 8, 9]
    assert sorted(read_metrics(tmp_path / "metrics.jsonl")) == [3, 6, 9]
    rec = read_metrics(tmp_path / "metrics.jsonl")[9]
    assert {"loss", "lr", "gnorm", "ups", "abs", "n_items"} <= set(rec)
    # a half-written checkpoint (killed save) is ignored and cleaned up by the next save
    (ck / ".step_12.tmp").mkdir()
    (ck / "step_11").mkdir()  # no trainer_state: incomplete
    assert latest_checkpoint(ck).name == "step_9"
    cfg2 = TrainConfig(max_updates=10, save_every=2, keep_last=2, tensorboard=False)
    res2 = _trainer(tmp_path, optim=OptimConfig(lr=0.01), cfg=cfg2).fit()
    assert res2.resumed_from == (ck / "step_9").resolve() and sorted(res2.losses) == [10]
    assert not (ck / ".step_12.tmp").exists() and latest_checkpoint(ck).name == "step_10"


def test_freeze_for_first_updates(tmp_path: Path) -> None:
    model = ToyModel()
    w0 = model.net[0].weight.detach().clone()
    t = _trainer(tmp_path, model, max_updates=3, freeze=["net.0.*"], freeze_updates=3)
    t.fit()
    assert torch.equal(model.net[0].weight, w0)
    t2 = _trainer(tmp_path, model, max_updates=5, freeze=["net.0.*"], freeze_updates=3)
    assert t2.resumed_from is not None
    t2.fit()
    assert not torch.equal(model.net[0].weight, w0)
    with pytest.raises(UserError, match="matches no parameter"):
        _trainer(tmp_path / "x", ToyModel(), freeze=["encoder.*"])


def test_frozen_for_the_whole_run(tmp_path: Path) -> None:
    """``train.frozen`` stays frozen after ``freeze_updates`` and across a resume; the rest trains."""
    model = ToyModel()
    w0, w1 = model.net[0].weight.detach().clone(), model.net[-1].weight.detach().clone()
    _trainer(tmp_path, model, max_updates=3, frozen=["net.0.*"], freeze=["net.0.*"], freeze_updates=1).fit()
    t2 = _trainer(tmp_path, model, max_updates=5, frozen=["net.0.*"], freeze=["net.0.*"], freeze_updates=1)
    assert t2.resumed_from is not None
    t2.fit()
    assert torch.equal(model.net[0].weight, w0) and not model.net[0].weight.requires_grad
    assert not torch.equal(model.net[-1].weight, w1)
    with pytest.raises(UserError, match="train.frozen: pattern"):
        _trainer(tmp_path / "x", ToyModel(), frozen=["encoder.*"])


def test_lr_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    s = WarmupPolyDecay(
        opt, OptimConfig(lr=1.0, warmup_updates=4, end_lr=0.1, power=1.0), max_updates=14
    )
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        s.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert (
        lrs[4] == pytest.approx(1.0)
        and lrs[9] == pytest.approx(0.55)
        and lrs[14] == pytest.approx(0.1)
    )
    s2 = WarmupPolyDecay(opt, OptimConfig(lr=1.0, warmup_updates=4, end_lr=0.1), max_updates=14)
    s2.load_state_dict(s.state_dict())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_lr_scales_per_parameter_group(tmp_path: Path) -> None:
    """optim.lr_scales: first matching glob wins; a zero scale keeps a part fixed; the
    groups survive a resume; a glob that matches nothing is a clear error."""
    model = ToyModel()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim = OptimConfig(lr=0.05, warmup_updates=2, lr_scales={"net.0.weight": 0.0, "net.0.*": 0.5})
    t = _trainer(tmp_path, model, optim, max_updates=3, save_every=3)
    scales = sorted(g["lr_scale"] for g in t.optimizer.param_groups)
    assert scales == [0.0, 0.5, 1.0]
    lrs = {g["lr_scale"]: g["lr"] for g in t.optimizer.param_groups}
    assert lrs[0.5] == pytest.approx(0.5 * lrs[1.0]) and lrs[0.0] == 0.0
    t.fit()
    assert torch.equal(model.net[0].weight, w0["net.0.weight"])  # scale 0: never moves
    assert not torch.equal(model.net[0].bias, w0["net.0.bias"])
    t2 = _trainer(tmp_path, model, optim, max_updates=5)
    assert t2.resumed_from is not None
    lrs2 = {g["lr_scale"]: g["lr"] for g in t2.optimizer.param_groups}
    assert lrs2[0.5] == pytest.approx(0.5 * t2.scheduler.get_last_lr())
    t2.fit()
    assert torch.equal(model.net[0].weight, w0["net.0.weight"])
    with pytest.raises(UserError, match="lr_scales"):
        _trainer(tmp_path / "x", ToyModel(), OptimConfig(lr_scales={"encoder.*": 0.1}))


def test_validation_does_not_move_training_rng(tmp_path: Path) -> None:
    """Dropout draws from the torch RNG; a validate_fn that draws too must not change the curve."""

    def noisy_validate(model: torch.nn.Module) -> dict[str, float]:
        return {"x": float(torch.rand(()))}

    a = _trainer(tmp_path / "a", ToyModel(dropout=0.3), max_updates=4).fit()
    t = _trainer(tmp_path / "b", ToyModel(dropout=0.3), max_updates=4, valid_every=1)
    t.validate_fn = noisy_validate
    b = t.fit()
    assert a.losses == b.losses


def test_loader_benchmark_function(tmp_path: Path) -> None:
    bench = runpy.run_path(str(REPO / "benchmarks" / "train.py"))  # a script, not a module
    loader_batches_per_second = bench["loader_batches_per_second"]
    res = loader_batches_per_second(
        tmp_path, n_batches=2, warmup=1, n_clips=3, num_workers=0, crop_size=44, image_size=48
    )
    assert res["batches_per_s"] > 0 and res["clips_in_dataset"] == 3
