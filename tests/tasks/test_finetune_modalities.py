"""``avsr finetune`` and the input modalities: the modality-dropout section and its ``--set``
keys, validation scored per input mode, and the AV settings recorded in the run's config.yaml."""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from avsr import metrics
from avsr.cli import main
from avsr.data import AVDataset, make_batch_sampler, make_dataloader, make_synthetic_av_data
from avsr.data.batch import AVBatch
from avsr.data.targets import SplitFiles
from avsr.errors import UserError
from avsr.models.av.config import FusionSection
from avsr.models.av.io import save_av_model
from avsr.models.finetuned import load_finetuned
from avsr.text import train_tokenizer
from avsr.train import DistInfo
from tasks.finetune_config import dropout_summary, resolve_config, valid_modalities
from tasks.finetune_run import _train_loader, build_model, make_validate_fn
from tasks.pretrain_config import PretrainConfig
from tasks.pretrain_run import _dataset
from tests.helpers import REPO
from tests.helpers.tiny_models import confident_ctc, tiny_av_encoder

TINY_YAML = REPO / "configs" / "finetune_tiny.yaml"
TINY = [
    "data.image_size=32", "data.crop_size=24", "data.max_frames_per_batch=80", "data.max_batch_size=null",
    "train.num_workers=0", "train.log_every=1", "train.save_every=100", "train.valid_every=100",
    "train.freeze_updates=0", "optim.warmup_updates=1", "valid.beam=2", "valid.max_clips=null",
    "tokenizer.vocab_size=40",
]  # fmt: skip


def _args(**kw: object) -> argparse.Namespace:
    base = {"config": TINY_YAML, "overrides": [], "task": None, "head": None, "modality": None, "lang": None, "pair": None}
    base.update(kw)
    return argparse.Namespace(**base)


def _rates(model: torch.nn.Module, *, train: bool, n: int = 2000) -> tuple[float, float, float]:
    """(audio only, video only, both) shares of ``n`` rows through the encoder in training
    (``train``) or evaluation mode."""
    torch.manual_seed(0)
    model.train(train)
    vlen = torch.full((n,), 1)
    with torch.no_grad():
        out = model.encoder(torch.randn(n, 640), vlen * 640, torch.randn(n, 1, 1, 24, 24), vlen, modality="av")
    a, v = out.keep_audio.float(), out.keep_video.float()
    return float((a * (1 - v)).mean()), float((v * (1 - a)).mean()), float((a * v).mean())


def test_dropout_set_keys_reach_the_encoder(tiny_av_init: Path) -> None:
    sets = ["model.modality_dropout.p=0.6", "model.modality_dropout.audio_share=0.25"]
    cfg = resolve_config(_args(modality="av", overrides=sets))
    assert (cfg.model.dropout.p, cfg.model.dropout.audio_share) == (0.6, 0.25)
    assert dropout_summary(cfg) == "modality dropout (AV fine-tuning): 45% of rows audio only, 15% video only, 40% both"
    model = build_model(cfg, tiny_av_init, train_tokenizer(["bin blue at one now", "lay red by two please"]))
    audio_only, video_only, both = _rates(model, train=True)
    assert audio_only == pytest.approx(0.45, abs=0.04)
    assert video_only == pytest.approx(0.15, abs=0.04)
    assert both == pytest.approx(0.40, abs=0.04)
    assert _rates(model, train=False)[2] == 1.0  # no dropout at evaluation
    assert not model.encoder.cfg.modality_dropout.clean_audio_alone
    cfg = resolve_config(_args(modality="av", overrides=[*sets, "model.modality_dropout.clean_audio_alone=true"]))
    assert "45% of rows audio only (without the training noise" in dropout_summary(cfg)
    model = build_model(cfg, tiny_av_init, train_tokenizer(["bin blue at one now", "lay red by two please"]))
    assert model.encoder.cfg.modality_dropout.clean_audio_alone
    # a training batch's clean audio reaches the encoder (training mode only)
    seen: list[object] = []
    model.encoder.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw.get("clean_audio")), with_kwargs=True
    )
    n, vlen = 4, torch.full((4,), 2)
    clean = torch.randn(n, 1280)
    batch = AVBatch(
        ids=[str(i) for i in range(n)], indices=torch.arange(n), audio=clean + 1.0, audio_lens=vlen * 640,
        video=torch.randn(n, 1, 2, 24, 24), video_lens=vlen, texts=["bin blue"] * n, clean_audio=clean,
    )
    model.train().encode(batch)
    model.eval().encode(batch)
    assert seen[0] is clean and seen[1] is None


