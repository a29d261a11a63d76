"""The demo's stage plan: order, the --encoder skip, and config fields reaching the commands."""

from __future__ import annotations

from pathlib import Path

from avsr.config import load_config
from tasks.demo_config import DemoConfig
from tasks.demo_stages import build_stages
from tests.helpers import REPO


def test_stage_plan_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml",
                      ["encoder=null", "finetune.lr=0.003", "corpus.langs=[en, fr]", "pretrain.overrides=[model.fusion.kind=concat]"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, None)}
    assert list(stages) == ["corpus", "preprocess", "stage0", "units", "pretrain", "finetune_a", "finetune_av", "finetune_avst", "evaluate_a",
                            "evaluate_av", "evaluate_avst"]
    # one chain (A, then AV from it, then AVST from that), each evaluation as soon as its model exists
    after = {n: s.after for n, s in stages.items() if s.group == "finetune"}
    assert after == {"finetune_a": None, "finetune_av": "finetune_a", "finetune_avst": "finetune_av", "evaluate_a": "finetune_a",
                     "evaluate_av": "finetune_av", "evaluate_avst": "finetune_avst"}
    assert "--modality a,av" in " ".join(stages["evaluate_a"].commands()[0])
    ev_av = " ".join(stages["evaluate_av"].commands()[0])
    assert "--modality a,v,av" in ev_av and f"--out {tmp_path / 'eval' / 'finetune_av'}" in ev_av
    assert stages["stage0"].skip_reason is None
    corpus = stages["corpus"].commands()[0]
    assert corpus[corpus.index("--langs") + 1 :][:2] == ["en", "fr"]
    ft = " ".join(stages["finetune_a"].commands()[0])
    assert "--modality a" in ft and "optim.lr=0.003" in ft and f"tokenizer.vocab_size={cfg.finetune.vocab_size}" in ft
    assert f"data.noise_dir={tmp_path / 'corpus' / 'noise'}" in ft
    assert "--modality av" in " ".join(stages["finetune_av"].commands()[0])
    pre = stages["pretrain"].commands()[0]
    assert pre[-2:] == ["--set", "model.fusion.kind=concat"]
    avst = " ".join(stages["finetune_avst"].commands()[0])
    assert "--task avst" in avst and "finetune_tiny_s2s.yaml" in avst and f"train.max_updates={cfg.finetune.avst.updates}" in avst
    assert f"--init {tmp_path / 'finetune_av' / 'model'}" in avst  # from the AV recognition model
    assert "--pair es-en" in " ".join(stages["evaluate_avst"].commands()[0])


def test_ctc_decoder_reaches_the_evaluations(tmp_path: Path) -> None:
    for decoder, flags in [("train_words", f"--decoder beam --vocab {tmp_path / 'data' / 'train.wrd'}"), ("greedy", None)]:
        cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", [f"eval.ctc_decoder={decoder}"])
        stages = {s.name: s for s in build_stages(cfg, tmp_path, None)}
        for name in ("evaluate_a", "evaluate_av"):
            cmd = " ".join(map(str, stages[name].commands()[0]))
            assert (flags in cmd) if flags else ("--decoder" not in cmd and "--vocab" not in cmd)
        assert "--vocab" not in " ".join(map(str, stages["evaluate_avst"].commands()[0]))  # seq2seq: its own beam search


def test_shipped_encoder_is_the_default(tmp_path: Path) -> None:
    from avsr.corpus.encoder import SHIPPED_ENCODER

    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    stages = {s.name: s for s in build_stages(cfg, tmp_path, None)}
    assert stages["stage0"].skip_reason and str(SHIPPED_ENCODER) in stages["stage0"].skip_reason
    assert f"--init {SHIPPED_ENCODER}" in " ".join(stages["pretrain"].commands()[0])
    # --encoder wins over the config's
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/x.pt")}
    assert "--init /models/x.pt" in " ".join(stages["pretrain"].commands()[0])


def test_av_and_avst_from_the_audio_only_model(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml", ["finetune.av.init=a", "finetune.avst.init=a"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    a_model = f"--init {tmp_path / 'finetune_a' / 'model'}"
    for name in ("finetune_av", "finetune_avst"):
        assert stages[name].after == "finetune_a" and a_model in " ".join(stages[name].commands()[0]), name
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml", ["finetune.av.init=pretrained", "finetune.avst.init=pretrained"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    assert stages["finetune_av"].after is None and stages["finetune_avst"].after is None
    assert f"--init {tmp_path / 'pretrain' / 'model'}" in " ".join(stages["finetune_avst"].commands()[0])


def test_each_ctc_run_has_its_own_overrides_after_the_shared_ones(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml",
                      ["finetune.overrides=[data.noise_start_epoch=3]", "finetune.av.overrides=[data.noise_start_epoch=1]"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    a, av = (stages[n].commands()[0] for n in ("finetune_a", "finetune_av"))
    assert a[-2:] == ["--set", "data.noise_start_epoch=3"]
    assert av[-4:] == ["--set", "data.noise_start_epoch=3", "--set", "data.noise_start_epoch=1"]


def test_fine_tuning_batch_size_overrides_the_demo_s(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml", ["max_frames_per_batch=300", "finetune.a.max_frames_per_batch=120"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    for name, frames in (("finetune_a", 120), ("finetune_av", 300)):
        cmd = stages[name].commands()[0]
        sets = [cmd[i + 1] for i, w in enumerate(cmd) if w == "--set" and cmd[i + 1].startswith("data.max_frames_per_batch=")]
        assert sets[-1] == f"data.max_frames_per_batch={frames}", name  # the last --set wins
    assert "data.max_frames_per_batch=300" in stages["pretrain"].commands()[0]
    assert "data.max_frames_per_batch=300" in stages["finetune_avst"].commands()[0]


def test_audio_only_updates_fall_back_to_the_av_budget(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml", ["finetune.a.updates=null", "finetune.av.updates=9"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    assert "train.max_updates=9" in stages["finetune_a"].commands()[0]


def test_encoder_skips_stage0(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml")
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/xlsr2_300m.pt")}
    assert stages["stage0"].skip_reason and "xlsr2_300m.pt" in stages["stage0"].skip_reason
    pre = " ".join(stages["pretrain"].commands()[0])
    assert "--init /models/xlsr2_300m.pt" in pre and "optim.lr" not in " ".join(stages["finetune_a"].commands()[0])


def test_every_training_stage_gets_the_demo_s_data_loading(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo_quick.yaml", ["num_workers=1", "cache_mb=256"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, "/models/enc")}
    for name in ("pretrain", "finetune_a", "finetune_av", "finetune_avst"):
        cmd = " ".join(map(str, stages[name].commands()[0]))
        assert "--set train.num_workers=1" in cmd and "--set data.cache_mb=256" in cmd, name
    full = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    assert (full.num_workers, full.cache_mb) == (0, 1024)


def test_the_av_run_distils_from_the_audio_only_model_it_starts_from(tmp_path: Path) -> None:
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml")
    av = " ".join({s.name: s for s in build_stages(cfg, tmp_path, None)}["finetune_av"].commands()[0])
    assert f"--init {tmp_path / 'finetune_a' / 'model'}" in av and "distill.teacher=init" in av
    assert "distill.weight=" in av
    # from the pretrained model there is no fine-tuned teacher: the distill sets are left out
    cfg = load_config(DemoConfig, REPO / "configs" / "demo.yaml", ["finetune.av.init=pretrained"])
    av = " ".join({s.name: s for s in build_stages(cfg, tmp_path, None)}["finetune_av"].commands()[0])
    assert "distill." not in av and "clean_audio_alone=true" in av
