"""AVEncoder: shapes for A / V / AV input, CNN and filterbank front ends, modality
dropout through the model, stage-0 equivalence with XLS-R, AV checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.config import ConfigError, to_dict
from avsr.data.batch import AVBatch
from avsr.errors import UserError
from avsr.models.av.config import FusionSection, LossSection, av_config_from_dict
from avsr.models.av.io import (
    load_av_encoder,
    load_av_pretrain_model,
    save_av_model,
    save_stage0_encoder,
)
from avsr.models.av.model import AVPretrainModel, _instance_norm, row_rngs
from avsr.models.encoders import load_encoder, save_encoder
from avsr.step_output import StepOutput
from tests.helpers.tiny_models import tiny_av_config, tiny_av_encoder, tiny_xlsr


def _inputs(
    b: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.tensor([20, 15, 9][:b])
    audio_lens = frames * 640
    audio = torch.randn(b, int(audio_lens.max()), generator=g)
    for i, n in enumerate(audio_lens.tolist()):
        audio[i, n:] = 0
    video = torch.randn(b, 1, int(frames.max()), 24, 24, generator=g)
    return audio, audio_lens, video, frames


@pytest.mark.parametrize("modality", ["av", "a", "v"])
def test_shapes_cnn_frontend(modality: str) -> None:
    enc = tiny_av_encoder().eval()
    audio, alens, video, vlens = _inputs()
    out = enc(audio, alens, video, vlens, modality=modality)
    want_lens = [enc.xlsr.frame_count(int(n)) for n in alens]
    assert enc.frame_rate == 50 and enc.model_dim == 128
    assert out.feats.shape == (3, max(want_lens), 128)
    assert out.lens.tolist() == want_lens
    assert out.padding_mask.tolist() == [[t >= n for t in range(max(want_lens))] for n in want_lens]
    assert out.mask is None
    assert out.keep_audio.tolist() == [modality != "v"] * 3
    assert out.keep_video.tolist() == [modality != "a"] * 3


@pytest.mark.parametrize("modality", ["av", "a", "v"])
def test_shapes_fbank_frontend_runs_at_25_hz(modality: str) -> None:
    enc = tiny_av_encoder(audio_frontend="fbank").train()
    assert enc.frame_rate == 25 and enc.xlsr.frontend.feature_extractor is None
    audio, alens, video, vlens = _inputs()
    out = enc(audio, alens, video, vlens, modality=modality, apply_mask=True)
    assert out.feats.shape == (3, 20, 128)  # ceil(((12800-400)//160+1)/4): one per video frame
    assert out.lens.tolist() == [20, 15, 9]
    assert out.mask is not None and out.mask.shape == (3, 20)
    assert not (out.mask & out.padding_mask).any()


def test_input_modes_ignore_the_dropped_stream() -> None:
    enc = tiny_av_encoder().eval()
    audio, alens, video, vlens = _inputs()
    audio2 = torch.randn_like(audio) * (audio != 0)
    video2 = torch.randn_like(video)
    with torch.no_grad():
        a1 = enc(audio, alens, video, vlens, modality="a").feats
        a2 = enc(audio, alens, video2, vlens, modality="a").feats
        a3 = enc(audio, alens, None, vlens, modality="a").feats
        v1 = enc(audio, alens, video, vlens, modality="v").feats
        v2 = enc(audio2, alens, video, vlens, modality="v").feats
        v3 = enc(None, alens, video, vlens, modality="v").feats
        av1 = enc(audio, alens, video, vlens).feats
        av2 = enc(audio, alens, video2, vlens).feats
    assert torch.equal(a1, a2) and torch.equal(a1, a3)
    assert torch.equal(v1, v2) and torch.equal(v1, v3)
    assert not torch.allclose(av1, av2)
    with pytest.raises(ValueError):
        enc(audio, alens, None, vlens, modality="av")


def test_modality_dropout_rate_through_the_model() -> None:
    enc = tiny_av_encoder().train()
    b = 8
    audio, alens = torch.randn(b, 1920), torch.full((b,), 1920)
    video, vlens = torch.randn(b, 1, 3, 24, 24), torch.full((b,), 3)
    ids = [str(i) for i in range(b)]
    keep_a, keep_v = [], []
    for step in range(50):
        out = enc(audio, alens, video, vlens, rngs=row_rngs(ids, 3, step))
        keep_a += out.keep_audio.tolist()
        keep_v += out.keep_video.tolist()
    keep_a, keep_v = np.array(keep_a), np.array(keep_v)
    # p = 0.5, audio share 0.5: 25 % audio dropped, 25 % video dropped, never both
    assert abs((~keep_a).mean() - 0.25) < 0.065 and abs((~keep_v).mean() - 0.25) < 0.065
    assert (keep_a | keep_v).all()
    # eval / explicit off: nothing dropped
    out = enc.eval()(audio, alens, video, vlens)
    assert out.keep_audio.all() and out.keep_video.all()


def _run_seeded(enc: torch.nn.Module, audio: torch.Tensor, clean: torch.Tensor | None, rngs_step: int) -> object:
    b = audio.shape[0]
    torch.manual_seed(0)  # the encoder's own dropout draws the same in every call
    ids = [str(i) for i in range(b)]
    video = torch.ones(b, 1, 3, 24, 24)
    lens = torch.full((b,), audio.shape[1])
    return enc(audio, lens, video, torch.full((b,), 3), rngs=row_rngs(ids, 5, rngs_step), clean_audio=clean)


@pytest.mark.parametrize("on", [True, False])
def test_clean_audio_alone_feeds_audio_only_rows_their_clean_audio(on: bool) -> None:
    from avsr.models.av.config import ModalityDropoutSection

    enc = tiny_av_encoder(modality_dropout=ModalityDropoutSection(p=0.8, audio_share=0.3, clean_audio_alone=on))
    enc.train()
    b = 8
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(b, 1920, generator=g)
    noisy = clean + torch.randn(b, 1920, generator=g)
    out = _run_seeded(enc, noisy, clean, 0)
    alone = out.keep_audio & ~out.keep_video  # type: ignore[attr-defined]
    assert alone.any() and out.keep_video.any()  # type: ignore[attr-defined]
    # the audio each row should have seen: clean on the audio-only rows (only when on)
    expect_in = torch.where(alone[:, None], clean, noisy) if on else noisy
    want = _run_seeded(enc, expect_in, None, 0)
    assert torch.equal(out.feats, want.feats)  # type: ignore[attr-defined]
    if on:  # and it differs from feeding the noise everywhere
        assert not torch.equal(out.feats, _run_seeded(enc, noisy, None, 0).feats)  # type: ignore[attr-defined]
    # evaluation: no dropout drawn, the clean audio is not used
    enc.eval()
    with torch.no_grad():
        assert torch.equal(_run_seeded(enc, noisy, clean, 0).feats, _run_seeded(enc, noisy, None, 0).feats)  # type: ignore[attr-defined]


def test_masks_are_a_function_of_clip_and_step() -> None:
    enc = tiny_av_encoder().train()
    audio, alens, video, vlens = _inputs()
    ids = ["a", "b", "c"]
    m1 = enc(audio, alens, video, vlens, apply_mask=True, rngs=row_rngs(ids, 1, 5)).mask
    # the same clip alone in its batch (another process) draws the same mask
    m2 = enc(
        audio[1:2, : int(alens[1])],
        alens[1:2],
        video[1:2, :, : int(vlens[1])],
        vlens[1:2],
        apply_mask=True,
        rngs=row_rngs(ids[1:2], 1, 5),
    ).mask
    assert m1 is not None and m2 is not None
    assert torch.equal(m1[1, : m2.shape[1]], m2[0])
    m3 = enc(audio, alens, video, vlens, apply_mask=True, rngs=row_rngs(ids, 1, 6)).mask
    assert not torch.equal(m1, m3)
    frac = m1[~enc(audio, alens, video, vlens).padding_mask].float().mean()
    assert 0.3 < float(frac) < 0.95


def test_audio_only_model_is_an_xlsr_encoder(tmp_path: Path) -> None:
    enc = tiny_av_encoder(modalities=["audio"]).eval()
    assert enc.visual is None and enc.fusion is None
    audio, alens, _, _ = _inputs()
    with torch.no_grad():
        ours = enc(audio, alens, None, None, modality="a").feats
        theirs, lens = enc.xlsr(audio, alens, normalize=True)
    assert torch.allclose(
        ours * (~enc(audio, alens, None, None).padding_mask[..., None]), theirs, atol=1e-5
    )
    save_stage0_encoder(enc, tmp_path / "stage0")
    loaded = load_encoder(tmp_path / "stage0")
    with torch.no_grad():
        again, _ = loaded(audio, alens, normalize=True)
    assert torch.equal(again, theirs)
    with pytest.raises(ValueError):
        save_stage0_encoder(tiny_av_encoder(), tmp_path / "nope")


@pytest.mark.parametrize("frontend", ["cnn", "fbank"])
def test_av_checkpoint_round_trip(tmp_path: Path, frontend: str) -> None:
    enc = tiny_av_encoder(audio_frontend=frontend).eval()
    audio, alens, video, vlens = _inputs()
    save_av_model(enc, tmp_path / "av")
    loaded = load_av_encoder(tmp_path / "av")
    assert loaded.cfg == enc.cfg
    with torch.no_grad():
        assert torch.equal(
            enc(audio, alens, video, vlens).feats, loaded(audio, alens, video, vlens).feats
        )


def test_load_av_encoder_from_a_plain_encoder(tmp_path: Path) -> None:
    xlsr = tiny_xlsr()
    save_encoder(xlsr, tmp_path / "enc")
    enc = load_av_encoder(tmp_path / "enc", tiny_av_config())
    assert enc.visual is not None
    for k, v in xlsr.state_dict().items():
        assert torch.equal(enc.xlsr.state_dict()[k], v)
    with pytest.raises(UserError):
        load_av_encoder(tmp_path / "missing")


def test_pretrain_model_checkpoint_keeps_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = AVPretrainModel(tiny_av_encoder(), 12)
    save_av_model(model, tmp_path / "pt")
    again = load_av_pretrain_model(tmp_path / "pt")
    assert again.num_units == 12
    assert torch.equal(again.head.label_embs, model.head.label_embs)
    other = load_av_pretrain_model(tmp_path / "pt", num_units=7)
    assert other.head.label_embs.shape[0] == 7
    # an AV dir whose architecture does not fit the requested config is refused
    with pytest.raises(UserError, match="do not fit"):
        load_av_encoder(tmp_path / "pt", tiny_av_config(fusion=FusionSection(kind="add")))


def _batch(b: int = 3, units: int = 12, seed: int = 0) -> AVBatch:
    audio, alens, video, vlens = _inputs(b, seed)
    n_units = [enc_frames for enc_frames in (alens // 320 - 1).tolist()]
    g = torch.Generator().manual_seed(seed)
    tgt = torch.full((b, max(n_units)), -100, dtype=torch.long)
    for i, n in enumerate(n_units):
        tgt[i, :n] = torch.randint(0, units, (n,), generator=g)
    return AVBatch(
        ids=[f"clip{i}" for i in range(b)],
        indices=torch.arange(b),
        audio=audio,
        audio_lens=alens,
        video=video,
        video_lens=vlens,
        units=tgt,
        unit_lens=torch.tensor(n_units),
    )


@pytest.mark.parametrize("frontend", ["cnn", "fbank"])
def test_pretrain_step_loss_logs_and_gradients(frontend: str) -> None:
    torch.manual_seed(0)
    model = AVPretrainModel(tiny_av_encoder(audio_frontend=frontend), 12).train()
    batch = _batch()
    model.set_num_updates(3)
    out = model(batch)
    logs = out.logs
    assert torch.isfinite(out.loss) and out.loss.requires_grad
    assert out.sample_size == logs["n_masked"] == logs["acc_masked:den"] > 0
    assert logs["n_unmasked"] > 0 and 0 <= logs["acc_masked:num"] <= logs["n_masked"]
    # the loss is the summed CE of the masked frames (chance level ~ log 12 per frame at init)
    assert out.loss.item() == pytest.approx(logs["loss_masked:num"], rel=1e-5)
    assert 1.0 < out.loss.item() / out.sample_size < 6.0
    frames = out.sample_size + logs["n_unmasked"]
    rate = 25 if frontend == "fbank" else 50
    assert frames <= sum(int(n) * rate // 25 for n in batch.video_lens)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["encoder.visual.frontend3D.0.weight"] is not None
    assert grads["head.label_embs"] is not None and grads["encoder.xlsr.mask_emb"].abs().sum() > 0
    # same update, same clips -> same masks; next update -> new masks
    model.zero_grad()
    again = model(batch)
    assert again.logs["n_masked"] == logs["n_masked"]
    model.set_num_updates(4)
    assert model(batch).logs["n_masked"] != logs["n_masked"] or model(batch).loss != out.loss
    # evaluation: fixed masks per clip, no modality dropout
    model.eval()
    with torch.no_grad():
        e1, e2 = model(batch), model(batch)
    assert e1.loss == e2.loss and not e1.loss.requires_grad


def test_unmasked_weight_adds_unmasked_frames() -> None:
    torch.manual_seed(0)
    model = AVPretrainModel(
        tiny_av_encoder(loss=LossSection(masked_weight=1.0, unmasked_weight=0.5)), 12
    ).train()
    out = model(_batch())
    assert out.sample_size == out.logs["n_masked"] + out.logs["n_unmasked"]
    want = out.logs["loss_masked:num"] + 0.5 * out.logs["loss_unmasked:num"]
    assert out.loss.item() == pytest.approx(want, rel=1e-5)


def test_saved_configs_with_removed_fields_still_load() -> None:
    old = to_dict(tiny_av_config())
    old["visual"]["sync_bn"] = False  # a field of earlier versions
    assert av_config_from_dict(old) == tiny_av_config()
    old["visual"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        av_config_from_dict(old)


def test_encoder_overrides_on_load(tmp_path: Path) -> None:
    """Fine-tuning's ``model.encoder_overrides`` reach the loaded encoder, weights unchanged."""
    enc = tiny_av_encoder().eval()
    save_av_model(enc, tmp_path / "av")
    loaded = load_av_encoder(tmp_path / "av", encoder_overrides={"dropout": 0.3})
    assert loaded.xlsr.config.dropout == 0.3 and enc.xlsr.config.dropout != 0.3
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(UserError, match="no_such_field"):
        load_av_encoder(tmp_path / "av", encoder_overrides={"no_such_field": 1})


