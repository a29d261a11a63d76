"""The AV model builds and runs one training step with each wav2vec 2.0 family as its audio
side (tiny HF models of each family, loaded through the project's loaders)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avsr.data.batch import AVBatch
from avsr.models.av.config import AVModelConfig, VisualSection
from avsr.models.av.io import load_av_pretrain_model

transformers = pytest.importorskip("transformers")

# post-LN group-norm CNN (wav2vec2 base / large / large-960h) and pre-LN layer-norm CNN
# (large-lv60, XLSR-53, XLS-R, MMS): the two block types of the family
FAMILIES = {
    "w2v2_base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    "xlsr_53_mms": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}


def hf_dir(tmp_path: Path, options: dict[str, object]) -> Path:
    cfg = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        **options,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(cfg).save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


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
    cfg = AVModelConfig(visual=VisualSection(stem_channels=4, widths=[4, 8, 8, 16]))
    cfg.masking.audio_prob = 0.5
    cfg.masking.audio_span = 2
    model = load_av_pretrain_model(hf_dir(tmp_path, FAMILIES[family]), cfg, num_units=5).train()
    xcfg = model.encoder.xlsr.config
    assert xcfg.norm_order == ("pre" if FAMILIES[family]["do_stable_layer_norm"] else "post")
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.set_num_updates(0)
    out = model(av_batch())
    assert torch.isfinite(out.loss) and out.sample_size > 0
    out.loss.backward()
    opt.step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    # the audio encoder (CNN, blocks), the lip encoder and the fusion all learn
    assert any(k.startswith("encoder.xlsr.frontend.feature_extractor") for k in changed)
    assert any(k.startswith("encoder.xlsr.encoder.layers.1") for k in changed)
    assert any(k.startswith("encoder.visual") for k in changed)
    assert any(k.startswith("encoder.fusion") for k in changed)
