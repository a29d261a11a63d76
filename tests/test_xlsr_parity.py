"""Numeric parity of the project's XLS-R encoder with HF transformers' Wav2Vec2,
loaded from an HF dir, from a fairseq1-layout checkpoint and from the project format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from avsr.models.xlsr import load_encoder, save_encoder

transformers = pytest.importorskip("transformers")

SR = 16000


def tiny_hf_config(**kw: object) -> transformers.Wav2Vec2Config:
    base = dict(
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        conv_dim=(32,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.05,
    )
    base.update(kw)
    return transformers.Wav2Vec2Config(**base)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (LayerNorm gains and biases included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


# HF -> fairseq1 names (test-only writer of the fairseq1 layout).
HF_TO_FAIRSEQ1 = [
    (r"masked_spec_embed", "mask_emb"),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.conv\.(.*)",
        r"feature_extractor.conv_layers.\1.0.\2",
    ),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(.*)",
        r"feature_extractor.conv_layers.\1.2.1.\2",
    ),
    (r"feature_projection\.layer_norm\.(.*)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(.*)", r"post_extract_proj.\1"),
    (
        r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0",
        "encoder.pos_conv.0.weight_g",
    ),
    (
        r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1",
        "encoder.pos_conv.0.weight_v",
    ),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.layer_norm\.(.*)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(.*)", r"encoder.layers.\1.self_attn.\2"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(.*)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (
        r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(.*)",
        r"encoder.layers.\1.fc1.\2",
    ),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(.*)", r"encoder.layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(.*)", r"encoder.layers.\1.final_layer_norm.\2"),
]


def hf_to_fairseq1(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pat, repl in HF_TO_FAIRSEQ1:
            m = re.fullmatch(pat, key)
            if m:
                out[m.expand(repl)] = value.clone()
                break
        else:
            raise AssertionError(f"no fairseq1 name for {key}")
    return out


def fairseq1_cfg(c: transformers.Wav2Vec2Config) -> dict[str, object]:
    layers = " + ".join(
        f"[({d}, {k}, {s})]" for d, k, s in zip(c.conv_dim, c.conv_kernel, c.conv_stride)
    )
    return {
        "_name": "wav2vec2",
        "extractor_mode": "layer_norm",
        "encoder_layers": c.num_hidden_layers,
        "encoder_embed_dim": c.hidden_size,
        "encoder_ffn_embed_dim": c.intermediate_size,
        "encoder_attention_heads": c.num_attention_heads,
        "conv_feature_layers": layers,
        "conv_bias": True,
        "layer_norm_first": True,
        "conv_pos": c.num_conv_pos_embeddings,
        "conv_pos_groups": c.num_conv_pos_embedding_groups,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "dropout_input": 0.0,
        "encoder_layerdrop": 0.0,
        "feature_grad_mult": 0.1,
    }


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(tiny_hf_config()).eval()
    randomize(model)
    d = tmp_path_factory.mktemp("hf")
    model.save_pretrained(d)
    return model, d


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([SR, 11000, 6400])
    wav = torch.zeros(3, SR)
    for i, n in enumerate(lens.tolist()):
        wav[i, :n] = torch.randn(n, generator=g)
    return wav, lens


def hf_hidden(model: torch.nn.Module, wav: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
    mask = (torch.arange(wav.shape[1])[None] < lens[:, None]).long()
    with torch.no_grad():
        out = model(wav, attention_mask=mask, output_hidden_states=True)
    return list(out.hidden_states)


def check_all_layers(
    enc: torch.nn.Module, hidden: list[torch.Tensor], wav: torch.Tensor, lens: torch.Tensor
) -> None:
    n_layers = len(hidden) - 1
    for layer in list(range(n_layers)) + [None]:
        with torch.no_grad():
            feats, flens = enc(wav, lens, layer=layer)
        ref = hidden[n_layers if layer is None else layer]
        assert feats.shape == ref.shape
        for i, t in enumerate(flens.tolist()):
            diff = (feats[i, :t] - ref[i, :t]).abs().max().item()
            assert diff < 1e-4, f"layer {layer} item {i}: max diff {diff}"


def test_hf_dir_parity_every_layer(hf_model: tuple[torch.nn.Module, Path]) -> None:
    model, d = hf_model
    enc = load_encoder(d)
    assert enc.config.norm_order == "pre" and enc.config.extractor_norm == "layer"
    wav, lens = padded_batch()
    hidden = hf_hidden(model, wav, lens)
    check_all_layers(enc, hidden, wav, lens)
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
    check_all_layers(enc, hf_hidden(model, wav, lens), wav, lens)
    torch.testing.assert_close(enc.mask_emb, model.masked_spec_embed)


def test_fairseq1_args_namespace(hf_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    import argparse

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
    from avsr.models.xlsr import keymaps
    from avsr.models.xlsr.loading import config_from_fairseq1, infer_config

    model, _ = hf_model
    state = hf_to_fairseq1(model.state_dict())
    mapped = keymaps.convert_keys(state, keymaps.fairseq1_table())
    inferred = infer_config(mapped, num_heads=4)
    declared = config_from_fairseq1(fairseq1_cfg(model.config))
    shape_fields = ("model_dim", "num_layers", "num_heads", "ffn_dim", "conv_layers", "conv_bias")
    shape_fields += ("extractor_norm", "norm_order", "pos_conv_kernel", "pos_conv_groups")
    assert all(getattr(inferred, f) == getattr(declared, f) for f in shape_fields)
    torch.save({"model": state}, tmp_path / "bare.pt")
    enc = load_encoder(tmp_path / "bare.pt")  # heads guessed (1 for width 48): loads, shape-checked
    assert enc.config.model_dim == 48 and enc.config.num_layers == 3


def test_fairseq2_layout(tmp_path: Path) -> None:
    from avsr.models.xlsr import EncoderConfig, build_encoder
    from avsr.models.xlsr.config import conv_stack

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