def test_add_fusion_starts_with_the_audio_path_undisturbed() -> None:
    """``add`` fusion with ``init_audio_identity``: the lip projection starts at zero, so a fresh
    AV model gives the same features with and without video (the lips' share is learned)."""
    enc = tiny_av_encoder(fusion=FusionSection(kind="add")).eval()
    assert enc.video_proj is not None and not enc.video_proj.weight.any() and not enc.video_proj.bias.any()
    audio, alens, video, vlens = _inputs()
    with torch.no_grad():
        a = enc(audio, alens, video, vlens, modality="a").feats
        av = enc(audio, alens, video, vlens, modality="av").feats
    assert torch.allclose(a, av)
    concat = tiny_av_encoder(fusion=FusionSection(kind="concat"))
    assert concat.video_proj is not None and concat.video_proj.weight.any()  # concat: the fusion's video half is zero instead


def _lipreg_step(weight: float, clean: torch.Tensor | None = None) -> tuple[AVPretrainModel, StepOutput]:
    torch.manual_seed(0)
    model = AVPretrainModel(
        tiny_av_encoder(
            fusion=FusionSection(kind="add"), loss=LossSection(lip_regression_weight=weight)
        ),
        12,
    ).train()
    torch.nn.init.normal_(model.encoder.video_proj.weight, std=0.1)  # add fusion starts it at 0
    batch = _batch()
    batch.clean_audio = clean
    model.set_num_updates(3)
    return model, model(batch)


