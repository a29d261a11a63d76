"""XlsrEncoder shapes, layer convention, padding, normalisation, loader errors, safe unpickling."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import pytest
import torch

from avsr.errors import UserError
from avsr.models.encoders import load_encoder, save_encoder
from avsr.models.state_dicts import KeyMapError, convert_keys
from avsr.models.xlsr import ARCHS, EncoderConfig, arch_config, build_encoder, normalize_waveform
from avsr.models.xlsr.keymaps import fairseq1_table
from tests.helpers.tiny_models import tiny_xlsr


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return tiny_xlsr()


def test_param_counts_on_meta() -> None:
    counts = {
        a: build_encoder(a, device="meta").num_parameters()
        for a in ("xlsr_300m", "xlsr_1b", "xlsr_2b")
    }
    assert round(counts["xlsr_300m"] / 1e6, 2) == 315.44
    assert round(counts["xlsr_1b"] / 1e6, 2) == 962.50
    assert round(counts["xlsr_2b"] / 1e6, 2) == 2159.26


def test_interface(tiny: torch.nn.Module) -> None:
    assert tiny.feature_dim == 64 and tiny.model_dim == 128
    assert tiny.frontend.feature_extractor is not None and tiny.frontend.model_dim_proj is not None
    assert tiny.frontend.layer_norm is None  # pre-LN: no LayerNorm before the blocks
    assert tiny.encoder.layer_norm is not None and len(tiny.encoder.layers) == 4
    assert [tiny.frame_count(n) for n in (0, 399, 400, 719, 720, 16000, 48000)] == [
        0,
        0,
        1,
        1,
        2,
        49,
        149,
    ]
    assert arch_config("xlsr_1b").feature_dim == 512


def test_early_exit_matches_full_pass(tiny: torch.nn.Module) -> None:
    wav = torch.randn(2, 8000)
    lens = torch.tensor([8000, 8000])
    hidden: list[torch.Tensor] = []
    # Reference: run every block by hand and keep each output.
    with torch.no_grad():
        feats, layout = tiny.extract_features(wav, lens)
        x = tiny.project(feats)
        x = tiny.frontend.pos_encoder(x, layout)
        from fairseq2.models.transformer import AttentionBiasCache

        cache = AttentionBiasCache()
        for block in tiny.encoder.layers:
            x = block(x, layout, cache)
            hidden.append(x)
        full = tiny.encoder.layer_norm(x)
        for n in (1, 2, 3, 4):
            out, _ = tiny(wav, lens, layer=n)
            assert torch.equal(out, hidden[n - 1])
        out, _ = tiny(wav, lens)
        assert torch.equal(out, full)
    with pytest.raises(ValueError):
        tiny(wav, lens, layer=5)


def test_padded_item_equals_item_alone(tiny: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(12000, generator=g), torch.randn(5000, generator=g)
    wav = torch.zeros(2, 12000)
    wav[0], wav[1, :5000] = a, b + 7.0  # garbage-free padding, offset to test normalisation
    lens = torch.tensor([12000, 5000])
    with torch.no_grad():
        batch, blens = tiny(wav, lens, layer=3, normalize=True)
        alone, alens = tiny(b[None] + 7.0, torch.tensor([5000]), layer=3, normalize=True)
    assert blens.tolist() == [tiny.frame_count(12000), tiny.frame_count(5000)]
    assert alens.tolist() == [blens[1].item()]
    assert (batch[1, : blens[1]] - alone[0]).abs().max() < 1e-4
    assert batch[1, blens[1] :].abs().max() == 0  # padded frames zeroed


def test_normalize_waveform() -> None:
    wav = torch.zeros(3, 100)
    wav[0] = torch.linspace(-3, 5, 100)
    wav[1, :40] = torch.randn(40) * 4 + 2
    lens = torch.tensor([100, 40, 100])  # item 2: all zeros
    out = normalize_waveform(wav, lens)
    assert abs(out[0].mean().item()) < 1e-5 and abs(out[0].std(unbiased=False).item() - 1) < 1e-4
    assert abs(out[1, :40].mean().item()) < 1e-5 and out[1, 40:].abs().max() == 0
    assert out[2].abs().max() == 0 and torch.isfinite(out).all()


def test_config_roundtrip_and_registry() -> None:
    cfg = arch_config("tiny")
    again = EncoderConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert {"xlsr_300m", "xlsr_1b", "xlsr_2b", "tiny"} <= set(ARCHS)
    with pytest.raises(UserError, match="unknown encoder arch"):
        arch_config("xlsr_9b")


def test_shape_mismatch_lists_keys(tiny: torch.nn.Module, tmp_path: Path) -> None:
    save_encoder(tiny, tmp_path / "enc")
    import yaml

    cfg_path = tmp_path / "enc" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["encoder"]["ffn_dim"] = 200
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(
        UserError, match=r"shape mismatch: encoder\.layers\.0\.ffn\.inner_proj\.weight"
    ):
        load_encoder(tmp_path / "enc")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    for seed in range(50):  # random bytes hit different unpickler failures (IndexError, ...)
        junk.write_bytes(random.Random(seed).randbytes(300))
        with pytest.raises(UserError, match="not a PyTorch checkpoint"):
            load_encoder(junk)
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    with pytest.raises(UserError, match="junk.pt|notes.pt"):
        load_encoder(text)
    with pytest.raises(UserError, match="no such file"):
        load_encoder(tmp_path / "missing.pt")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(UserError, match="neither"):
        load_encoder(tmp_path / "emptydir")
    tensors_only = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, tensors_only)
    with pytest.raises(UserError, match="no 'model' state dict"):
        load_encoder(tensors_only)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "cfg": _Evil()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(UserError, match="refusing to load.*system"):
        load_encoder(path)
    assert not marker.exists()
    # Legacy (non-zip) pickle format too.
    legacy = tmp_path / "evil_legacy.pt"
    torch.save(
        {"model": {"x": torch.zeros(1)}, "cfg": _Evil()},
        legacy,
        _use_new_zipfile_serialization=False,
    )
    with pytest.raises(UserError, match="refusing to load|not a PyTorch checkpoint"):
        load_encoder(legacy)
    assert not marker.exists()
    # A bare pickle stream.
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UserError):
        load_encoder(raw)
    assert not marker.exists()


def test_fairseq_objects_become_inert(tmp_path: Path) -> None:
    """Classes of fairseq/omegaconf in the training state are recorded, never imported."""
    import sys
    import types

    mod = types.ModuleType("fairseq.logging.meters")
    pkg = types.ModuleType("fairseq")
    pkg_logging = types.ModuleType("fairseq.logging")

    class AverageMeter:
        def __init__(self) -> None:
            self.val = 3.0

    AverageMeter.__module__ = "fairseq.logging.meters"
    AverageMeter.__qualname__ = "AverageMeter"
    mod.AverageMeter = AverageMeter  # type: ignore[attr-defined]
    sys.modules.update(
        {"fairseq": pkg, "fairseq.logging": pkg_logging, "fairseq.logging.meters": mod}
    )
    try:
        path = tmp_path / "with_meters.pt"
        torch.save({"model": {"x": torch.zeros(1)}, "extra_state": {"meter": AverageMeter()}}, path)
    finally:
        for name in ("fairseq", "fairseq.logging", "fairseq.logging.meters"):
            sys.modules.pop(name)
    from avsr.models.safe_load import PickledObject, safe_torch_load

    ckpt = safe_torch_load(path)
    meter = ckpt["extra_state"]["meter"]
    assert isinstance(meter, PickledObject) and meter.state == {"val": 3.0}


def test_keymap_unmapped_keys_error() -> None:
    with pytest.raises(KeyMapError, match="encoder.weird"):
        convert_keys({"encoder.weird": 1, "mask_emb": 2}, fairseq1_table())
    out = convert_keys(
        {
            "encoder.pos_conv.0.weight_g": 1,
            "mask_emb": 2,
            "w2v_encoder.w2v_model.encoder.layers.3.fc1.bias": 3,
        },
        fairseq1_table(),
        prefixes=("w2v_encoder.w2v_model.",),
    )
    assert out == {
        "frontend.pos_encoder.conv.weight_g": 1,
        "mask_emb": 2,
        "encoder.layers.3.ffn.inner_proj.bias": 3,
    }


def test_contiguous_cnn_layers_match_fairseq2() -> None:
    """The faster CNN layer forward (avsr.models.xlsr.fast_cnn) gives fairseq2's outputs
    and gradients, and its output is contiguous."""
    from fairseq2.models.wav2vec2.feature_extractor import Wav2Vec2FeatureExtractionLayer

    from avsr.models.xlsr.fast_cnn import ContiguousFeatureExtractionLayer

    torch.manual_seed(0)
    enc = build_encoder("tiny")
    layers = enc.frontend.feature_extractor.layers
    assert all(type(layer) is ContiguousFeatureExtractionLayer for layer in layers)
    wav = torch.randn(3, 1, 4000)

    def run(fast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for p in layers.parameters():
            p.grad = None
        x = wav
        for layer in layers:
            x = layer(x) if fast else Wav2Vec2FeatureExtractionLayer.forward(layer, x)
        (x * torch.linspace(-1, 1, x.shape[-1])).sum().backward()
        return x, [p.grad.clone() for p in layers.parameters()]

    y_fast, g_fast = run(True)
    y_ref, g_ref = run(False)
    assert y_fast.is_contiguous()
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
