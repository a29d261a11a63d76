"""Numeric parity of the project's XLS-R encoder with HF transformers' Wav2Vec2,
loaded from an HF dir, from a fairseq1-layout checkpoint and from the project format."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from avsr.models.encoders import load_encoder, save_encoder
from avsr.models.state_dicts import convert_keys
from avsr.models.xlsr import EncoderConfig, build_encoder, keymaps
from avsr.models.xlsr.config import conv_stack
from avsr.models.xlsr.loading import config_from_fairseq1, infer_config
from tests.helpers.fairseq1 import fairseq1_cfg, hf_to_fairseq1
from tests.helpers.hf_models import randomize, tiny_hf_config
from tests.helpers.hf_parity import check_every_layer, hf_hidden, padded_batch

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(tiny_hf_config()).eval()
    randomize(model)
    d = tmp_path_factory.mktemp("hf")
    model.save_pretrained(d)
    return model, d


def test_hf_dir_parity_every_layer(hf_model: tuple[torch.nn.Module, Path]) -> None:
    model, d = hf_model
    enc = load_encoder(d)
    assert enc.config.norm_order == "pre" and enc.config.extractor_norm == "layer"
    wav, lens = padded_batch()
    hidden = hf_hidden(model, wav, lens)
    check_every_layer(enc, hidden, wav, lens)
    # frame counts agree with HF's output lengths
    ref_lens = model._get_feat_extract_output_lengths(lens)
    assert [enc.frame_count(int(n)) for n in lens] == ref_lens.tolist()


def test_fairseq1_layout_parity(hf_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, _ = hf_model
    state = hf_to_fairseq1(model.state_dict())
    state["quantizer.vars"] = torch.zeros(1, 4, 8)  # pretraining-only parts are dropped
    state["final_proj.weight"] = torch.zeros(8, 48)
    ckpt = {"model": state, "cfg": {"model": fairseq1_cfg(model.config)}, "optimizer_history": []}
    path = tmp_path / "xlsr_tiny.pt"
    torch.save(ckpt, path)
    enc = load_encoder(path)
    wav, lens = padded_batch()
    check_every_layer(enc, hf_hidden(model, wav, lens), wav, lens)
    torch.testing.assert_close(enc.mask_emb, model.masked_spec_embed)


def test_fairseq1_args_namespace(hf_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, _ = hf_model
    ckpt = {
        "model": hf_to_fairseq1(model.state_dict()),
        "args": argparse.Namespace(**fairseq1_cfg(model.config)),
    }
    path = tmp_path / "old.pt"
    torch.save(ckpt, path)
    enc = load_encoder(path)
    wav, lens = padded_batch()
    hidden = hf_hidden(model, wav, lens)
    with torch.no_grad():
        feats, _ = enc(wav, lens, layer=2)
    assert (feats[0] - hidden[2][0]).abs().max() < 1e-4


def test_project_roundtrip(hf_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, d = hf_model
    enc = load_encoder(d)
    save_encoder(enc, tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    assert again.config == enc.config
    for (k, a), (k2, b) in zip(enc.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    wav, lens = padded_batch()
    with torch.no_grad():
        a, _ = enc(wav, lens, layer=1)
        b, _ = again(wav, lens, layer=1)
    assert torch.equal(a, b)


def test_for_pretraining_and_ctc_dirs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_hf_config(vocab_size=12)
    for cls in (transformers.Wav2Vec2ForCTC, transformers.Wav2Vec2ForPreTraining):
        m = cls(cfg).eval()
        d = tmp_path / cls.__name__
        m.save_pretrained(d)
        enc = load_encoder(d)
        wav, lens = padded_batch()
        hidden = hf_hidden(m.wav2vec2, wav, lens)
        with torch.no_grad():
            feats, _ = enc(wav, lens)
        assert (feats[0] - hidden[-1][0]).abs().max() < 1e-4


def test_fairseq1_without_config_infers_shape(
    hf_model: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    model, _ = hf_model
    state = hf_to_fairseq1(model.state_dict())
    mapped = convert_keys(state, keymaps.fairseq1_table())
    inferred = infer_config(mapped, num_heads=4)
    declared = config_from_fairseq1(fairseq1_cfg(model.config))
    shape_fields = ("model_dim", "num_layers", "num_heads", "ffn_dim", "conv_layers", "conv_bias")
    shape_fields += ("extractor_norm", "norm_order", "pos_conv_kernel", "pos_conv_groups")
    assert all(getattr(inferred, f) == getattr(declared, f) for f in shape_fields)
    torch.save({"model": state}, tmp_path / "bare.pt")
    enc = load_encoder(tmp_path / "bare.pt")  # heads guessed (1 for width 48): loads, shape-checked
    assert enc.config.model_dim == 48 and enc.config.num_layers == 3


def test_fairseq2_layout(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = EncoderConfig(model_dim=128, num_layers=2, num_heads=2, ffn_dim=64, conv_layers=conv_stack(32),
                        pos_conv_kernel=16, pos_conv_groups=4, dropout=0.0, attn_dropout=0.0)  # fmt: skip
    enc = build_encoder(cfg).eval()
    fs2 = {}
    for k, v in enc.state_dict().items():
        k = (
            "masker.temporal_mask_embed"
            if k == "mask_emb"
            else k.replace("frontend.", "encoder_frontend.", 1)
        )
        fs2[k] = v
    fs2["quantizer.entry_proj.weight"] = torch.zeros(4, 32)
    torch.save({"model": fs2, "model_key": "model"}, tmp_path / "fs2.pt")
    again = load_encoder(tmp_path / "fs2.pt")
    assert again.config.num_heads == 2 and again.config.pos_conv_groups == 4
    wav, lens = padded_batch()
    with torch.no_grad():
        assert torch.equal(enc(wav, lens, layer=2)[0], again(wav, lens, layer=2)[0])
