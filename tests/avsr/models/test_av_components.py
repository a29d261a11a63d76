"""Lip encoder (AV-HuBERT weight import), filterbank front end, span masks, modality dropout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from avsr.models.av.dropout import draw_modality, modality_keep_flags
from avsr.models.av.fbank import FbankFrontend, LogMelFilterbank, fbank_frames, stacked_frames
from avsr.models.av.fusion import Fusion, align_mask, align_video
from avsr.models.av.masking import expected_mask_fraction, span_mask
from avsr.models.av.visual import LipEncoder, import_avhubert_visual, load_avhubert_visual

# --------------------------------------------------------------------------- reference layout
# A module written for this test with AV-HuBERT's visual parameter layout
# (ResEncoder: frontend3D = [Conv3d, BatchNorm3d, PReLU, MaxPool3d]; trunk =
# layer1..layer4 of BasicBlocks with conv1/bn1/relu1/conv2/bn2/relu2/downsample).


class _RefBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.PReLU(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + res)


class _RefTrunk(nn.Module):
    def __init__(self, c0: int, widths: list[int]) -> None:
        super().__init__()
        cin = c0
        for i, w in enumerate(widths):
            s = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(_RefBlock(cin, w, s), _RefBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).view(x.size(0), -1)


class _RefResEncoder(nn.Module):
    def __init__(self, c0: int, widths: list[int]) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, c0, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(c0),
            nn.PReLU(c0),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.trunk = _RefTrunk(c0, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) -> (B, C, T) as AV-HuBERT returns it."""
        b, _, t = x.shape[:3]
        x = self.frontend3D(x)
        x = x.transpose(1, 2).reshape(b * t, x.shape[1], x.shape[3], x.shape[4])
        return self.trunk(x).view(b, t, -1).transpose(1, 2)


def _randomise(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)


@pytest.mark.parametrize(
    "prefix",
    ["feature_extractor_video.resnet.", "encoder.w2v_model.feature_extractor_video.resnet.", ""],
)
def test_avhubert_visual_import_reproduces_reference(prefix: str) -> None:
    widths = [8, 16, 32, 64]
    ref = _RefResEncoder(8, widths).eval()
    _randomise(ref, 0)
    full = {prefix + k: v for k, v in ref.state_dict().items()}
    # other AV-HuBERT tensors that must be ignored
    full["feature_extractor_video.proj.weight"] = torch.zeros(3, 64)
    full["feature_extractor_audio.proj.weight"] = torch.zeros(3, 104)
    full["encoder.layers.0.fc1.weight"] = torch.zeros(2, 2)
    ours = LipEncoder(stem_channels=8, widths=widths).eval()
    load_avhubert_visual(ours, full)
    x = torch.randn(2, 1, 5, 44, 44)
    with torch.no_grad():
        want = ref(x).transpose(1, 2)
        got = ours(x)
    assert got.shape == (2, 5, 64)
    assert torch.equal(got, want)


def test_full_size_lip_encoder_names_and_shape() -> None:
    ref = _RefResEncoder(64, [64, 128, 256, 512])
    ours = LipEncoder()
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert set(
        import_avhubert_visual(
            {"feature_extractor_video.resnet." + k: v for k, v in ref.state_dict().items()}
        )
    ) == set(ref.state_dict())
    n = sum(p.numel() for p in ours.parameters())
    assert 11.0e6 < n < 11.5e6  # ResNet-18 trunk + 3D stem
    with torch.no_grad():
        assert ours.eval()(torch.zeros(1, 1, 2, 88, 88)).shape == (1, 2, 512)


def test_import_rejects_wrong_widths_and_missing_weights() -> None:
    ref = _RefResEncoder(8, [8, 16, 32, 64])
    with pytest.raises(ValueError, match="shape"):
        load_avhubert_visual(LipEncoder(stem_channels=8, widths=[8, 16, 32, 32]), ref.state_dict())
    with pytest.raises(KeyError):
        import_avhubert_visual({"encoder.layers.0.fc1.weight": torch.zeros(1)})


