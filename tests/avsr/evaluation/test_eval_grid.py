"""The evaluation grid with a deterministic stand-in decoder (fast); the real
fine-tuned model runs the same grid in tests/avsr/evaluation/test_eval_model.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.data import AVBatch, AVDataset, DataConfig, make_synthetic_av_data
from avsr.errors import UserError
from avsr.evaluation.grid import (
    CLEAN_CONDITION,
    Condition,
    GridJob,
    condition_audio,
    decode_grid,
    grid_conditions,
    parse_modalities,
)
from avsr.evaluation.results import EvalResults
from avsr.evaluation.run import EvalConfig, run_evaluation
from avsr.io import write_manifest
from avsr.metrics import ALL, wer
from avsr.noise import NoiseBank, measure_snr, mix_components

WORDS = ["bin", "blue", "at", "one", "now", "lay", "red", "by", "two", "please"]


class EnergyDecoder:
    """Deterministic stand-in for a model: words from the energy of 4 audio segments
    (so noise changes them) and, with video, from the mean pixel of the clip."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def decode(self, batch: AVBatch, *, modality: str = "av", beam: int = 5) -> list[str]:
        self.calls.append((modality, len(batch)))
        out = []
        for i in range(len(batch)):
            words = []
            if modality in ("a", "av"):
                assert batch.audio is not None
                a = batch.audio[i, : int(batch.audio_lens[i])].numpy()
                for seg in np.array_split(a, 4):
                    words.append(WORDS[int(np.sqrt(np.mean(seg**2)) * 97) % len(WORDS)])
            if modality in ("v", "av"):
                assert batch.video is not None
                v = batch.video[i, :, : int(batch.video_lens[i])]
                words.append(WORDS[int(abs(float(v.mean())) * 13) % len(WORDS)])
            out.append(" ".join(words))
        return out


MODEL_CONFIG = {"format": "xlavsr", "version": 1, "kind": "finetuned", "finetune": {"task": "avsr"}}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    return make_synthetic_av_data(
        root, n_clips=6, split="test", langs=("en", "ru"), min_frames=12, max_frames=30
    )


def _cfg(manifest: Path, **kw: object) -> EvalConfig:
    base: dict[str, object] = dict(
        model="stand-in",
        manifest=str(manifest),
        noise_dir=str(manifest.parent / "noise"),
        snr="clean,-5,0,5",
        noise="babble,music",
        modality="a,v,av",
        max_batch_size=4,
        plots=False,
        device="cpu",
        num_workers=0,
    )
    base.update(kw)
    return EvalConfig(**base)  # type: ignore[arg-type]


def test_conditions_and_modalities() -> None:
    conds = grid_conditions(["babble", "noise"], [None, -5.0, 0.0])
    assert conds[0] == CLEAN_CONDITION
    assert [c.key for c in conds[1:]] == ["babble_-5dB", "babble_0dB", "noise_-5dB", "noise_0dB"]
    assert grid_conditions(["babble"], [0.0]) == [Condition("babble", 0.0)]
    assert parse_modalities("a, av,a") == ["a", "av"]
    with pytest.raises(UserError, match="modality"):
        parse_modalities("a,x")