def test_dropout_defaults_shorthand_and_errors(tmp_path: Path) -> None:
    cfg = resolve_config(_args(modality="av"))
    assert dropout_summary(cfg) == "modality dropout (AV fine-tuning): 25% of rows audio only, 25% video only, 50% both"
    # a plain number (older configs) is p; later key overrides add to it
    cfg = resolve_config(_args(overrides=["model.modality_dropout=0.2", "model.modality_dropout.audio_share=0.1"]))
    assert (cfg.model.dropout.p, cfg.model.dropout.audio_share) == (0.2, 0.1)
    old = tmp_path / "old.yaml"
    old.write_text(f"base: {TINY_YAML}\nmodel: {{modality_dropout: 0.3}}\n")
    cfg = resolve_config(_args(config=old, overrides=["model.modality_dropout.audio_share=0.2"]))
    assert (cfg.model.dropout.p, cfg.model.dropout.audio_share) == (0.3, 0.2)
    old.write_text(f"base: {TINY_YAML}\nmodel: {{modality_dropout: null}}\n")
    assert resolve_config(_args(config=old)).model.dropout.p == 0.5
    # audio- or video-only training never drops a modality: recorded as p 0
    cfg = resolve_config(_args(modality="a", overrides=["model.modality_dropout.p=0.7"]))
    assert cfg.model.dropout.p == 0.0 and dropout_summary(cfg).startswith("modality dropout: none")
    with pytest.raises(UserError, match=r"model.modality_dropout.audio_share must be in \[0, 1\]"):
        resolve_config(_args(overrides=["model.modality_dropout.audio_share=1.5"]))


