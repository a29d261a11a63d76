"""``avsr.models.distill``: the per-frame KL to a CTC teacher over valid frames only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avsr.errors import UserError
from avsr.models.distill import CTCTeacher, ctc_distill_loss


def test_zero_for_the_teachers_own_distribution_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 5, generator=g)
    teacher = F.log_softmax(logits, dim=-1)
    lens = torch.tensor([7, 4])
    kl, frames = ctc_distill_loss(logits, lens, teacher, lens)
    assert frames == 11 and float(kl) == pytest.approx(0.0, abs=1e-5)
    other = torch.randn(2, 7, 5, generator=g)
    kl2, _ = ctc_distill_loss(other, lens, teacher, lens)
    expected = sum(
        float(F.kl_div(F.log_softmax(other[b, :n], -1), teacher[b, :n], log_target=True, reduction="sum"))
        for b, n in enumerate([7, 4])
    )
    assert float(kl2) == pytest.approx(expected, rel=1e-5) and expected > 0


def test_padding_frames_and_frames_past_either_length_do_not_count() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 4, generator=g)
    teacher = F.log_softmax(torch.randn(2, 8, 4, generator=g), dim=-1)  # longer: trimmed
    kl, frames = ctc_distill_loss(logits, torch.tensor([6, 3]), teacher, torch.tensor([5, 8]))
    assert frames == 5 + 3
    changed = logits.clone()
    changed[0, 5:] += 10.0  # past the teacher's 5 frames
    changed[1, 3:] -= 10.0  # past the student's 3 frames
    kl2, _ = ctc_distill_loss(changed, torch.tensor([6, 3]), teacher, torch.tensor([5, 8]))
    assert float(kl2) == pytest.approx(float(kl), rel=1e-6)


def test_mismatched_vocabulary_is_an_error() -> None:
    with pytest.raises(UserError, match="vocabulary must agree"):
        ctc_distill_loss(torch.zeros(1, 3, 5), torch.tensor([3]), torch.zeros(1, 3, 6), torch.tensor([3]))


def test_teacher_must_be_a_ctc_model() -> None:
    class S2S(torch.nn.Module):
        class config:  # noqa: N801
            head = "s2s"

    with pytest.raises(UserError, match="a CTC model is needed"):
        CTCTeacher(S2S(), where="m")


def test_rows_not_selected_do_not_count() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 4, generator=g)
    teacher = F.log_softmax(torch.randn(3, 5, 4, generator=g), dim=-1)
    lens = torch.tensor([5, 4, 3])
    kl, frames = ctc_distill_loss(logits, lens, teacher, lens, rows=torch.tensor([True, False, True]))
    kl0, _ = ctc_distill_loss(logits[[0]], lens[[0]], teacher[[0]], lens[[0]])
    kl2, _ = ctc_distill_loss(logits[[2]], lens[[2]], teacher[[2]], lens[[2]])
    assert frames == 8 and float(kl) == pytest.approx(float(kl0) + float(kl2), rel=1e-6)


def test_row_scale_multiplies_each_rows_frames() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 4, generator=g)
    teacher = F.log_softmax(torch.randn(3, 5, 4, generator=g), dim=-1)
    lens = torch.tensor([5, 4, 3])
    per_row = [float(ctc_distill_loss(logits[[b]], lens[[b]], teacher[[b]], lens[[b]])[0]) for b in range(3)]
    kl, frames = ctc_distill_loss(logits, lens, teacher, lens, row_scale=torch.tensor([1.0, 4.0, 0.5]))
    assert frames == 12
    assert float(kl) == pytest.approx(per_row[0] + 4.0 * per_row[1] + 0.5 * per_row[2], rel=1e-6)
    plain, _ = ctc_distill_loss(logits, lens, teacher, lens)
    ones, _ = ctc_distill_loss(logits, lens, teacher, lens, row_scale=torch.ones(3))
    assert float(ones) == pytest.approx(float(plain), rel=1e-6)