def test_lip_regression_adds_weighted_error_and_trains_only_the_lips() -> None:
    """loss = CE + weight x lipreg; the audio features are a fixed target (no gradient
    from the regression); the clean audio, when given, is the target."""
    base_model, base = _lipreg_step(0.0)
    model, out = _lipreg_step(2.0)
    logs = out.logs
    assert "lipreg:num" not in base.logs
    # every frame with video is a regression frame (no row's video is longer than its audio here)
    assert logs["lipreg:den"] == logs["n_masked"] + logs["n_unmasked"]
    assert out.loss.item() == pytest.approx(base.loss.item() + 2.0 * logs["lipreg:num"], rel=1e-5)
    assert 0 < logs["lipreg:num"] / logs["lipreg:den"]
    base.loss.backward()
    out.loss.backward()
    grads = dict(model.named_parameters())
    for name, p in base_model.named_parameters():
        if name.startswith("encoder.xlsr.frontend") or name.startswith("encoder.xlsr.post_extract"):
            assert p.grad is None or torch.equal(p.grad, grads[name].grad), name
    base_grad = dict(base_model.named_parameters())["encoder.visual.frontend3D.0.weight"].grad
    assert base_grad is not None
    assert not torch.equal(base_grad, grads["encoder.visual.frontend3D.0.weight"].grad)
    # the clean audio is the target: other clean audio, same CE, another regression error
    _, other = _lipreg_step(2.0, clean=torch.randn_like(_batch().audio))
    assert other.logs["loss_masked:num"] == pytest.approx(logs["loss_masked:num"], rel=1e-6)
    assert other.logs["lipreg:num"] != pytest.approx(logs["lipreg:num"], rel=1e-3)


