"""``avsr experiments``: multi-seed aggregation, verdicts, stage plans, report (fast, no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from avsr.cli import main as cli_main
from avsr.config import load_config
from avsr.corpus.encoder import SHIPPED_ENCODER
from avsr.errors import UserError
from avsr.evaluation import compare
from avsr.evaluation.compare import Comparison, Stat
from avsr.evaluation.results import Cell, EvalResults
from avsr.metrics import ErrorCounts, Score
from tasks.experiments import encoder_input
from tasks.experiments_plan import ExperimentsConfig, Inputs, build_plan, check_markers, run_hash
from tasks.experiments_report import encoder_origin
from tasks.experiments_verdicts import (
    describe_difference,
    frontend_verdict,
    noise_types_verdict,
    zeroshot_verdict,
)
from tests.helpers import REPO

LANGS = ["en", "ru"]
SNRS: list[float | None] = [None, -5.0, 0.0]


def _score(wer: float) -> Score:
    """A score with exactly ``wer`` percent over 100 reference words."""
    e = int(round(wer))
    return Score(counts=ErrorCounts(sentences=10, ref_words=100, hyp_words=100, hits=100 - e, substitutions=e,
                                    ref_chars=500, char_errors=e))


def _results(wer, noises=("babble", "music"), seed: int = 0, model: str = "m") -> EvalResults:  # noqa: ANN001
    """``wer(noise, snr, modality, lang) -> percent``; 'all' = mean of the two languages."""
    cells = []
    for snr in SNRS:
        for noise in ["clean"] if snr is None else list(noises):
            for mod in ("a", "av"):
                per = {lang: wer(noise, snr, mod, lang) for lang in LANGS}
                for lang, w in per.items():
                    cells.append(Cell(noise=noise, snr=snr, modality=mod, lang=lang, score=_score(w)))
                tot = _score(per["en"]) + _score(per["ru"])
                cells.append(Cell(noise=noise, snr=snr, modality=mod, lang="all", score=tot))
    return EvalResults(task="avsr", model=model, manifest="d/test.tsv", seed=seed, noises=list(noises),
                       snrs=list(SNRS), modalities=["a", "av"], languages=[*LANGS, "all"],
                       signatures={"wer": "x"}, cells=cells)


def _wer(base: float, av_gain: float = 0.0, lang_offset: float = 0.0):  # noqa: ANN202
    def f(noise: str, snr: float | None, mod: str, lang: str) -> float:
        w = base + (0 if snr is None else (10 - snr) * 2) + (lang_offset if lang == "ru" else 0)
        return w - (av_gain if mod == "av" and snr is not None else 0)

    return f


def test_stat_mean_std_min_max_and_format() -> None:
    s = Stat(values=[10.0, 14.0, math.nan], seeds=[0, 1, 2])
    assert s.n == 2 and s.mean == 12.0 and s.min == 10.0 and s.max == 14.0
    assert s.std == pytest.approx(math.sqrt(8.0))
    assert s.fmt() == "12.0 ± 2.8" and s.fmt_range() == "12.0 [10.0, 14.0]"
    assert Stat(values=[3.0]).fmt() == "3.0" and Stat(values=[3.0]).std == 0.0
    assert Stat(values=[]).fmt() == "-"
    assert s.to_dict()["values"] == [10.0, 14.0, None]


def test_comparison_cells_noisy_means_and_paired_difference() -> None:
    comp = Comparison(arms={
        "cnn": {0: _results(_wer(10)), 1: _results(_wer(20), seed=0)},
        "fbank": {0: _results(_wer(15)), 1: _results(_wer(21))},
    })
    assert comp.metric == "wer" and comp.noises == ["babble", "music"] and comp.noisy_snrs == [-5.0, 0.0]
    st = comp.stat("cnn", "clean", None, "a")
    assert st.values == [10.0, 20.0] and st.mean == 15.0
    # noisy mean per seed: base + mean((10+5)*2, 10*2) = base + 25
    nm = comp.noisy_mean("cnn", "a")
    assert nm.values == [35.0, 45.0]
    d = comp.paired_difference(("cnn", "a"), ("fbank", "a"))
    assert d.values == [-5.0, -1.0] and d.seeds == [0, 1]
    assert comp.clean_difference(("cnn", "av"), ("fbank", "av")).values == [-5.0, -1.0]
    # per language
    comp2 = Comparison(arms={"x": {0: _results(_wer(10, lang_offset=6))}})
    assert comp2.stat("x", "clean", None, "a", "ru").values == [16.0]
    assert comp2.stat("x", "clean", None, "a", "all").values == [13.0]


def test_grids_must_match() -> None:
    with pytest.raises(UserError, match="another grid"):
        Comparison(arms={"a": {0: _results(_wer(10))}, "b": {0: _results(_wer(10), noises=("babble",))}})
    with pytest.raises(UserError, match="another grid"):  # another test-noise seed
        Comparison(arms={"a": {0: _results(_wer(10))}, "b": {0: _results(_wer(10), seed=3)}})


def test_tables_json_and_plots(tmp_path: Path) -> None:
    comp = Comparison(arms={"cnn": {0: _results(_wer(10)), 1: _results(_wer(20))},
                            "fbank": {0: _results(_wer(15))}})
    t = compare.condition_tables(comp)
    assert "### WER (%), babble" in t and "| cnn | A | 0,1 | 15.0 ± 7.1 | 45.0 ± 7.1 | 35.0 ± 7.1 |" in t
    assert "| fbank | AV | 0 | 15.0 |" in t
    n = compare.noisy_table(comp)
    assert "| cnn | A | 15.0 [10.0, 20.0] | 40.0 [35.0, 45.0] |" in n
    lt = compare.language_table(comp)
    assert "| ru | cnn | AV |" in lt and "| all | fbank | A |" in lt
    js = compare.comparison_json(comp, {"cnn": {0: "a.json", 1: "b.json"}})
    json.dumps(js)  # JSON-able
    cell = next(c for c in js["cells"] if c["arm"] == "cnn" and c["modality"] == "a" and c["snr"] == -5.0
                and c["noise"] == "music" and c["lang"] == "all")
    assert cell["mean"] == 45.0 and cell["n"] == 2 and cell["seeds"] == [0, 1]
    assert js["arms"]["cnn"]["results"] == {"0": "a.json", "1": "b.json"}
    paths = compare.write_comparison_plots(comp, tmp_path)
    assert [p.name for p in paths] == ["wer_vs_snr.png", "wer_vs_snr_en.png", "wer_vs_snr_ru.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_describe_difference_is_measured_not_assumed() -> None:
    text, js = describe_difference(Stat(values=[-5.0, -1.0], seeds=[0, 1]), "cnn", "fbank", "wer")
    assert js["winner"] == "cnn" and js["consistent"] and "all 2 seeds" in text
    text, js = describe_difference(Stat(values=[-5.0, 2.0], seeds=[0, 1]), "cnn", "fbank", "wer")
    assert js["winner"] == "cnn" and not js["consistent"] and "1 of 2" in text
    _, js = describe_difference(Stat(values=[4.0, 1.0], seeds=[0, 1]), "cnn", "fbank", "wer")
    assert js["winner"] == "fbank"
    _, js = describe_difference(Stat(values=[4.0, 1.0], seeds=[0, 1]), "x", "y", "bleu")
    assert js["winner"] == "x"  # BLEU: higher is better


def test_verdicts_follow_the_numbers() -> None:
    # fbank better under noise with A input, cnn better with AV input
    def cnn(noise, snr, mod, lang):  # noqa: ANN001, ANN202
        return _wer(10)(noise, snr, mod, lang) + (5 if mod == "a" and snr is not None else -5)

    comp = Comparison(arms={"cnn": {0: _results(cnn), 1: _results(cnn)},
                            "fbank": {0: _results(_wer(10)), 1: _results(_wer(10))}})
    lines, data = frontend_verdict(comp)
    assert data["a"]["noisy"]["winner"] == "fbank" and data["av"]["noisy"]["winner"] == "cnn"
    assert any("Under noise, A input: fbank wins" in x for x in lines)
    assert any("Under noise, AV input: cnn wins" in x for x in lines)

    zs = Comparison(arms={"A-finetuned": {0: _results(_wer(10, av_gain=4))},
                          "AV-finetuned": {0: _results(_wer(10, av_gain=8))}})
    _, data = zeroshot_verdict(zs)
    assert data["zero_shot_noisy"]["winner"] == "AV input"
    assert data["zero_shot_noisy"]["difference"]["mean"] == -4.0
    assert data["a_vs_av_finetuning_noisy"]["winner"] == "AV-finetuned"

    def music_hurts_av(noise, snr, mod, lang):  # noqa: ANN001, ANN202
        return _wer(10, av_gain=3)(noise, snr, mod, lang) + (6 if noise == "music" and mod == "av" else 0)

    nt = Comparison(arms={"AV-finetuned": {0: _results(music_hurts_av), 1: _results(music_hurts_av)}})
    lines, data = noise_types_verdict(nt)
    assert data["babble"]["winner"] == "AV" and data["music"]["winner"] == "A"
    assert any("for: babble." in x for x in lines)


def _plan(tmp_path: Path, experiment: str, **kw) -> object:  # noqa: ANN003
    cfg = ExperimentsConfig()
    return build_plan(experiment, cfg, work=tmp_path / "work", report=tmp_path / experiment,
                      inputs=Inputs(**kw), seeds=[0, 1])


def test_plans_share_prerequisites_and_identical_runs(tmp_path: Path) -> None:
    fe = _plan(tmp_path, "frontend")
    names = [s.name for s in fe.work_stages]
    assert names[:5] == ["corpus", "preprocess", "units_mfcc", "stage0", "units"]
    runs = names[5:]
    assert len(runs) == 8 and len(set(runs)) == 8  # 2 front ends x 2 seeds x (pretrain, finetune)
    cmds = {s.name: [str(a) for a in s.commands()[0]] for s in fe.work_stages}
    fb = next(c for n, c in cmds.items() if n.startswith("pretrain-fbank-s1"))
    assert "model.audio_frontend=fbank" in fb and "train.seed=1" in fb and "data.seed=1" in fb
    assert f"data.noise_dir={tmp_path / 'work' / 'corpus' / 'noise'}" in fb
    assert sorted(fe.arms) == ["cnn", "fbank"] and sorted(fe.arms["cnn"].evals) == [0, 1]
    ev = [str(a) for a in fe.eval_stages[0].commands()[0]]
    assert ev[ev.index("--snr") + 1] == "clean,-10,-5,0,5,10" and ev[ev.index("--seed") + 1] == "0"
    # zeroshot in the same WORK reuses the CNN pretraining and AV fine-tuning runs
    zs = _plan(tmp_path, "zeroshot")
    shared = {s.name for s in zs.work_stages} & set(names)
    assert {n for n in shared if n.startswith("finetune-cnn-av")} and {n for n in shared if n.startswith("pretrain-cnn")}
    assert any(s.name.startswith("finetune-cnn-a-s0") for s in zs.work_stages)
    nt = _plan(tmp_path, "noise-types")
    assert {s.name for s in nt.work_stages} <= {s.name for s in zs.work_stages}
    nev = [str(a) for a in nt.eval_stages[0].commands()[0]]
    assert nev[nev.index("--noise") + 1] == "babble,music,noise,speech"


def test_plan_reuses_given_inputs(tmp_path: Path) -> None:
    data, noise, enc, pre = (tmp_path / x for x in ("data", "noise", "enc", "pre"))
    p = _plan(tmp_path, "zeroshot", data=data, noise_dir=noise, encoder=enc, pretrained=pre)
    assert [s.name.split("-")[0] for s in p.work_stages] == ["finetune"] * 4
    cmd = [str(a) for a in p.work_stages[0].commands()[0]]
    assert cmd[cmd.index("--init") + 1] == str(pre.resolve())
    p = _plan(tmp_path, "noise-types", data=data, noise_dir=noise, models=[tmp_path / "m1", tmp_path / "m2"])
    assert p.work_stages == [] and sorted(p.arms["AV-finetuned"].evals) == [0, 1]
    with pytest.raises(UserError, match="--noise-dir"):
        _plan(tmp_path, "noise-types", data=data, models=[tmp_path / "m1"])


def test_run_hash_ignores_out_and_changed_settings_are_refused(tmp_path: Path) -> None:
    assert run_hash(["py", "a", "--out", "x"]) == run_hash(["py2", "a", "--out", "y"]) != run_hash(["py", "b"])
    p = _plan(tmp_path, "frontend")
    st = p.work_stages[0]
    marker = tmp_path / "work" / ".stages" / f"{st.name}.json"
    marker.parent.mkdir(parents=True)
    cmd = [str(a) for a in st.commands()[0]]
    marker.write_text(json.dumps({"commands": [" ".join(["python", *cmd[1:]])]}))
    check_markers(p.work_stages, tmp_path / "work")  # same settings: fine
    marker.write_text(json.dumps({"commands": ["python -m avsr.cli corpus build --size small --seed 7"]}))
    with pytest.raises(UserError, match="other settings"):
        check_markers(p.work_stages, tmp_path / "work")


def test_cli_help_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for exp in ("frontend", "zeroshot", "noise-types"):
        with pytest.raises(SystemExit) as e:
            cli_main(["experiments", exp, "--help"])
        assert e.value.code == 0
    assert "--seeds" in capsys.readouterr().out
    assert cli_main(["experiments", "frontend", "--out", str(tmp_path / "r"), "--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert cli_main(["experiments", "frontend", "--out", str(tmp_path / "r"), "--set", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err
    assert cli_main(["experiments", "zeroshot", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "no")]) == 2
    assert "not found" in capsys.readouterr().err


def test_write_report_from_per_seed_results(tmp_path: Path) -> None:
    from tasks.experiments_report import write_report

    p = _plan(tmp_path, "frontend")
    for arm, base in (("cnn", 10.0), ("fbank", 14.0)):
        for seed, ev in p.arms[arm].evals.items():
            _results(_wer(base + seed, av_gain=3), model=f"{arm}{seed}").save(ev / "results.json")
    path = write_report("frontend", p, command="avsr experiments frontend --out X", timings={"corpus": 3.0})
    md = path.read_text()
    stage0 = tmp_path / "work" / "stage0" / "encoder"
    assert f"the same audio encoder initialisation (stage 0, pretrained here on MFCC units: `{stage0}`)" in md
    assert f"- Audio encoder: stage 0, pretrained here on MFCC units: `{stage0}`" in md
    assert "**Under noise, A input: cnn wins.**" in md and "**cnn** is better in all 2 seeds" in md
    assert "## Per language: front-end difference" in md and "| ru |" in md
    res = json.loads((p.report / "results.json").read_text())
    assert res["verdict"]["av"]["noisy"]["difference"]["values"] == [-4.0, -4.0]
    assert res["seeds"] == [0, 1] and res["experiment"] == "frontend" and res["encoder"] == str(stage0)
    cmds = (p.report / "commands.txt").read_text().splitlines()
    assert cmds[2] == "avsr experiments frontend --out X"
    assert any(c.startswith("avsr corpus build") for c in cmds) and any(c.startswith("avsr evaluate") for c in cmds)
    assert (p.report / "configs" / "pretrain.yaml").is_file() and (p.report / "wer_vs_snr_ru.png").is_file()


def test_config_encoder_shipped_skips_stage0(tmp_path: Path) -> None:
    cfg = load_config(ExperimentsConfig, REPO / "configs" / "experiments_tiny.yaml")
    assert cfg.encoder == "shipped"
    enc = encoder_input(None, cfg.encoder)
    assert enc == SHIPPED_ENCODER
    p = build_plan("frontend", cfg, work=tmp_path / "w", report=tmp_path / "r", inputs=Inputs(encoder=enc), seeds=[0])
    names = [s.name for s in p.work_stages]
    assert names[:3] == ["corpus", "preprocess", "units"] and not {"stage0", "units_mfcc"} & set(names)
    units = [[str(a) for a in c] for c in next(s for s in p.work_stages if s.name == "units").commands()]
    feats = [c for c in units if "features" in c]
    assert feats and all(c[c.index("--encoder") + 1] == str(SHIPPED_ENCODER) for c in feats)
    pre = [str(a) for a in next(s for s in p.work_stages if s.name.startswith("pretrain-")).commands()[0]]
    assert pre[pre.index("--init") + 1] == str(SHIPPED_ENCODER)
    assert encoder_origin(p).startswith("the stand-in encoder shipped in the package")
    # the CI config keeps stage 0
    ci = load_config(ExperimentsConfig, REPO / "configs" / "experiments_ci.yaml")
    assert ci.encoder is None and encoder_input(None, ci.encoder) is None


def test_encoder_flag_wins_and_missing_configured_path_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    given = tmp_path / "xlsr"
    assert encoder_input(str(given), "shipped") == given
    assert encoder_input(str(given), str(tmp_path / "missing")) == given  # the config's path is not read
    with pytest.raises(UserError, match=f"'encoder': {tmp_path / 'missing'}: not found"):
        encoder_input(None, str(tmp_path / "missing"))
    tiny = str(REPO / "configs" / "experiments_tiny.yaml")
    out = ["--out", str(tmp_path / "r")]
    # --encoder replaces the config's (existing) shipped encoder, so its own path is checked
    assert cli_main(["experiments", "frontend", "--config", tiny, *out, "--encoder", str(given)]) == 2
    assert f"--encoder {given}: not found" in capsys.readouterr().err
    missing = tmp_path / "no_encoder"
    assert cli_main(["experiments", "frontend", "--config", tiny, *out, "--set", f"encoder={missing}"]) == 2
    err = capsys.readouterr().err
    assert "experiments config 'encoder'" in err and str(missing) in err
    assert not (tmp_path / "r").exists()


def test_encoder_origin_names_the_start(tmp_path: Path) -> None:
    assert encoder_origin(_plan(tmp_path, "frontend")).startswith(
        f"stage 0, pretrained here on MFCC units: `{tmp_path / 'work' / 'stage0' / 'encoder'}`"
    )
    assert encoder_origin(_plan(tmp_path, "frontend", encoder=tmp_path / "xlsr")) == f"`{tmp_path / 'xlsr'}`"
    assert "given AV-pretrained model" in encoder_origin(_plan(tmp_path, "zeroshot", pretrained=tmp_path / "pre"))