def test_valid_modalities_defaults() -> None:
    def modes(modality: str, *sets: str, has_video: bool = True) -> list[str]:
        return list(valid_modalities(resolve_config(_args(modality=modality, overrides=list(sets))), has_video))

    assert modes("av") == ["av", "a", "v"]
    assert modes("a") == ["a", "av"]
    assert modes("a", has_video=False) == ["a"]
    assert modes("v") == ["v"]
    assert modes("av", "valid.modality=a", "valid.modalities=[v]") == ["a", "v"]  # selection mode first
    with pytest.raises(UserError, match="no lip encoder"):
        modes("a", "valid.modalities=[a, v]", has_video=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ftmod") / "data"
    make_synthetic_av_data(root, n_clips=6, split="train", min_frames=8, max_frames=16, noise=False, seed=1)
    make_synthetic_av_data(root, n_clips=3, split="valid", min_frames=8, max_frames=12, noise=False, seed=2)
    return root


def test_validation_scores_each_modality(data: Path, tiny_finetuned_dir: Path, tmp_path: Path) -> None:
    model = confident_ctc(load_finetuned(tiny_finetuned_dir))
    cfg = resolve_config(_args(modality="av", overrides=TINY))
    ds = AVDataset(data / "valid.tsv", cfg.data, train=False, labels=data / "valid.wrd")
    batches = list(make_dataloader(ds, make_batch_sampler(ds, shuffle=False), num_workers=0))
    refs = [t for b in batches for t in b.texts]
    hyps = {m: [h for b in batches for h in model.decode(b, modality=m, beam=2)] for m in ("av", "a", "v")}
    assert hyps["a"] != hyps["v"]  # the modes decode differently, so mixing them up shows
    state = torch.random.get_rng_state()
    with torch.no_grad():  # as the training loop runs it
        result = make_validate_fn(cfg, ds, DistInfo(), tmp_path)(model)
    assert torch.equal(torch.random.get_rng_state(), state)  # the training RNG did not move
    assert result["n_clips"] == 3 and result["wer"] == result["wer_av"]
    for m in ("av", "a", "v"):
        assert result[f"wer_{m}"] == pytest.approx(metrics.wer(refs, hyps[m]))
    ids = [i for b in batches for i in b.ids]
    lines = sorted((tmp_path / "valid_hyps.txt").read_text().splitlines())
    assert lines == sorted(f"{i}\t{h}\t{r}" for i, h, r in zip(ids, hyps["av"], refs))  # the selection mode's


class _Messages(logging.Handler):
    """Collects the messages of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _av_init_with_add_fusion(path: Path) -> Path:
    return save_av_model(tiny_av_encoder(fusion=FusionSection(kind="add")), path)


@pytest.mark.parametrize("init_kind", ["av_add", "finetuned"])
def test_run_config_records_what_the_model_uses(
    init_kind: str, data: Path, tiny_finetuned_dir: Path, tmp_path: Path
) -> None:
    """The run's config.yaml shows the init's AV settings (not the config file's av: block),
    the effective modality dropout and the scored validation modes; metrics.jsonl has
    wer_av / wer_a / wer_v."""
    init = _av_init_with_add_fusion(tmp_path / "av") if init_kind == "av_add" else tiny_finetuned_dir
    run = tmp_path / "run"
    sets = [*TINY, "train.max_updates=1", "model.modality_dropout.p=0.4", "model.modality_dropout.audio_share=0.25"]
    argv = ["finetune", "--config", str(TINY_YAML), "--modality", "av", "--data", str(data),
            "--init", str(init), "--out", str(run)]  # fmt: skip
    logged = _Messages()
    logging.getLogger("avsr.finetune").addHandler(logged)
    try:
        assert main(argv + [x for s in sets for x in ("--set", s)]) == 0
    finally:
        logging.getLogger("avsr.finetune").removeHandler(logged)
    assert "modality dropout (AV fine-tuning): 30% of rows audio only, 10% video only, 60% both" in logged.messages
    written = yaml.safe_load((run / "config.yaml").read_text())
    av = written["av"]
    assert av["fusion"]["kind"] == ("add" if init_kind == "av_add" else "concat")
    assert av["visual"]["widths"] == ([4, 8, 8, 16] if init_kind == "av_add" else [8, 8, 16, 16])  # the yaml says 8/16/32/64
    assert av["modality_dropout"] == written["model"]["modality_dropout"] == {
        "p": 0.4, "audio_share": 0.25, "clean_audio_alone": False
    }
    assert written["valid"]["modalities"] == ["av", "a", "v"]
    valid = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"valid"' in x]
    assert {"wer", "wer_av", "wer_a", "wer_v"} <= set(valid[-1])
    model = load_finetuned(run / "model")
    assert model.encoder.cfg.fusion.kind == av["fusion"]["kind"]
    assert model.encoder.cfg.modality_dropout.p == 0.4


def test_run_config_from_a_plain_encoder_is_the_config_block(data: Path, tiny_xlsr_dir: Path, tmp_path: Path) -> None:
    """A plain XLS-R --init: the config's av: block builds the fresh lip encoder and is recorded;
    audio-only training scores a and (zero-shot) av."""
    run = tmp_path / "run"
    argv = ["finetune", "--config", str(TINY_YAML), "--modality", "a", "--data", str(data),
            "--init", str(tiny_xlsr_dir), "--out", str(run)]  # fmt: skip
    assert main(argv + [x for s in [*TINY, "train.max_updates=1"] for x in ("--set", s)]) == 0
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["av"]["visual"]["widths"] == [8, 16, 32, 64] and written["av"]["fusion"]["kind"] == "concat"
    assert written["model"]["modality_dropout"]["p"] == 0.0 and written["valid"]["modalities"] == ["a", "av"]
    valid = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"valid"' in x]
    assert {"wer", "wer_a", "wer_av"} <= set(valid[-1]) and "wer_v" not in valid[-1]
    assert valid[-1]["wer"] == valid[-1]["wer_a"]


def test_freeze_audio_cnn_only_where_there_is_one() -> None:
    """``model.freeze_audio_cnn`` puts the CNN in ``train.frozen``; a filterbank model has none."""
    from tasks.finetune_run import AUDIO_CNN, _freeze_parts
    from tests.helpers.tiny_models import tiny_av_encoder

    cfg = resolve_config(_args(modality="av"))
    assert cfg.model.freeze_audio_cnn  # finetune_tiny.yaml
    _freeze_parts(cfg, torch.nn.ModuleDict({"encoder": tiny_av_encoder()}))
    _freeze_parts(cfg, torch.nn.ModuleDict({"encoder": tiny_av_encoder()}))
    assert cfg.train.frozen == [AUDIO_CNN]
    cfg = resolve_config(_args(modality="av"))
    _freeze_parts(cfg, torch.nn.ModuleDict({"encoder": tiny_av_encoder(audio_frontend="fbank")}))
    assert cfg.train.frozen == []
    cfg = resolve_config(_args(modality="av", overrides=["model.freeze_audio_cnn=false"]))
    _freeze_parts(cfg, torch.nn.ModuleDict({"encoder": tiny_av_encoder()}))
    assert cfg.train.frozen == []


def test_freeze_fusion_freezes_the_fusion_layer_alone() -> None:
    """``model.freeze_fusion`` adds the fusion layer's glob, which matches its LayerNorm and
    projection and nothing else; an audio-only encoder has no fusion layer to freeze."""
    from tasks.finetune_run import FUSION, _freeze_parts
    from tests.helpers.tiny_models import tiny_av_encoder, tiny_xlsr

    cfg = resolve_config(_args(modality="a", overrides=["model.freeze_fusion=true", "model.freeze_audio_cnn=false"]))
    model = torch.nn.ModuleDict({"encoder": tiny_av_encoder()})
    _freeze_parts(cfg, model)
    assert cfg.train.frozen == [FUSION]
    hit = {n for n, _ in model.named_parameters() if fnmatch.fnmatchcase(n, FUSION)}
    assert hit and all(n.startswith("encoder.fusion.") for n in hit)
    assert not any("video_proj" in n or "xlsr" in n for n in hit)
    cfg = resolve_config(_args(modality="a", overrides=["model.freeze_fusion=true", "model.freeze_audio_cnn=false"]))
    logger, logged = logging.getLogger("avsr.finetune"), _Messages()
    level = logger.level
    logger.addHandler(logged)
    logger.setLevel(logging.INFO)
    try:
        _freeze_parts(cfg, torch.nn.ModuleDict({"encoder": tiny_xlsr()}))
    finally:
        logger.removeHandler(logged)
        logger.setLevel(level)
    assert cfg.train.frozen == []
    assert "model.freeze_fusion: this model has no fusion layer (audio-only encoder); nothing to freeze" in logged.messages


def test_training_data_keeps_clean_audio_only_when_read(data: Path) -> None:
    files = SplitFiles(data / "train.tsv", data / "train.wrd")

    def keeps(modality: str, *sets: str) -> bool:
        cfg = resolve_config(_args(modality=modality, overrides=[*TINY, *sets]))
        return bool(_train_loader(cfg, files, DistInfo()).dataset.keep_clean_audio)

    flag = "model.modality_dropout.clean_audio_alone=true"
    assert not keeps("av") and keeps("av", flag)
    assert not keeps("av", flag, "model.modality_dropout.p=0")  # nothing dropped: never read
    assert not keeps("a", flag)  # audio-only training drops nothing
    # pretraining: only with the flag (the split's synthetic units are beside it)
    cfg = PretrainConfig()
    assert not _dataset(cfg, data, data, "train", train=True, required=True).keep_clean_audio  # type: ignore[union-attr]
    cfg.model.modality_dropout.clean_audio_alone = True
    assert _dataset(cfg, data, data, "train", train=True, required=True).keep_clean_audio  # type: ignore[union-attr]