def _consistency_step(
    weight: float, clean: torch.Tensor | None = None, *, all_blocks: bool = False, instance_norm: bool = False
) -> tuple[AVPretrainModel, StepOutput]:
    torch.manual_seed(0)
    loss = LossSection(
        consistency_weight=weight, consistency_all_blocks=all_blocks, consistency_instance_norm=instance_norm
    )
    model = AVPretrainModel(tiny_av_encoder(fusion=FusionSection(kind="add"), loss=loss), 12).train()
    batch = _batch()
    batch.clean_audio = clean
    model.set_num_updates(3)
    return model, model(batch)


def test_consistency_adds_weighted_error_towards_the_clean_audio_alone() -> None:
    """loss = CE + weight x consist over the unmasked frames; the target is the encoder's
    output on the clean audio alone (no gradient); every block's output with all_blocks."""
    _, base = _consistency_step(0.0)
    model, out = _consistency_step(2.0)
    logs = out.logs
    assert "consist:num" not in base.logs
    assert logs["consist:den"] == logs["n_unmasked"] > 0
    assert logs["loss_masked:num"] == pytest.approx(base.logs["loss_masked:num"], rel=1e-6)
    assert out.loss.item() == pytest.approx(base.loss.item() + 2.0 * logs["consist:num"], rel=1e-5)
    assert logs["consist:num"] > 0
    clean = torch.randn_like(_batch().audio)
    targets = model._clean_audio_targets(clean, _batch().audio_lens, all_blocks=True)
    assert len(targets) == len(model.encoder.xlsr.encoder.layers) + 1
    assert not any(t.requires_grad for t in targets) and model.training and model.encoder.training
    _, other = _consistency_step(2.0, clean=clean)
    assert other.logs["loss_masked:num"] == pytest.approx(logs["loss_masked:num"], rel=1e-6)
    assert other.logs["consist:num"] != pytest.approx(logs["consist:num"], rel=1e-3)
    _, blocks = _consistency_step(2.0, all_blocks=True)
    assert blocks.logs["consist:den"] == logs["consist:den"]
    assert blocks.logs["consist:num"] != pytest.approx(logs["consist:num"], rel=1e-3)
    blocks.loss.backward()