def test_frozen_batchnorm_stays_in_eval_mode() -> None:
    enc = LipEncoder(stem_channels=4, widths=[4, 4, 8, 8])
    enc.freeze_bn = True
    enc.train()
    bns = [m for m in enc.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = bns[0].running_mean.clone()
    enc(torch.randn(2, 1, 3, 24, 24))
    assert torch.equal(before, bns[0].running_mean)


# --------------------------------------------------------------------------- filterbank


def test_fbank_shapes_and_rate() -> None:
    fe = FbankFrontend(32)
    wav = torch.randn(2, 16000)
    lens = torch.tensor([16000, 8000])
    feats, out_lens = fe(wav, lens)
    t100 = fbank_frames(16000)
    assert t100 == 98
    assert feats.shape == (2, math.ceil(t100 / 4), 32)
    assert out_lens.tolist() == [stacked_frames(16000), stacked_frames(8000)] == [25, 12]
    assert fe.feature_dim == 104


def test_log_mel_peak_follows_tone_frequency() -> None:
    fb = LogMelFilterbank(26)
    t = torch.arange(16000) / 16000
    peaks = []
    for f in (300.0, 1000.0, 4000.0):
        mel = fb(torch.sin(2 * math.pi * f * t)[None])[0]
        peaks.append(int(mel.mean(0).argmax()))
    assert peaks[0] < peaks[1] < peaks[2]
    assert fb.fb.shape == (26, 257)


# --------------------------------------------------------------------------- masks / dropout


@pytest.mark.parametrize(
    "n,prob,span", [(100, 0.8, 10), (50, 0.3, 5), (40, 0.65, 10), (12, 0.3, 5)]
)
def test_mask_proportion_matches_expectation(n: int, prob: float, span: int) -> None:
    rng = np.random.default_rng(0)
    draws = np.stack([span_mask(n, n + 7, prob, span, 2, rng) for _ in range(4000)])
    assert not draws[:, n:].any()  # padding never masked
    measured = draws[:, :n].mean()
    want = expected_mask_fraction(n, prob, span, 2)
    assert abs(measured - want) < 0.01, (measured, want)
    # every row has at least min_masks spans' worth of frames (overlap aside, >= span)
    assert draws[:, :n].sum(1).min() >= min(span, n)


def test_mask_fraction_examples() -> None:
    # audio defaults: ~8 spans of 10 on 100 frames cover about 55 % (overlaps)
    assert 0.5 < expected_mask_fraction(100, 0.8, 10, 2) < 0.6
    assert expected_mask_fraction(100, 0.0, 10, 2) == 0.0


def test_modality_dropout_rates() -> None:
    rng = np.random.default_rng(1)
    flags = np.array([draw_modality(rng, 0.5, 0.5) for _ in range(40000)])
    audio_dropped = (~flags[:, 0]).mean()
    video_dropped = (~flags[:, 1]).mean()
    assert abs(audio_dropped - 0.25) < 0.01 and abs(video_dropped - 0.25) < 0.01
    assert not (~flags[:, 0] & ~flags[:, 1]).any()
    flags = np.array([draw_modality(rng, 0.4, 0.75) for _ in range(40000)])
    assert abs((~flags[:, 0]).mean() - 0.3) < 0.01 and abs((~flags[:, 1]).mean() - 0.1) < 0.01
    assert modality_keep_flags("a") == (True, False) and modality_keep_flags("v") == (False, True)
    with pytest.raises(ValueError):
        modality_keep_flags("x")


# --------------------------------------------------------------------------- fusion


def test_video_alignment_repeat_trim_pad() -> None:
    v = torch.arange(3.0).view(1, 3, 1)
    assert align_video(v, 5, 2)[0, :, 0].tolist() == [0, 0, 1, 1, 2]
    assert align_video(v, 8, 2)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 0, 0]
    assert align_video(v, 2, 1)[0, :, 0].tolist() == [0, 1]
    m = torch.tensor([[True, False, True]])
    assert align_mask(m, 7, 2)[0].tolist() == [True, True, False, False, True, True, False]


def test_fusion_identity_init_passes_normalised_audio() -> None:
    fus = Fusion(6, "concat")
    a, v = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    out = fus(a, v)
    ln = nn.functional.layer_norm(torch.cat([a, v], -1), (12,))[..., :6]
    assert torch.allclose(out, ln, atol=1e-6)
    assert Fusion(6, "add")(a, v).shape == (2, 4, 6)
    with pytest.raises(ValueError):
        Fusion(6, "gate")


def test_per_modality_fusion_keeps_the_audio_half_when_video_appears() -> None:
    """norm=per_modality: f(a, v) - f(a, 0) depends on v only (the video enters as an
    added term); with the joint LayerNorm a zeroed video rescales the audio half."""
    torch.manual_seed(0)
    a1, a2, v = torch.randn(2, 4, 6), torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    zero = torch.zeros_like(v)
    fus = Fusion(6, "concat", norm="per_modality", init_audio_identity=False)
    d1, d2 = fus(a1, v) - fus(a1, zero), fus(a2, v) - fus(a2, zero)
    torch.testing.assert_close(d1, d2)
    ident = Fusion(6, "concat", norm="per_modality")  # identity init: normalised audio
    torch.testing.assert_close(ident(a1, v), nn.functional.layer_norm(a1, (6,)), atol=1e-6, rtol=0)
    joint = Fusion(6, "concat", init_audio_identity=False)
    assert not torch.allclose(joint(a1, v) - joint(a1, zero), joint(a2, v) - joint(a2, zero), atol=1e-3)
    assert {n for n, _ in fus.named_parameters()} == {
        "audio_norm.weight", "audio_norm.bias", "video_norm.weight", "video_norm.bias", "proj.weight", "proj.bias"
    }
    with pytest.raises(ValueError, match="concat"):
        Fusion(6, "add", norm="per_modality")
