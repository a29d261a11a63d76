"""A finished demo folder made by hand: the three evaluations' ``results.json`` with chosen
WERs and BLEUs, and ``timings.json`` (no training; for the effect checks and their reports)."""

from __future__ import annotations

import json
from pathlib import Path

from avsr.evaluation.results import Cell, EvalResults
from avsr.metrics import ALL, BleuStats, ErrorCounts, Score

Key = tuple[str, float | None, str]
"""(noise, SNR dB or None for clean, modality)."""

GOOD_A: dict[Key, float] = {
    ("clean", None, "a"): 15.0, ("clean", None, "av"): 16.0,
    ("babble", 0.0, "a"): 60.0, ("babble", 0.0, "av"): 40.0,
    ("babble", -5.0, "a"): 90.0, ("babble", -5.0, "av"): 70.0,
}
"""WERs of the audio-only model that meet every goal (zero-shot gains 20 and 20, clean cost 1)."""
GOOD_AV: dict[Key, float] = {
    ("clean", None, "a"): 17.0, ("clean", None, "av"): 14.0,
    ("babble", 0.0, "a"): 80.0, ("babble", 0.0, "av"): 25.0,
    ("babble", -5.0, "a"): 95.0, ("babble", -5.0, "av"): 50.0,
}
"""WERs of the AV model that meet every goal (0 dB ratio 25/60, -5 dB gain 40, audio ratio 1.13)."""
GOOD_BLEU: dict[Key, float] = {
    ("clean", None, "a"): 22.0, ("clean", None, "av"): 25.0,
    ("babble", 0.0, "a"): 5.0, ("babble", 0.0, "av"): 15.0,
}
"""BLEUs of the translation model (clean AV 25 meets the goal)."""


def wer_score(wer: float) -> Score:
    """A score of exactly ``wer`` percent (to 0.1) over 1000 reference words."""
    e = round(wer * 10)
    return Score(counts=ErrorCounts(sentences=40, ref_words=1000, hyp_words=1000, hits=1000 - e, substitutions=e,
                                    ref_chars=5000, char_errors=e))


def bleu_score(bleu: float) -> Score:
    """A score of BLEU ``bleu`` (to 0.1): equal lengths and the same precision for every n-gram order."""
    c = round(bleu * 10)
    stats = BleuStats(sentences=20, correct=[c] * 4, total=[1000] * 4, sys_len=1000, ref_len=1000)
    return Score(counts=ErrorCounts(sentences=20, ref_words=100, hyp_words=100, hits=100), bleu=stats)


def eval_results(task: str, values: dict[Key, float]) -> EvalResults:
    """An evaluation whose language ``all`` cells have the given WERs (or BLEUs for ``avst``)."""
    make = bleu_score if task == "avst" else wer_score
    cells = [Cell(noise=n, snr=s, modality=m, lang=ALL, score=make(v)) for (n, s, m), v in values.items()]
    snrs = sorted({s for _, s, _ in values}, key=lambda s: (s is not None, s or 0.0))
    return EvalResults(task=task, model=f"m_{task}", manifest="d", seed=0, noises=["babble"], snrs=snrs,
                       modalities=sorted({m for _, _, m in values}), languages=[ALL], signatures={"wer": "x"}, cells=cells)


def write_demo(out: Path, *, a: dict[Key, float] | None = None, av: dict[Key, float] | None = None,
               bleu: dict[Key, float] | None = None, wall: float = 1100.0, pair_src: str = "es") -> Path:
    """A demo folder ``out`` with the GOOD_* values, each dict's entries replacing theirs."""
    for name, task, good, new in (("finetune_a", "avsr", GOOD_A, a), ("finetune_av", "avsr", GOOD_AV, av),
                                  (f"finetune_avst_{pair_src}", "avst", GOOD_BLEU, bleu)):
        (out / "eval" / name).mkdir(parents=True, exist_ok=True)
        eval_results(task, {**good, **(new or {})}).save(out / "eval" / name / "results.json")
    (out / "timings.json").write_text(json.dumps({"corpus": 10.0, "total_wall": wall, "cpus": 2}))
    return out
