"""The reduced experiments of CI: every stage of ``avsr experiments frontend``, ``zeroshot``
and ``noise-types`` on the tiny corpus with a few updates (configs/experiments_ci.yaml).

The three experiments share one WORK folder (corpus, preprocessing, stage 0, units and the
identical training runs are made once), as a user would share them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avsr.cli import main as cli_main
from tests.helpers import REPO

ROOT = REPO
CI = str(ROOT / "configs" / "experiments_ci.yaml")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("experiments")
    return root / "work", root


def _run(exp: str, work: Path, out: Path, *extra: str) -> int:
    return cli_main(["experiments", exp, "--config", CI, "--work", str(work), "--out", str(out), *extra])


def _common_checks(report: Path, arms: set[str]) -> dict:
    res = json.loads((report / "results.json").read_text())
    assert res["format"] == "xlavsr-comparison" and set(res["arms"]) == arms
    assert res["seeds"] == [0] and res["grid"]["snr"][0] is None
    langs = set(res["grid"]["languages"])
    assert langs == {"en", "de", "ru"}  # every language of the corpus has its rows
    assert {c["lang"] for c in res["cells"]} == langs | {"all"}
    md = (report / "report.md").read_text()
    assert "## Result (as measured)" in md and "## Per language" in md and "![wer_vs_snr](wer_vs_snr.png)" in md
    assert (report / "wer_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "configs" / "experiments.yaml").is_file()
    cmds = (report / "commands.txt").read_text()
    assert cmds.splitlines()[2].startswith("avsr experiments ")
    for stage in ("avsr corpus build", "avsr preprocess", "avsr pretrain --stage0", "avsr kmeans apply",
                  "avsr finetune", "avsr evaluate"):
        assert stage in cmds, stage
    return res


@pytest.mark.slow
def test_frontend_experiment(folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    work, root = folders
    out = root / "frontend"
    assert _run("frontend", work, out) == 0
    res = _common_checks(out, {"cnn", "fbank"})
    assert set(res["verdict"]) == {"a", "av"} and res["verdict"]["a"]["noisy"]["winner"] in ("cnn", "fbank", None)
    md = (out / "report.md").read_text()
    assert "Under noise, A input:" in md and "Under noise, AV input:" in md
    cmds = (out / "commands.txt").read_text()
    assert "model.audio_frontend=fbank" in cmds and "model.audio_frontend=cnn" in cmds
    assert (out / "configs" / "pretrain.yaml").is_file() and list((out / "configs" / "runs").glob("pretrain-fbank-*"))
    # a rerun skips every finished stage and writes the same numbers
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert _run("frontend", work, out) == 0
    printed = capsys.readouterr().out
    assert " ...\n" not in printed and "done earlier" in printed
    assert json.loads((out / "results.json").read_text())["cells"] == json.loads(before)["cells"]


@pytest.mark.slow
def test_zeroshot_and_noise_types_share_work(folders: tuple[Path, Path]) -> None:
    work, root = folders
    out = root / "zeroshot"
    assert _run("zeroshot", work, out) == 0
    res = _common_checks(out, {"A-finetuned", "AV-finetuned"})
    assert {"zero_shot_noisy", "zero_shot_clean", "a_vs_av_finetuning_noisy"} <= set(res["verdict"])
    runs = {p.name for p in (work / "runs").iterdir()}
    assert len([r for r in runs if r.startswith("pretrain-cnn-s0-")]) == 1  # one shared AV pretraining
    assert any(r.startswith("finetune-cnn-a-s0-") for r in runs)
    out = root / "noise-types"
    assert _run("noise-types", work, out) == 0
    res = _common_checks(out, {"AV-finetuned"})
    assert res["grid"]["noise"] == ["babble", "music"] and set(res["verdict"]) == {"babble", "music"}
    assert {p.name for p in (work / "runs").iterdir()} == runs  # nothing new trained
