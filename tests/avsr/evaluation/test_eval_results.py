"""results.json / Markdown / plots from hand-made cells (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsr.evaluation.plots import plot_metric_vs_snr, save_figure, write_plots
from avsr.evaluation.results import Cell, EvalResults, markdown_table
from avsr.metrics import ALL, bleu_signature, score_by_language

REFS = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn"]
LANGS = ["es", "ru", "es"]
NOISES = ["babble", "music", "noise", "speech"]
SNRS: list[float | None] = [None, -10.0, -5.0, 0.0, 5.0, 10.0]


def _hyps(k: int) -> list[str]:
    """Hypotheses with k words dropped from each reference (k errors per sentence)."""
    return [" ".join(r.split()[k:]) for r in REFS]


def _results(task: str) -> EvalResults:
    cells = []
    for snr in SNRS:
        noises = ["clean"] if snr is None else NOISES
        for noise in noises:
            for mod in ("a", "v", "av"):
                k = 0 if snr is None else int(np.clip((10 - snr) // 5, 0, 4))
                k = k if mod == "a" else (3 if mod == "v" else max(0, k - 1))
                scores = score_by_language(REFS, _hyps(k), LANGS, with_bleu=task == "avst")
                for lang, s in scores.items():
                    cells.append(Cell(noise=noise, snr=snr, modality=mod, lang=lang, score=s))
    sigs = {"wer": "x"}
    if task == "avst":
        sigs["bleu"] = bleu_signature()
    return EvalResults(
        task=task,
        model="m",
        manifest="d",
        seed=0,
        noises=NOISES,
        snrs=SNRS,
        modalities=["a", "v", "av"],
        languages=["es", "ru"],
        signatures=sigs,
        cells=cells,
    )


def test_plot_has_one_panel_per_noise_type_and_a_line_per_modality(tmp_path: Path) -> None:
    res = _results("avsr")
    fig = plot_metric_vs_snr(res)
    assert [ax.get_title() for ax in fig.axes] == NOISES
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 3
        assert [ln.get_label() for ln in lines] == ["audio (A)", "video (V)", "audio-visual (AV)"]
        # 5 SNRs + clean per line; the audio line is the WER of the cells
        x, y = lines[0].get_data()
        assert len(x) == 6
        assert y[0] == pytest.approx(res.value(ax.get_title(), -10.0, "a"))
        assert y[-1] == pytest.approx(res.value("clean", None, "a"))
        assert [t.get_text() for t in ax.get_xticklabels()][-1] == "clean"
    assert "WER" in fig.axes[0].get_ylabel()
    png = save_figure(fig, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translation_plots_bleu(tmp_path: Path) -> None:
    res = _results("avst")
    assert res.metric == "bleu"
    paths = write_plots(res, tmp_path)
    assert [p.name for p in paths] == [
        "bleu_vs_snr.png",
        "bleu_vs_snr_es.png",
        "bleu_vs_snr_ru.png",
    ]
    fig = plot_metric_vs_snr(res, lang="ru")
    assert "BLEU" in fig.axes[0].get_ylabel() and "ru" in fig.get_suptitle()
    assert res.value("clean", None, "a") == pytest.approx(100.0)
    table = markdown_table(res)
    assert "## BLEU: babble" in table and "nrefs:1" in table


def test_markdown_table_values_and_json_round_trip(tmp_path: Path) -> None:
    res = _results("avsr")
    table = markdown_table(res)
    assert "| lang | modality | clean | -10 dB | -5 dB | 0 dB | 5 dB | 10 dB |" in table
    row = next(ln for ln in table.splitlines() if ln.startswith("| all | a |"))
    cells = [c.strip() for c in row.strip("|").split("|")][2:]
    expected = [res.value("clean", None, "a")] + [res.value("babble", s, "a") for s in SNRS[1:]]
    assert cells == [f"{v:.1f}" for v in expected]
    res.save(tmp_path / "r.json")
    back = EvalResults.load(tmp_path / "r.json")
    assert back.to_dict() == res.to_dict()
    assert back.cell("babble", 0.0, "av", ALL).score == res.cell("babble", 0.0, "av", ALL).score