def test_instance_norm_compares_changes_over_time_not_offset_or_scale() -> None:
    """Per clip and dimension over the selected frames: zero mean and unit variance; a
    per-clip affine copy of a sequence normalises to the same thing; padding is ignored."""
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3)
    sel = torch.ones(2, 7, dtype=torch.bool)
    sel[1, 5:] = False
    y = _instance_norm(x, sel)
    for b, n in ((0, 7), (1, 5)):
        assert y[b, :n].mean(0).abs().max() < 1e-5
        assert y[b, :n].var(0, unbiased=False) == pytest.approx(torch.ones(3), rel=1e-3)
    shifted = x * torch.tensor([[[3.0, 0.5, 2.0]], [[1.5, 4.0, 0.5]]]) + torch.tensor([[[1.0, -2.0, 5.0]]])
    assert torch.allclose(_instance_norm(shifted, sel)[sel], y[sel], atol=1e-4)
    x2 = x.clone()
    x2[1, 5:] = 1e3  # padded frames change nothing where sel is true
    assert torch.allclose(_instance_norm(x2, sel)[sel], y[sel], atol=1e-5)


def test_consistency_with_instance_norm_keeps_the_loss_shape() -> None:
    """With instance_norm the same frames are compared, loss = CE + weight x consist, and
    the error differs from the unnormalised one."""
    _, plain = _consistency_step(2.0)
    _, normed = _consistency_step(2.0, instance_norm=True)
    logs = normed.logs
    assert logs["consist:den"] == plain.logs["consist:den"] > 0
    assert normed.loss.item() == pytest.approx(
        plain.loss.item() + 2.0 * (logs["consist:num"] - plain.logs["consist:num"]), rel=1e-5
    )
    assert logs["consist:num"] != pytest.approx(plain.logs["consist:num"], rel=1e-3)
    normed.loss.backward()


def test_frozen_teacher_keeps_the_starting_encoder_out_of_the_state_dict() -> None:
    """With a frozen teacher the targets stay those of the encoder as it was at
    freeze_teacher(), whatever training does to the encoder; nothing of it is saved."""
    model, _ = _consistency_step(1.0)
    keys = set(model.state_dict())
    model.freeze_teacher()
    assert set(model.state_dict()) == keys
    clean, lens = _batch().audio, _batch().audio_lens
    before = model._clean_audio_targets(clean, lens, all_blocks=False)[0]
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.1)
    after = model._clean_audio_targets(clean, lens, all_blocks=False)[0]
    assert torch.equal(before, after)
    model._teacher = []
    assert not torch.equal(before, model._clean_audio_targets(clean, lens, all_blocks=False)[0])