def test_same_evaluation_twice_gives_identical_results_json(synth: Path, tmp_path: Path) -> None:
    cfg = _cfg(synth)
    r1 = run_evaluation(cfg, tmp_path / "e1", model=EnergyDecoder(), model_config=MODEL_CONFIG)
    # the second run decodes the media in worker processes: same bytes
    cfg2 = _cfg(synth, num_workers=2)
    r2 = run_evaluation(cfg2, tmp_path / "e2", model=EnergyDecoder(), model_config=MODEL_CONFIG)
    b1 = (tmp_path / "e1" / "results.json").read_bytes()
    assert b1 == (tmp_path / "e2" / "results.json").read_bytes()
    assert r1.to_dict() == r2.to_dict()
    # the noise matters (hypotheses differ between clean and 0 dB) and the cells add up
    h_clean = (tmp_path / "e1" / "hyps" / "clean.a.tsv").read_text()
    h_noisy = (tmp_path / "e1" / "hyps" / "babble_-5dB.a.tsv").read_text()
    assert h_clean != h_noisy
    for cell in r1.cells:
        if cell.lang == ALL:
            per_lang = [
                c
                for c in r1.cells
                if (c.noise, c.snr, c.modality) == (cell.noise, cell.snr, cell.modality)
                and c.lang != ALL
            ]
            assert sum(c.score.counts.errors for c in per_lang) == cell.score.counts.errors
    # the scores are those of the written hypotheses
    rows = [ln.split("\t") for ln in h_noisy.splitlines()[1:]]
    assert r1.value("babble", -5.0, "a") == pytest.approx(
        wer([r[2] for r in rows], [r[3] for r in rows])
    )
    # a rerun in the same folder reuses the hypotheses and writes the same bytes
    dec = EnergyDecoder()
    run_evaluation(cfg, tmp_path / "e1", model=dec, model_config=MODEL_CONFIG)
    assert dec.calls == [] and (tmp_path / "e1" / "results.json").read_bytes() == b1
    # another seed draws other noise
    run_evaluation(
        _cfg(synth, seed=1), tmp_path / "e3", model=EnergyDecoder(), model_config=MODEL_CONFIG
    )
    assert (tmp_path / "e3" / "hyps" / "babble_-5dB.a.tsv").read_text() != h_noisy


def test_video_only_is_decoded_once_and_shared(synth: Path, tmp_path: Path) -> None:
    dec = EnergyDecoder()
    res = run_evaluation(_cfg(synth), tmp_path / "e", model=dec, model_config=MODEL_CONFIG)
    v_calls = [n for m, n in dec.calls if m == "v"]
    assert sum(v_calls) == 6  # once per clip, not once per condition
    clean_v = res.cell("clean", None, "v").score.counts
    for noise in ("babble", "music"):
        for snr in (-5.0, 0.0, 5.0):
            cell = res.cell(noise, snr, "v")
            assert cell.score.counts == clean_v and cell.same_as == "clean"
    assert sum(n for m, n in dec.calls if m == "a") == 6 * 7  # clean + 2 noises x 3 SNRs


def test_grid_noise_is_the_datasets_eval_noise(synth: Path) -> None:
    cfg = DataConfig(noise_dir=str(synth.parent / "noise"), noise_split=None, modalities="a")
    clean_ds = AVDataset(synth, cfg, labels=synth.with_suffix(".wrd"))
    noisy_ds = AVDataset(
        synth, cfg, labels=synth.with_suffix(".wrd"), eval_noise=("music", -5.0, 3)
    )
    bank = NoiseBank(synth.parent / "noise")
    for i in range(len(clean_ds)):
        s = clean_ds[i]
        assert s.audio is not None
        mixed = condition_audio(bank, s.id, s.audio, Condition("music", -5.0), 3)
        np.testing.assert_array_equal(mixed, noisy_ds[i].audio)


def test_snr_measured_back_for_tiled_and_cut_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 16000
    t = np.arange(n) / 16000
    envelope = 1 + 0.5 * np.sin(2 * np.pi * 3 * t)
    noise_dir = tmp_path / "noise"
    for cat, length in [("babble", 3001), ("music", 5 * n + 123)]:  # tiled / cut
        (noise_dir / cat).mkdir(parents=True)
        noise = (0.05 * rng.standard_normal(length)).astype(np.float32)
        sf.write(noise_dir / cat / f"{cat}.wav", noise, 16000, subtype="FLOAT")
    bank = NoiseBank(noise_dir)
    for amp in (0.02, 0.5):  # quiet speech: no clipping; loud speech: the mix is rescaled
        clean = (amp * np.sin(2 * np.pi * 220 * t) * envelope).astype(np.float32)
        for cat in ("babble", "music"):
            for snr in (-10.0, -5.0, 0.0, 5.0, 10.0):
                for clip in ("clip_a", "clip_b"):
                    mixed = condition_audio(bank, clip, clean, Condition(cat, snr), 0)
                    assert mixed.shape == clean.shape and np.abs(mixed).max() <= 1.0
                    if amp < 0.1:
                        assert abs(measure_snr(clean, mixed - clean) - snr) < 0.1, (cat, snr, clip)
                    noise = bank.for_clip(clip, cat, n, 0)
                    speech_part, noise_part = mix_components(clean, noise, snr)
                    np.testing.assert_allclose(mixed, speech_part + noise_part, atol=1e-7)
                    assert abs(measure_snr(speech_part, noise_part) - snr) < 0.1, (
                        cat,
                        snr,
                        clip,
                        amp,
                    )
    # the clean condition returns the speech untouched
    assert condition_audio(bank, "x", clean, CLEAN_CONDITION, 0) is clean


