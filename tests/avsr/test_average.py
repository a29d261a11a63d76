"""Checkpoint averaging (``avsr average``): the float64 mean of the chosen checkpoints,
integer buffers from the newest, clear errors for mismatched checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avsr.checkpoint import load_model_dir, save_model_dir
from avsr.checkpoint_average import average_state_dicts, select_best, select_last, write_average
from avsr.cli import main
from avsr.errors import UserError
from avsr.models.finetuned import load_finetuned


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(3, 4, generator=g),
        "half": torch.randn(5, generator=g).to(torch.bfloat16),
        "bn.num_batches_tracked": torch.tensor(seed * 10, dtype=torch.long),
    }


def _run(root: Path, states: dict[int, dict[str, torch.Tensor]], *, kind: str = "model",
         config: dict | None = None, valid: dict[int, dict[str, float]] | None = None) -> Path:
    """A run folder with ``step_N`` checkpoints of ``states`` and optional valid records."""
    for step, sd in states.items():
        d = root / "checkpoints" / f"step_{step}"
        save_model_dir(d, sd, config or {}, kind=kind)
        torch.save({"update": step}, d / "trainer_state.pt")
    lines = [json.dumps({"split": "valid", "update": u, **rec}) for u, rec in (valid or {}).items()]
    (root / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return root


def test_last_three_is_the_float64_mean_with_integers_from_the_last(tmp_path: Path) -> None:
    states = {s: _state(s) for s in (100, 200, 300, 400)}
    run = _run(tmp_path / "run", states)
    chosen = select_last(run, 3)
    assert [c.step for c in chosen] == [200, 300, 400]
    out = write_average(run, chosen, tmp_path / "avg", how="last 3")
    avg, cfg = load_model_dir(out)
    assert cfg["kind"] == "model"
    for key in ("w", "half"):
        manual = sum(states[s][key].double() for s in (200, 300, 400)) / 3
        assert avg[key].dtype == states[400][key].dtype
        torch.testing.assert_close(avg[key], manual.to(avg[key].dtype), rtol=0, atol=0)
    assert int(avg["bn.num_batches_tracked"]) == 4000
    summary = json.loads((out / "average.json").read_text())
    assert [c["step"] for c in summary["checkpoints"]] == [200, 300, 400]


def test_best_by_a_valid_metric(tmp_path: Path) -> None:
    valid = {100: {"loss": 2.0, "bleu": 5.0}, 200: {"loss": 1.0, "bleu": 9.0},
             300: {"loss": 1.5, "bleu": 1.0}, 400: {"loss": 1.2, "bleu": 7.0}}
    run = _run(tmp_path / "run", {s: _state(s) for s in valid}, valid=valid)
    assert [c.step for c in select_best(run, 2, "valid_loss")] == [200, 400]
    assert [c.value for c in select_best(run, 2, "valid_bleu")] == [9.0, 7.0]  # higher is better
    with pytest.raises(UserError, match="not in the run's validation records"):
        select_best(run, 2, "valid_wer")
    with pytest.raises(UserError, match="5 checkpoints asked for, it has 4"):
        select_best(run, 5)


def test_mismatched_checkpoints_name_the_culprit(tmp_path: Path) -> None:
    bad_shape = _state(2)
    bad_shape["w"] = torch.zeros(4, 3)
    run = _run(tmp_path / "run", {1: _state(1), 2: bad_shape})
    with pytest.raises(UserError, match=r"step_2: w is \(4, 3\)"):
        average_state_dicts([p.path for p in select_last(run, 2)])
    missing = _state(3)
    del missing["half"]
    run2 = _run(tmp_path / "run2", {1: _state(1), 3: missing})
    with pytest.raises(UserError, match=r"step_3: its weights do not match .*missing \['half'\]"):
        average_state_dicts([p.path for p in select_last(run2, 2)])
    with pytest.raises(UserError, match="3 checkpoints asked for, it has 2"):
        select_last(run2, 3)
    with pytest.raises(UserError, match="no complete checkpoints"):
        select_last(tmp_path, 1)


def test_cli_averages_a_finetuned_run_into_a_loadable_model(
    tmp_path: Path, tiny_finetuned_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cfg = load_model_dir(tiny_finetuned_dir)
    config = {k: v for k, v in cfg.items() if k not in ("format", "version", "kind")}
    states = {}
    for step in (10, 20, 30):
        g = torch.Generator().manual_seed(step)
        states[step] = {k: v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                        for k, v in base.items()}
    run = _run(tmp_path / "run", states, kind="finetuned", config=config)
    (run / "tokenizer.model").write_bytes((tiny_finetuned_dir / "tokenizer.model").read_bytes())
    assert main(["average", "--run", str(run), "--last", "2", "--out", str(tmp_path / "avg")]) == 0
    assert "step_20, step_30" in capsys.readouterr().out
    model = load_finetuned(tmp_path / "avg")
    got = model.state_dict()
    for key in ("head.proj.weight", "encoder.fusion.proj.bias"):
        manual = (states[20][key].double() + states[30][key].double()) / 2
        torch.testing.assert_close(got[key], manual.float(), rtol=0, atol=0)
    assert main(["average", "--run", str(run), "--last", "1", "--out", str(run / "checkpoints" / "step_30")]) == 2
    assert "would overwrite" in capsys.readouterr().err
