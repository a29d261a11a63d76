from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from avsr.config import load_config, to_dict
from avsr.errors import UserError
from tasks.finetune_config import FinetuneConfig, resolve_config
from tests.helpers import REPO

CONFIGS = sorted((REPO / "configs").glob("finetune_*.yaml"))


def test_there_are_finetune_configs() -> None:
    names = {p.name for p in CONFIGS}
    assert {"finetune_tiny.yaml", "finetune_tiny_s2s.yaml", "finetune_300m.yaml"} <= names


def test_tiny_s2s_is_the_tiny_config_with_a_decoder() -> None:
    ctc = to_dict(load_config(FinetuneConfig, REPO / "configs" / "finetune_tiny.yaml"))
    s2s = to_dict(load_config(FinetuneConfig, REPO / "configs" / "finetune_tiny_s2s.yaml"))
    assert (ctc["head"], s2s["head"]) == ("ctc", "s2s") and s2s["model"]["ctc_weight"] == 0.3
    assert s2s["model"]["decoder"]["num_layers"] == 2
    for key in ("head", "model"):
        del ctc[key], s2s[key]
    assert ctc == s2s


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path: Path) -> None:
    cfg = load_config(FinetuneConfig, path)
    assert cfg.tokenizer.vocab_size == 1000 and cfg.tokenizer.character_coverage == 1.0
    assert cfg.train.freeze == ["encoder.*"] and (cfg.train.freeze_updates or 0) > 0
    assert cfg.model.decoder.label_smoothing == 0.1 and cfg.valid.beam == 5


def _args(**kw: object) -> argparse.Namespace:
    base = {"config": None, "overrides": [], "task": None, "head": None, "modality": None, "lang": None, "pair": None}
    base.update(kw)
    return argparse.Namespace(**base)


def test_resolve_flags_win_and_best_metric() -> None:
    cfg = resolve_config(_args(config=CONFIGS[0], task="avst", head="s2s", modality="a", pair="es-en"))
    assert (cfg.task, cfg.head, cfg.modality, cfg.pair) == ("avst", "s2s", "a", "es-en")
    assert cfg.train.best_metric == "bleu" and cfg.train.best_mode == "max"
    assert cfg.data.modalities == "a"  # audio-only training does not decode video
    cfg = resolve_config(_args(task="avsr"))
    assert cfg.train.best_metric == "wer" and cfg.train.best_mode == "min"
    with pytest.raises(UserError, match="s2s"):
        resolve_config(_args(task="avst", head="ctc"))
    with pytest.raises(UserError, match="unknown config key"):
        resolve_config(_args(overrides=["train.bogus=1"]))


def test_ctc_weight_is_for_seq2seq_heads() -> None:
    cfg = resolve_config(_args(head="s2s", overrides=["model.ctc_weight=0.3"]))
    assert cfg.model.ctc_weight == 0.3
    with pytest.raises(UserError, match="ctc_weight"):
        resolve_config(_args(head="ctc", overrides=["model.ctc_weight=0.3"]))
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        resolve_config(_args(head="s2s", overrides=["model.ctc_weight=1.5"]))


def test_distill_weights_must_not_be_negative() -> None:
    cfg = resolve_config(_args(head="ctc", overrides=["distill.teacher=init", "distill.audio_alone_scale=4"]))
    assert cfg.distill.audio_alone_scale == 4.0
    for key in ("distill.weight", "distill.audio_alone_scale"):
        with pytest.raises(UserError, match=f"{key} must be >= 0"):
            resolve_config(_args(head="ctc", overrides=["distill.teacher=init", f"{key}=-1"]))