def test_decode_grid_skip_and_order(synth: Path) -> None:
    ds = AVDataset(synth, DataConfig(), labels=synth.with_suffix(".wrd"))
    bank = NoiseBank(synth.parent / "noise")
    job = GridJob(
        conditions=grid_conditions(["noise"], [None, 0.0]),
        modalities=["a", "av"],
        max_batch_size=2,
        chunk_clips=3,
    )
    full = decode_grid(EnergyDecoder(), ds, job, bank)
    assert set(full) == {("clean", "a"), ("clean", "av"), ("noise_0dB", "a"), ("noise_0dB", "av")}
    # hypotheses are in dataset order whatever the batching
    job1 = GridJob(
        conditions=job.conditions, modalities=job.modalities, max_batch_size=1, chunk_clips=100
    )
    assert decode_grid(EnergyDecoder(), ds, job1, bank) == full
    part = decode_grid(EnergyDecoder(), ds, job, bank, skip={("clean", "a"), ("clean", "av")})
    assert set(part) == {("noise_0dB", "a"), ("noise_0dB", "av")}


# ------------------------------------------------------------------ bad input


def test_bad_snr_list(synth: Path, tmp_path: Path) -> None:
    for bad in ("clean,-5,loud", "", "0,,5", "5,5"):
        with pytest.raises(UserError, match="--snr"):
            run_evaluation(
                _cfg(synth, snr=bad),
                tmp_path / "e",
                model=EnergyDecoder(),
                model_config=MODEL_CONFIG,
            )


def test_noise_folder_without_requested_type(synth: Path, tmp_path: Path) -> None:
    noise = tmp_path / "noise"
    (noise / "babble").mkdir(parents=True)
    sf.write(noise / "babble" / "b.wav", np.zeros(1600, dtype=np.float32) + 0.1, 16000)
    (noise / "music").mkdir()
    with pytest.raises(UserError) as ei:
        run_evaluation(
            _cfg(synth, noise_dir=str(noise)),
            tmp_path / "e",
            model=EnergyDecoder(),
            model_config=MODEL_CONFIG,
        )
    msg = str(ei.value)
    assert "'music'" in msg and str(noise / "music") in msg


@pytest.mark.parametrize("zero_bytes", [False, True], ids=["header_only", "zero_bytes"])
def test_empty_manifest(tmp_path: Path, synth: Path, zero_bytes: bool) -> None:
    """A manifest with no rows is refused, whether it has the root header line or is empty."""
    m = tmp_path / "test.tsv"
    write_manifest(m, tmp_path, [])
    (tmp_path / "test.wrd").write_text("")
    if zero_bytes:
        m.write_text("")
    with pytest.raises(UserError, match="empty manifest"):
        run_evaluation(
            _cfg(m, noise_dir=str(synth.parent / "noise")),
            tmp_path / "e",
            model=EnergyDecoder(),
            model_config=MODEL_CONFIG,
        )


