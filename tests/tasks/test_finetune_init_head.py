"""``model.init_head``: continued fine-tuning starts from the fine-tuned ``--init``'s head
when task, head type and tokenizer match; otherwise the head is fresh."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.models.finetuned import FinetunedConfig, FinetunedModel, save_finetuned
from avsr.text import train_tokenizer
from tasks.finetune_config import FinetuneConfig
from tasks.finetune_run import build_model
from tests.helpers.tiny_models import tiny_av_encoder

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon"]


@pytest.fixture(scope="module")
def a_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FinetunedModel]:
    """A saved audio-only CTC model whose head differs from a fresh one."""
    torch.manual_seed(0)
    model = FinetunedModel(tiny_av_encoder(), train_tokenizer(TEXTS), FinetunedConfig(head="ctc", modality="a"),
                           data_config={"crop_size": 24, "image_size": None})
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(1.0)
    return save_finetuned(model.eval(), tmp_path_factory.mktemp("a") / "model"), model


def _head_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_av_run_from_audio_only_model_keeps_its_head(a_model: tuple[Path, FinetunedModel]) -> None:
    path, src = a_model
    model = build_model(FinetuneConfig(task="avsr", head="ctc", modality="av"), path, src.tokenizer)
    assert _head_equal(model.head, src.head) and model.training
    assert model.encoder.cfg.modality_dropout.p == FinetuneConfig().model.dropout.p  # the run's own dropout


@pytest.mark.parametrize("change", ["init_head_off", "other_tokenizer", "other_head", "other_task"])
def test_fresh_head_when_it_does_not_fit(a_model: tuple[Path, FinetunedModel], change: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path, src = a_model
    cfg = FinetuneConfig(task="avst" if change == "other_task" else "avsr", head="s2s" if change == "other_head" else "ctc")
    cfg.model.init_head = change != "init_head_off"
    tokenizer = train_tokenizer([*TEXTS, "zebra quiz jumps"]) if change == "other_tokenizer" else src.tokenizer
    with caplog.at_level("INFO"):
        model = build_model(cfg, path, tokenizer)
    if change != "other_head":
        assert not _head_equal(model.head, src.head)
    why = {"init_head_off": "model.init_head is false", "other_tokenizer": "tokenizer differs",
           "other_head": "with a ctc head, this run is avsr with s2s", "other_task": "trained for avsr"}[change]
    assert "a fresh head" in caplog.text and why in caplog.text
