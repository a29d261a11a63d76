"""The demo's effect checks from hand-made results: every goal's cells, bounds, plain-words
sentences, the summary section, checks.json and the exit status of a full run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import tasks.demo as demo
from avsr.errors import UserError
from tasks.demo_checks import GOALS, Check, avst_bleu_table, effect_checks, load_demo_results, ratio
from tests.helpers.demo_results import GOOD_A, Key, write_demo


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_every_goal_has_its_cells_and_passes_on_good_results(tmp_path: Path) -> None:
    checks = effect_checks(write_demo(tmp_path))
    assert [c.goal for c in checks] == [1, 2, 2, 2, 3, 3, 3, 4, 5, 6]
    assert all(c.passed for c in checks), [c.sentence for c in checks if not c.passed]
    c = _by_name(checks)
    assert c["zero-shot AV, babble 0 dB"].value == pytest.approx(20.0)
    assert c["zero-shot AV, babble 0 dB"].measured == {"A-only model, A, babble 0 dB": 60.0, "A-only model, AV, babble 0 dB": 40.0}
    assert c["zero-shot AV, clean"].value == pytest.approx(1.0)
    assert c["AV model, babble 0 dB"].value == pytest.approx(25.0 / 60.0)
    assert c["AV model, babble -5 dB"].value == pytest.approx(40.0)
    assert c["AV model, audio alone, clean"].value == pytest.approx(17.0 / 15.0)
    assert c["AVST es->en, AV, clean"].value == pytest.approx(25.0)
    assert c["wall time"].value == 1100.0
    assert "lowers babble 0 dB WER by 20.0 points (60.0 -> 40.0" in c["zero-shot AV, babble 0 dB"].sentence
    assert "0.42x the A-only model's 60.0" in c["AV model, babble 0 dB"].sentence
    assert "18m20s" in c["wall time"].sentence and "2 CPU" in c["wall time"].sentence


@pytest.mark.parametrize(("a", "av", "bleu", "wall", "failing"), [
    ({("clean", None, "a"): 20.1}, {}, {}, 1100.0, {"A-only model, clean"}),
    # a zero-shot gain of 9.9 points at 0 dB fails, 10.0 at -5 dB passes (bounds are inclusive)
    ({("babble", 0.0, "av"): 50.1, ("babble", -5.0, "av"): 80.0}, {}, {}, 1100.0, {"zero-shot AV, babble 0 dB"}),
    ({("clean", None, "av"): 18.1}, {}, {}, 1100.0, {"zero-shot AV, clean"}),
    ({}, {("clean", None, "av"): 15.1}, {}, 1100.0, {"AV model, clean"}),
    ({}, {("babble", 0.0, "av"): 30.1}, {}, 1100.0, {"AV model, babble 0 dB"}),
    ({}, {("babble", 0.0, "av"): 30.0, ("babble", -5.0, "av"): 60.1}, {}, 1100.0, {"AV model, babble -5 dB"}),
    ({}, {("clean", None, "a"): 18.8}, {}, 1100.0, {"AV model, audio alone, clean"}),
    ({}, {}, {("clean", None, "av"): 19.9}, 1100.0, {"AVST es->en, AV, clean"}),
    ({}, {}, {}, 1200.5, {"wall time"}),
])
def test_each_bound_fails_alone(
        tmp_path: Path, a: dict[Key, float], av: dict[Key, float], bleu: dict[Key, float], wall: float, failing: set[str]) -> None:
    checks = effect_checks(write_demo(tmp_path, a=a, av=av, bleu=bleu, wall=wall))
    assert {c.name for c in checks if not c.passed} == failing


def test_sentences_say_which_way_things_moved(tmp_path: Path) -> None:
    worse = {("babble", 0.0, "av"): 63.0, ("clean", None, "av"): 14.0}
    c = _by_name(effect_checks(write_demo(tmp_path, a=worse, av={("clean", None, "av"): 16.0})))
    assert "raises babble 0 dB WER by 3.0 points (60.0 -> 63.0" in c["zero-shot AV, babble 0 dB"].sentence
    assert c["zero-shot AV, babble 0 dB"].value == pytest.approx(-3.0) and not c["zero-shot AV, babble 0 dB"].passed
    assert "lowers clean WER by 1.0 points" in c["zero-shot AV, clean"].sentence
    assert "1.0 points above the A-only model's 15.0" in c["AV model, clean"].sentence and not c["AV model, clean"].passed


def test_ratio_of_a_zero_reference() -> None:
    assert ratio(0.0, 0.0) == 1.0 and ratio(5.0, 0.0) == float("inf") and ratio(5.0, 10.0) == 0.5
    nan_check = Check(goal=1, name="x", measured={}, value=float("nan"), unit="WER", comparison="<=", threshold=20.0, sentence="")
    assert not nan_check.passed


def test_missing_files_and_cells_are_named(tmp_path: Path) -> None:
    out = write_demo(tmp_path / "d")
    (out / "eval" / "finetune_av" / "results.json").unlink()
    with pytest.raises(UserError, match=r"finetune_av/results\.json: missing"):
        effect_checks(out)
    out = write_demo(tmp_path / "e")
    (out / "timings.json").write_text("{}")
    with pytest.raises(UserError, match="timings.json: cannot read total_wall"):
        effect_checks(out)
    out = write_demo(tmp_path / "f")
    res = json.loads((out / "eval" / "finetune_a" / "results.json").read_text())
    res["cells"] = [c for c in res["cells"] if c["snr"] != -5.0]
    (out / "eval" / "finetune_a" / "results.json").write_text(json.dumps(res))
    with pytest.raises(UserError, match=r"m_avsr has no cell babble -5 dB / a"):
        effect_checks(out)


def _args(out: Path, quick: bool) -> argparse.Namespace:
    return argparse.Namespace(out=out, config=None, quick=quick, encoder=None, overrides=[])


@pytest.mark.parametrize(("a", "quick", "code"), [({}, False, 0), (GOOD_A | {("clean", None, "a"): 30.0}, False, 1),
                                                  (GOOD_A | {("clean", None, "a"): 30.0}, True, 0)])
def test_demo_writes_summary_and_checks_and_fails_a_full_run_on_a_failed_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, a: dict[Key, float], quick: bool, code: int) -> None:
    out = write_demo(tmp_path / "demo", a=a)
    monkeypatch.setattr(demo, "build_stages", lambda cfg, out, encoder: [])
    monkeypatch.setattr(demo, "run_stages", lambda stages, out: {"corpus": 10.0, "evaluate": 5.0})
    assert demo.main(_args(out, quick)) == code
    summary = (out / "summary.md").read_text()
    section = summary[summary.index("## Effect checks"):summary.index("## Stage times")]
    assert section.count("- PASS") + section.count("- FAIL") == 10
    assert "Zero-shot AV: adding video to the audio-only model lowers babble -5 dB WER by 20.0 points" in section
    assert "| AV | 25.0 | 15.0 |" in section and "| input | clean | babble 0 dB |" in section
    assert ("reported, not required" in section) == quick
    assert "- total (wall clock" in summary and "### finetune_avst_es" in summary
    saved = json.loads((out / "checks.json").read_text())
    assert [c["name"] for c in saved] == [c.name for c in effect_checks(out)]
    assert {"goal", "measured", "value", "threshold", "comparison", "passed", "sentence"} <= set(saved[0])
    assert all(c["passed"] for c in saved) == (code == 0 and not a)


def test_bleu_table_and_goals(tmp_path: Path) -> None:
    d = load_demo_results(write_demo(tmp_path, pair_src="fr"))
    table = avst_bleu_table(d)
    assert set(table) == {"A", "AV"} and table["A"]["babble 0 dB"] == pytest.approx(5.0)
    assert d.avst_name == "finetune_avst_fr" and GOALS.a_clean_wer == 20.0 and GOALS.wall_seconds == 1200.0


def test_models_section_says_what_each_model_started_from() -> None:
    from avsr.config import load_config
    from tasks.demo import models_section
    from tasks.demo_config import DemoConfig
    from tests.helpers import REPO

    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", ["finetune.a.updates=7", "finetune.av.updates=5"])
    text = models_section(cfg)
    assert "A-only model: CTC on audio alone (video zeroed), from the AV pretrained model, 7 updates" in text
    assert ("AV model: CTC on audio + video with modality dropout, from the audio-only model, "
            "distilled from it on clean audio, 5 updates") in text
    assert "AVST model: seq2seq es-en on audio + video, from the AV model" in text
    assert "A and AV models: CTC prefix beam search that outputs only words of the training transcripts" in text
    greedy = load_config(DemoConfig, REPO / "configs" / "demo.yaml", ["eval.ctc_decoder=greedy"])
    assert "A and AV models: greedy" in models_section(greedy)
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", ["finetune.av.init=pretrained"])
    # from the pretrained model there is no fine-tuned teacher: no distillation, and none said
    assert f"from the AV pretrained model, {cfg.finetune.av.updates} updates" in models_section(cfg)


def test_distilled_reads_the_last_teacher_override() -> None:
    from tasks.demo import distilled

    assert distilled(["data.noise_prob=0.4", "distill.teacher=init"]) == ", distilled from it on clean audio"
    assert distilled(["distill.teacher=init", "distill.teacher=null"]) == ""
    assert distilled(["distill.teacher=/m/a", "distill.weight=0.5"]) == ", distilled from /m/a on clean audio"
    assert distilled([]) == ""
