"""End to end on the embedded corpus: build (2 languages) -> preprocess -> ``avsr zeroshot``
(audio-only fine-tuning, A and AV on the grid) -> ``avsr evaluate`` (table, plots) ->
``avsr transcribe`` on a raw corpus video and on the carphone clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avsr.cli import main
from avsr.evaluation.results import EvalResults
from avsr.media import media_path
from tests.helpers import REPO

pytestmark = pytest.mark.slow

FINETUNE_SET = [
    "train.max_updates=4",
    "train.valid_every=100",
    "train.save_every=4",
    "train.num_workers=0",
    "train.tensorboard=false",
    "valid.max_clips=4",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_av_init: Path) -> tuple[Path, Path, Path]:
    """The tiny 2-language corpus, preprocessed, and the AV model to fine-tune."""
    root = tmp_path_factory.mktemp("corpus_e2e")
    argv = ["corpus", "build", "--size", "tiny", "--langs", "en", "el", "--out", str(root / "C")]
    assert main(argv) == 0
    argv = ["preprocess", "--input", str(root / "C" / "clips.tsv"), "--out", str(root / "D"),
            "--workers", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return root / "C", root / "D", tiny_av_init


def test_zeroshot_evaluate_and_transcribe_on_the_corpus(
    corpus: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, d, init = corpus
    zs = tmp_path / "Z"
    argv = ["zeroshot", "--init", str(init), "--data", str(d), "--noise-dir", str(c / "noise"),
            "--snr", "clean,0", "--noise", "babble", "--head", "ctc", "--out", str(zs),
            "--finetune-config", str(REPO / "configs" / "finetune_tiny.yaml")]  # fmt: skip
    for s in FINETUNE_SET:
        argv += ["--finetune-set", s]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "AV minus A" in out and "| babble |" in out
    model = zs / "finetune" / "model"
    zres = EvalResults.load(zs / "eval" / "results.json")
    assert zres.modalities == ["a", "av"] and set(zres.languages) == {"el", "en"}
    row = next(ln for ln in out.splitlines() if ln.startswith("| babble |"))
    diff_clean = float(row.split("|")[2])
    assert diff_clean == pytest.approx(
        zres.value("clean", None, "av") - zres.value("clean", None, "a"), abs=0.051
    )
    assert "modality: a" in (model / "config.yaml").read_text()

    ev = tmp_path / "E"
    assert main(["evaluate", "--model", str(zs / "finetune"), "--data", str(d), "--split", "test",
                 "--noise-dir", str(c / "noise"), "--snr", "clean,-5,5", "--noise", "babble,music",
                 "--modality", "a,v,av", "--out", str(ev)]) == 0  # fmt: skip
    res = EvalResults.load(ev / "results.json")
    assert res.model == str(model)  # the run folder's exported model
    assert {c.lang for c in res.cells} == {"all", "el", "en"}
    assert res.cell("clean", None, "a").score.counts.ref_words > 0
    table = (ev / "results.md").read_text()
    assert "## WER (%): babble" in table and "## WER (%): music" in table and "| el | av |" in table
    for png in ("wer_vs_snr.png", "wer_vs_snr_el.png", "wer_vs_snr_en.png"):
        assert (ev / png).read_bytes()[:4] == b"\x89PNG"

    video = sorted((c / "raw" / "test").glob("*.mp4"))[0]
    capsys.readouterr()
    argv = ["transcribe", str(video), str(media_path("carphone_pristine.mp4")), "--model", str(model)]
    assert main([*argv, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [x["modality"] for x in data] == ["av", "v"]
    assert all(x["segments"] and x["segments"][-1]["end"] > 1.0 for x in data)
    assert main(["transcribe", str(video), "--model", str(model)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("[00:00.00 - ") and text.count("\n") == len(data[0]["segments"])
