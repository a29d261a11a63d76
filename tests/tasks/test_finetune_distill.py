"""``distill.teacher``: CTC fine-tuning pulled towards a fixed teacher that hears the clean
audio (the teacher is neither trained nor saved; it must share the run's tokenizer)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from avsr.errors import UserError
from avsr.models.distill import CTCTeacher
from avsr.models.finetuned import FinetunedConfig, FinetunedModel, load_finetuned, save_finetuned
from avsr.text import train_tokenizer
from tasks.finetune_config import FinetuneConfig
from tasks.finetune_run import attach_teacher
from tests.helpers.tiny_models import tiny_av_encoder
from tests.tasks.test_finetune_model import TEXTS, FrameEncoder, _batch


def _ctc(seed: int, texts: list[str] = TEXTS) -> FinetunedModel:
    torch.manual_seed(seed)
    cfg = FinetunedConfig(head="ctc")
    cfg.ctc.dropout = 0.0
    return FinetunedModel(FrameEncoder(), train_tokenizer(texts, vocab_size=1000), cfg)


def test_teacher_hears_the_clean_audio_and_is_not_part_of_the_model() -> None:
    student, teacher_model = _ctc(0), _ctc(1)
    teacher = CTCTeacher(teacher_model, where="t")
    batch = _batch([40, 30])
    clean = batch.audio.clone()
    batch.clean_audio = clean
    batch.audio = clean + 3.0 * torch.randn_like(clean)  # the student's (noisy) input
    lp, lens = teacher.log_probs(batch)
    with torch.no_grad():
        ref = teacher_model.head(teacher_model.encode(_batch([40, 30]), modality="a").feats).log_softmax(-1)
    assert torch.allclose(lp, ref) and lens.tolist() == [40, 30]
    student.set_teacher(teacher, 2.0)
    names = set(student.state_dict())
    assert not any(n.startswith("_teacher") for n in names)
    assert len(list(student.parameters())) == len(list(_ctc(0).parameters()))
    assert not any(p.requires_grad for p in teacher_model.parameters())


def _train(student: FinetunedModel, batch: object, steps: int = 60) -> dict[str, float]:
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    for _ in range(steps):
        loss, n, logs = student.compute_loss(batch)
        if "kl:num" in logs:
            total = logs["loss_ctc:num"] + student.distill_weight * logs["kl:num"] * n / logs["kl:den"]
            assert float(loss.detach()) == pytest.approx(total, rel=1e-4)
        (loss / n).backward()
        opt.step()
        opt.zero_grad()
    return logs


def test_training_with_a_teacher_adds_the_kl_and_moves_towards_it() -> None:
    teacher_model = _ctc(1)
    teacher = CTCTeacher(teacher_model, where="t")
    before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    batch = _batch([50, 44, 38])
    distilled, plain = _ctc(0), _ctc(0)
    distilled.set_teacher(teacher, 5.0)
    logs = _train(distilled, batch)
    _train(plain, batch)
    assert logs["kl:den"] == 50 + 44 + 38
    assert all(torch.equal(v, teacher_model.state_dict()[k]) for k, v in before.items())
    kl = {}
    for name, model in (("distilled", distilled), ("plain", plain)):
        model.set_teacher(teacher, 1.0)
        kl[name] = model.compute_loss(batch)[2]["kl:num"]
    assert kl["distilled"] < kl["plain"] / 2
    distilled.eval()
    _, _, logs = distilled.compute_loss(batch)  # validation: CTC alone
    assert "kl:num" not in logs


def test_weight_zero_is_plain_ctc() -> None:
    student, plain = _ctc(0), _ctc(0)
    student.set_teacher(CTCTeacher(_ctc(1), where="t"), 0.0)
    batch = _batch([30, 20])
    assert float(student.compute_loss(batch)[0]) == pytest.approx(float(plain.compute_loss(batch)[0]), rel=1e-6)


def test_a_teacher_with_another_tokenizer_is_refused() -> None:
    other = _ctc(1, [*TEXTS, "zebra quiz jumps over"])
    with pytest.raises(UserError, match="tokenizer differs"):
        _ctc(0).set_teacher(CTCTeacher(other, where="other"))


def test_attach_teacher_from_init_and_from_a_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokenizer = train_tokenizer(TEXTS, vocab_size=1000)
    torch.manual_seed(1)
    saved = save_finetuned(
        FinetunedModel(tiny_av_encoder(), tokenizer, FinetunedConfig(head="ctc", modality="a"),
                       data_config={"crop_size": 24, "image_size": None}).eval(),
        tmp_path / "teacher",
    )
    student = _ctc(0)
    cfg = FinetuneConfig(head="ctc")
    attach_teacher(cfg, student, saved, torch.device("cpu"))  # distill.teacher None: nothing
    assert student.__dict__["_teacher"] is None
    cfg.distill.teacher, cfg.distill.weight = "init", 0.5
    with caplog.at_level(logging.INFO):
        attach_teacher(cfg, student, saved, torch.device("cpu"))
    assert student.distill_weight == 0.5 and "distillation from" in caplog.text
    ref = load_finetuned(saved)
    teacher = student.__dict__["_teacher"].model
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in teacher.state_dict().items())
    cfg.distill.teacher = str(tmp_path / "missing")
    with pytest.raises(UserError, match="is not a fine-tuned model directory"):
        attach_teacher(cfg, student, saved, torch.device("cpu"))


class _DroppingEncoder(FrameEncoder):
    """FrameEncoder reporting a fixed modality-dropout draw: row 0 both, row 1 audio alone,
    row 2 video alone, row 3 both."""

    class cfg:  # noqa: N801
        class modality_dropout:  # noqa: N801
            clean_audio_alone = True

    def forward(self, *args, clean_audio=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
        out = super().forward(*args, **kwargs)
        out.keep_audio = torch.tensor([True, True, False, True])
        out.keep_video = torch.tensor([True, False, True, True])
        return out


def test_clean_audio_rows_are_those_that_heard_it() -> None:
    """rows=clean_audio: a row counts when its audio was used and was clean (no training
    noise, or audio alone under clean_audio_alone)."""
    torch.manual_seed(0)
    cfg = FinetunedConfig(head="ctc")
    student = FinetunedModel(_DroppingEncoder(), train_tokenizer(TEXTS, vocab_size=1000), cfg)
    batch = _batch([30, 30, 30, 30])
    batch.clean_audio = batch.audio.clone()
    batch.audio = batch.audio.clone()
    batch.audio[0] += 1.0  # noisy, both streams: out
    batch.audio[1] += 1.0  # noisy but audio alone, heard clean: in
    batch.audio[2] += 1.0  # video alone: out
    enc = student.encode(batch)  # row 3: clean, both streams: in
    assert student._heard_clean_audio(batch, enc).tolist() == [False, True, False, True]
    student.set_teacher(CTCTeacher(_ctc(1), where="t"), 1.0, "clean_audio")
    student.train()
    _, _, logs = student.compute_loss(batch)
    assert logs["kl:den"] == 2 * 30


def test_audio_alone_rows_are_scaled() -> None:
    """audio_alone_scale: the row that modality dropout left with audio alone counts that many
    times in the KL (scale 0 leaves it out); the others once; a scale of 1 gives the unscaled loss."""
    batch = _batch([30, 30, 30, 30])
    batch.clean_audio = batch.audio.clone()
    losses = {}
    for scale in (0.0, 1.0, 3.0):
        torch.manual_seed(0)
        student = FinetunedModel(_DroppingEncoder(), train_tokenizer(TEXTS, vocab_size=1000), FinetunedConfig(head="ctc"))
        student.set_teacher(CTCTeacher(_ctc(1), where="t"), 1.0, audio_alone_scale=scale)
        student.train()
        enc = student.encode(batch)
        scales = student._distill_row_scale(enc)
        assert (scales is None) if scale == 1.0 else scales.tolist() == [1.0, scale, 1.0, 1.0]
        losses[scale] = student.compute_loss(batch)[2]["kl:num"]
    alone_row = losses[1.0] - losses[0.0]
    assert alone_row > 0 and losses[3.0] == pytest.approx(losses[1.0] + 2.0 * alone_row, rel=1e-5)
