"""The AV model builds and runs one training step with each encoder family as its audio
side (tiny HF models of each family, loaded through the project's loaders): wav2vec 2.0
post-LN (base / large), pre-LN (XLSR-53 / XLS-R / MMS) and w2v-BERT 2.0 (conformer on a
fixed filterbank: video is fused after its learned feature projection)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.data.batch import AVBatch
from avsr.models.av.io import load_av_pretrain_model, save_av_model
from avsr.models.av.model import AVPretrainModel, build_av_encoder
from tests.helpers.hf_models import POST_LN, PRE_LN, save_tiny_hf
from tests.helpers.tiny_models import tiny_av_config

pytest.importorskip("transformers")

# post-LN group-norm CNN (wav2vec2 base / large / large-960h) and pre-LN layer-norm CNN
# (large-lv60, XLSR-53, XLS-R, MMS): the two block types of the family; None: w2v-BERT 2.0
FAMILIES = {"w2v2_base": POST_LN, "xlsr_53_mms": PRE_LN, "w2vbert": None}


def av_batch() -> AVBatch:
    g = torch.Generator().manual_seed(0)
    frames = torch.tensor([10, 7])
    lens = frames * 640
    audio = torch.randn(2, int(lens.max()), generator=g)
    audio[1, int(lens[1]) :] = 0
    video = torch.randn(2, 1, int(frames.max()), 24, 24, generator=g)
    units = torch.randint(0, 5, (2, int(lens.max()) // 320), generator=g)
    return AVBatch(ids=["a", "b"], indices=torch.arange(2), audio=audio, audio_lens=lens,
                   video=video, video_lens=frames, units=units, unit_lens=lens // 320)  # fmt: skip


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_av_training_step_with_family(family: str, tmp_path: Path) -> None:
    cfg = tiny_av_config()
    cfg.masking.audio_prob = 0.5
    cfg.masking.audio_span = 2
    block = FAMILIES[family]
    model = load_av_pretrain_model(save_tiny_hf(tmp_path / "hf", block), cfg, num_units=5).train()
    if block is None:
        assert model.encoder.xlsr.family == "w2vbert"
    else:
        want = "pre" if block["do_stable_layer_norm"] else "post"
        assert model.encoder.xlsr.config.norm_order == want
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.set_num_updates(0)
    out = model(av_batch())
    assert torch.isfinite(out.loss) and out.sample_size > 0
    out.loss.backward()
    opt.step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    # the audio encoder (front end, blocks), the lip encoder and the fusion all learn
    learned_front = "proj" if family == "w2vbert" else "feature_extractor"
    assert any(k.startswith(f"encoder.xlsr.frontend.{learned_front}") for k in changed)
    assert any(k.startswith("encoder.xlsr.encoder.layers.1") for k in changed)
    assert any(k.startswith("encoder.visual") for k in changed)
    assert any(k.startswith("encoder.fusion") for k in changed)


def test_w2vbert_av_model_from_arch_saves_and_loads(tmp_path: Path) -> None:
    cfg = tiny_av_config()
    cfg.encoder.family = "w2vbert"
    cfg.encoder.arch = "w2vbert_tiny"
    torch.manual_seed(0)
    model = AVPretrainModel(build_av_encoder(cfg), 5).eval()
    assert model.encoder.xlsr.family == "w2vbert" and model.encoder.frame_rate == 50
    save_av_model(model, tmp_path / "av")
    again = load_av_pretrain_model(tmp_path / "av")
    b = av_batch()
    with torch.no_grad():
        x = model.encoder(b.audio, b.audio_lens, b.video, b.video_lens)
        y = again.encoder(b.audio, b.audio_lens, b.video, b.video_lens)
    assert x.lens.tolist() == [enc_frames(int(n)) for n in b.audio_lens]
    torch.testing.assert_close(x.feats, y.feats)


def enc_frames(n: int) -> int:
    return ((n - 400) // 160 + 1) // 2
