"""``avsr finetune`` end to end on tiny synthetic data: training, validation, export, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avsr.cli import main
from avsr.data import make_synthetic_av_data
from avsr.errors import UserError
from avsr.models.finetuned import load_finetuned
from tasks.finetune_data import target_files

TINY = [
    "data.image_size=32",
    "data.crop_size=24",
    "data.max_frames_per_batch=80",
    "train.num_workers=0",
    "train.log_every=1",
    "train.tensorboard=false",
    "train.save_every=2",
    "train.valid_every=100",
    "train.freeze_updates=1",
    "optim.lr=1e-3",
    "optim.warmup_updates=1",
    "optim.decay_updates=4",
    "valid.beam=2",
    "model.decoder.num_layers=1",
    "model.decoder.model_dim=32",
    "model.decoder.ffn_dim=64",
    "model.decoder.num_heads=2",
    "model.decoder.max_len_b=12",
    "tokenizer.vocab_size=40",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_av_init: Path) -> tuple[Path, Path]:
    """Tiny synthetic train / valid data and the AV model to fine-tune."""
    data = tmp_path_factory.mktemp("ft") / "data"
    make_synthetic_av_data(data, n_clips=6, split="train", min_frames=8, max_frames=16, noise=False, seed=1)
    make_synthetic_av_data(data, n_clips=2, split="valid", min_frames=8, max_frames=12, noise=False, seed=2)
    return data, tiny_av_init


def _finetune_argv(data: Path, init: Path, out: Path, *extra: str, head: str = "s2s", modality: str = "av") -> list[str]:
    args = ["finetune", "--task", "avsr", "--head", head, "--modality", modality,
            "--data", str(data), "--init", str(init), "--out", str(out)]  # fmt: skip
    for s in [*TINY, *extra]:
        args += ["--set", s]
    return args


def _finetune(data: Path, init: Path, out: Path, *extra: str, head: str = "s2s", modality: str = "av") -> int:
    return main(_finetune_argv(data, init, out, *extra, head=head, modality=modality))


def _train_losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["split"] == "train":
            out[rec["update"]] = rec["loss"]
    return out


@pytest.mark.slow
def test_ctc_audio_only_finetune_exports_a_model(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, init = setup
    run = tmp_path / "run"
    assert _finetune(data, init, run, "train.max_updates=2", head="ctc", modality="a") == 0
    summary = json.loads((run / "finetune.json").read_text())
    assert summary["updates"] == 2 and summary["best"]["metric"] == "wer"
    valid = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"valid"' in x]
    assert valid and "wer" in valid[-1] and valid[-1]["n_clips"] == 2
    assert {"wer_en", "wer_es"} <= set(valid[-1])  # per language too
    assert (run / "valid_hyps.txt").is_file()
    model = load_finetuned(run / "model")
    assert model.config.modality == "a" and model.config.head == "ctc"
    assert {p.name for p in (run / "model").iterdir()} >= {"model.safetensors", "config.yaml", "tokenizer.model"}
    # checkpoints of the run load too (tokenizer from the run folder)
    assert load_finetuned(run / "checkpoints" / "best").tokenizer.vocab_size == model.tokenizer.vocab_size
    # a rerun of a finished run does nothing
    before = (run / "metrics.jsonl").read_text()
    assert _finetune(data, init, run, "train.max_updates=2", head="ctc", modality="a") == 0
    assert (run / "metrics.jsonl").read_text() == before


def test_init_from_a_finetuned_model_takes_its_encoder(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """--init a fine-tuned model dir: its encoder (here a CTC model's) under a fresh head
    (a seq2seq decoder); with the encoder frozen the weights are exactly the init's."""
    data, init = setup
    first = tmp_path / "ctc"
    assert _finetune(data, init, first, "train.max_updates=2", "train.freeze_updates=0", head="ctc", modality="a") == 0
    second = tmp_path / "s2s"
    assert _finetune(data, first / "model", second, "train.max_updates=2", "train.freeze_updates=5",
                     "model.encoder_overrides={dropout: 0.1}") == 0
    a, b = load_finetuned(first / "model"), load_finetuned(second / "model")
    assert b.config.head == "s2s" and b.ctc_aux is None
    pa, pb = dict(a.encoder.named_parameters()), dict(b.encoder.named_parameters())
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)  # (BatchNorm statistics move)
    assert b.encoder.xlsr.config.dropout == 0.1  # overrides reach the loaded encoder


def test_av_run_distilled_from_its_audio_only_init(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``distill.teacher=init``: the AV CTC run from an audio-only CTC model logs the KL to it
    on noisy training rows; the exported model has no teacher weights; a seq2seq run refuses."""
    data, init = setup
    noise = tmp_path / "noisy"
    make_synthetic_av_data(noise, n_clips=1, split="train", min_frames=8, max_frames=8, noise=True, seed=3)
    first = tmp_path / "a"
    assert _finetune(data, init, first, "train.max_updates=2", "train.freeze_updates=0", head="ctc", modality="a") == 0
    second = tmp_path / "av"
    assert _finetune(data, first / "model", second, "train.max_updates=2", "train.freeze_updates=0",
                     "distill.teacher=init", "distill.weight=0.5", "data.noise_prob=1.0",
                     f"data.noise_dir={noise / 'noise'}", head="ctc") == 0
    train = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert train and all(r["kl"] >= 0.0 and "loss_ctc" in r for r in train)
    a, av = load_finetuned(first / "model"), load_finetuned(second / "model")
    assert set(av.state_dict()) == set(a.state_dict())
    assert _finetune(data, first / "model", tmp_path / "s2s", "distill.teacher=init") == 2
    assert "distillation from a CTC teacher needs --head ctc" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_and_resumed_run_continues_the_same_loss_curve(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL a run after its checkpoint at update 2 (while it computes update 3), rerun the
    same command: it resumes from step_2 and gives the losses of an uninterrupted run."""
    data, init = setup
    straight = tmp_path / "straight"
    assert _finetune(data, init, straight, "train.max_updates=4") == 0
    killed = tmp_path / "killed"
    argv = _finetune_argv(data, init, killed, "train.max_updates=4")
    env = {**os.environ, "AVSR_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "avsr.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if (killed / "checkpoints" / "step_2").is_dir():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "finetune.json").exists()
    assert _finetune(data, init, killed, "train.max_updates=4") == 0  # the same command again
    a, b = _train_losses(straight), _train_losses(killed)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for u in a:
        assert b[u] == pytest.approx(a[u], rel=1e-5, abs=1e-6), (u, a, b)


def test_target_files_layout(tmp_path: Path) -> None:
    d = tmp_path
    (d / "muavic" / "es" / "en").mkdir(parents=True)
    for name in ("muavic/es/en/train.tsv", "muavic/es/en/train.en", "muavic/es/train.tsv", "muavic/es/train.es",
                 "train.tsv", "train.wrd"):
        (d / name).write_text("x\n")
    assert target_files(d, "train", task="avst", pair="es-en").labels == d / "muavic/es/en/train.en"
    assert target_files(d, "train", task="avsr", lang="es").labels == d / "muavic/es/train.es"
    assert target_files(d, "train", task="avsr").labels == d / "train.wrd"
    with pytest.raises(UserError, match="X->En"):
        target_files(d, "train", task="avst", pair="en-es")
    with pytest.raises(UserError, match="not found"):
        target_files(d, "valid", task="avsr")