def test_results_json_round_trip(synth: Path, tmp_path: Path) -> None:
    res = run_evaluation(
        _cfg(synth, plots=True), tmp_path / "e", model=EnergyDecoder(), model_config=MODEL_CONFIG
    )
    again = EvalResults.load(tmp_path / "e" / "results.json")
    assert again.to_dict() == res.to_dict()
    d = res.to_dict()
    assert d["seed"] == 0 and d["model"] == "stand-in" and d["config"]["snr"] == "clean,-5,0,5"
    assert set(d["noise_files"]) == {"babble", "music"}
    cell = d["cells"][0]
    for key in (
        "errors",
        "ref_words",
        "substitutions",
        "deletions",
        "insertions",
        "wer",
        "cer",
        "char_errors",
    ):
        assert key in cell
    table = (tmp_path / "e" / "results.md").read_text()
    assert "## WER (%): babble" in table and "| all | av |" in table and "| ru | a |" in table
    assert (tmp_path / "e" / "wer_vs_snr.png").stat().st_size > 1000
    assert (tmp_path / "e" / "wer_vs_snr_ru.png").is_file()


def test_translation_is_scored_with_bleu(synth: Path, tmp_path: Path) -> None:
    import sacrebleu

    refs = [
        "The cat sat on the mat.",
        "",
        "A dog ran in the park!",
        "Birds sing at dawn.",
        "",
        "It rains today.",
    ]
    (synth.parent / "test.en").write_text("".join(f"{r}\n" for r in refs), encoding="utf-8")
    avst = {**MODEL_CONFIG, "finetune": {"task": "avst"}}
    res = run_evaluation(
        _cfg(synth, snr="clean,0", noise="babble", modality="a,av", plots=True),
        tmp_path / "st",
        model=EnergyDecoder(),
        model_config=avst,
    )
    assert res.metric == "bleu" and res.signatures["bleu"].startswith("nrefs:1|case:mixed")
    # rows without a translation are not scored
    rows = [
        ln.split("\t")
        for ln in (tmp_path / "st" / "hyps" / "babble_0dB.av.tsv").read_text().splitlines()[1:]
    ]
    assert len(rows) == 4 and all(r[2] for r in rows)
    expected = sacrebleu.corpus_bleu([r[3] for r in rows], [[r[2] for r in rows]]).score
    assert res.value("babble", 0.0, "av") == pytest.approx(expected)
    assert (tmp_path / "st" / "bleu_vs_snr.png").is_file()
    assert "## BLEU: babble" in (tmp_path / "st" / "results.md").read_text()


def test_per_language_muavic_manifest(synth: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "muavic" / "el"
    d.mkdir(parents=True)
    shutil.copy(synth, d / "test.tsv")
    (d / "test.tsv").write_text(
        str(synth.parent.resolve())
        + "\n"
        + "".join(synth.read_text().splitlines(keepends=True)[1:])
    )
    (d / "test.el").write_text("".join(f"καλημέρα κόσμε {i}\n" for i in range(6)), encoding="utf-8")
    res = run_evaluation(
        _cfg(d / "test.tsv", snr="clean"),
        tmp_path / "e",
        model=EnergyDecoder(),
        model_config=MODEL_CONFIG,
    )
    assert res.languages == ["el"] and res.noises == []
    assert res.cell("clean", None, "a").score.counts.ref_words == 6 * 3
    table = (tmp_path / "e" / "results.md").read_text()
    assert "## CER (%): clean" in table and "| el | " in table


def test_stale_hypotheses_are_not_reused(synth: Path, tmp_path: Path) -> None:
    cfg = _cfg(synth, snr="clean,0", noise="babble")
    run_evaluation(cfg, tmp_path / "e", model=EnergyDecoder(), model_config=MODEL_CONFIG)
    first = (tmp_path / "e" / "hyps" / "babble_0dB.a.tsv").read_text()
    # other inputs (another seed): every hypothesis is decoded again, none is mixed in
    dec = EnergyDecoder()
    run_evaluation(
        _cfg(synth, snr="clean,0", noise="babble", seed=5),
        tmp_path / "e",
        model=dec,
        model_config=MODEL_CONFIG,
    )
    assert sum(n for m, n in dec.calls if m == "a") == 6 * 2
    assert (tmp_path / "e" / "hyps" / "babble_0dB.a.tsv").read_text() != first
