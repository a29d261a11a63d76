"""The evaluation grid with a real FinetunedModel loaded from its directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avsr.cli import main
from avsr.data import make_synthetic_av_data
from avsr.evaluation.results import EvalResults
from avsr.metrics import ALL, wer
from tests.helpers.tiny_models import make_tiny_finetuned

pytestmark = pytest.mark.slow  # a real model: ~20 s of CPU


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_finetuned_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evalmodel")
    manifest = make_synthetic_av_data(
        root / "data", n_clips=5, split="test", langs=("en", "el"), min_frames=10, max_frames=25
    )
    return tiny_finetuned_dir, manifest


def _run(model: Path, manifest: Path, out: Path, *extra: str) -> int:
    """``avsr evaluate ...`` in this process (the same code path as the command)."""
    argv = [
        "evaluate",
        "--model", str(model), "--manifest", str(manifest),
        "--noise-dir", str(manifest.parent / "noise"),
        "--snr", "clean,-5,5", "--noise", "babble,speech", "--modality", "a,v,av",
        "--seed", "0", "--batch-size", "3", "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip
    return main(argv)


def test_real_model_evaluation_is_reproducible(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, manifest = setup
    assert _run(model, manifest, tmp_path / "e1") == 0
    out = capsys.readouterr().out
    assert _run(model, manifest, tmp_path / "e2", "--no-plots") == 0
    assert (tmp_path / "e1" / "results.json").read_bytes() == (
        tmp_path / "e2" / "results.json"
    ).read_bytes()
    assert "WER  a: clean" in out and "signature" in out
    res = EvalResults.load(tmp_path / "e1" / "results.json")
    assert res.task == "avsr" and res.languages == ["el", "en"]
    assert (
        len(res.cells) == 5 * 3 * 3
    )  # (clean + 2 noises x 2 SNRs) x 3 modalities x (all + 2 langs)
    # the model's hypotheses are what is scored; A and AV decoding differ (the video path is live)
    for cond in ("clean", "babble_-5dB"):
        a = (tmp_path / "e1" / "hyps" / f"{cond}.a.tsv").read_text().splitlines()[1:]
        av = (tmp_path / "e1" / "hyps" / f"{cond}.av.tsv").read_text().splitlines()[1:]
        assert a != av
        rows = [ln.split("\t") for ln in a]
        snr = None if cond == "clean" else -5.0
        noise = "clean" if cond == "clean" else "babble"
        assert res.value(noise, snr, "a", ALL) == pytest.approx(
            wer([r[2] for r in rows], [r[3] for r in rows])
        )
    assert (tmp_path / "e1" / "wer_vs_snr.png").is_file() and (
        tmp_path / "e1" / "results.md"
    ).is_file()
    assert json.loads((tmp_path / "e1" / "results.json").read_text())["model"] == str(model)


def test_real_model_rejects_bad_input(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, manifest = setup
    assert _run(model, manifest, tmp_path / "e", "--snr", "clean,-5,x") == 2
    err = capsys.readouterr().err
    assert "--snr" in err and "'x'" in err
    empty = tmp_path / "noise"
    (empty / "babble").mkdir(parents=True)
    assert (
        _run(model, manifest, tmp_path / "e", "--noise-dir", str(empty), "--noise", "babble") == 2
    )
    err = capsys.readouterr().err
    assert "'babble'" in err and str(empty / "babble") in err


def test_real_translation_model_is_scored_with_bleu(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    import sacrebleu

    _, manifest = setup
    model = make_tiny_finetuned(tmp_path / "st", task="avst", head="s2s")
    refs = [f"the {w} is here." for w in ("cat", "dog", "bird", "fish", "cow")]
    labels = tmp_path / "test.en"
    labels.write_text("".join(f"{r}\n" for r in refs))
    assert (
        _run(
            model,
            manifest,
            tmp_path / "e",
            "--labels",
            str(labels),
            "--modality",
            "av",
            "--snr",
            "clean,0",
            "--noise",
            "music",
            "--beam",
            "2",
        )
        == 0
    )
    res = EvalResults.load(tmp_path / "e" / "results.json")
    assert res.task == "avst" and "bleu" in res.signatures
    rows = [
        ln.split("\t")
        for ln in (tmp_path / "e" / "hyps" / "music_0dB.av.tsv").read_text().splitlines()[1:]
    ]
    assert [r[2] for r in rows] == refs
    assert res.value("music", 0.0, "av") == pytest.approx(
        sacrebleu.corpus_bleu([r[3] for r in rows], [refs]).score
    )
    assert (tmp_path / "e" / "bleu_vs_snr.png").is_file()
