"""The wav2vec 2.0 family as audio backbones: wav2vec2 base / large / large-960h, XLSR-53,
MMS-300M / MMS-1B(-all). For each family a tiny random HF model with that family's real
config options (``feat_extract_norm``, ``do_stable_layer_norm``, ``conv_bias``, adapters)
is saved with ``save_pretrained`` and must load through the project and match HF's hidden
states at every layer within 1e-4 (fp32, eval, padded batch).

Group-norm CNNs (base / large) normalise over the whole padded waveform, in HF as in
fairseq: the project reproduces HF for a batch padded the same way (the comparison runs
the same padded batch through both), not the unpadded items.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from avsr.models.xlsr import load_encoder
from avsr.models.xlsr.config import ARCHS, equivalent_archs

transformers = pytest.importorskip("transformers")

SR = 16000

# family -> (HF class, the family's config options as in its published config.json)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "w2v2_base": (
        "Wav2Vec2Model",
        dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    ),
    "w2v2_large_960h": (
        "Wav2Vec2ForCTC",
        dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False, vocab_size=32),
    ),
    "w2v2_large_lv60": (
        "Wav2Vec2ForPreTraining",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    ),
    "xlsr_53": (
        "Wav2Vec2ForPreTraining",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    ),
    "mms_300m": (
        "Wav2Vec2Model",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    ),
    "mms_1b_all": (
        "Wav2Vec2ForCTC",
        dict(
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
            adapter_attn_dim=8,
            vocab_size=40,
        ),
    ),
}


def tiny_config(**options: Any) -> Any:
    base: dict[str, Any] = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
    )
    base.update(options)
    return transformers.Wav2Vec2Config(**base)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (norm gains and biases included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([8000, 5600, 3200])
    wav = torch.zeros(3, 8000)
    for i, n in enumerate(lens.tolist()):
        wav[i, :n] = torch.randn(n, generator=g)
    return wav, lens


def hf_hidden(model: torch.nn.Module, wav: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
    mask = (torch.arange(wav.shape[1])[None] < lens[:, None]).long()
    with torch.no_grad():
        out = model(wav, attention_mask=mask, output_hidden_states=True)
    return list(out.hidden_states)


def check_every_layer(
    enc: Any, hidden: list[torch.Tensor], wav: torch.Tensor, lens: torch.Tensor
) -> None:
    n_layers = len(hidden) - 1
    assert enc.num_layers == n_layers
    for layer in [*range(n_layers), None]:
        with torch.no_grad():
            feats, flens = enc(wav, lens, layer=layer)
        ref = hidden[n_layers if layer is None else layer]
        assert feats.shape == ref.shape
        for i, t in enumerate(flens.tolist()):
            diff = (feats[i, :t] - ref[i, :t]).abs().max().item()
            assert diff < 1e-4, f"layer {layer} item {i}: max diff {diff}"


def save_family(family: str, d: Path) -> torch.nn.Module:
    cls_name, options = FAMILIES[family]
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(tiny_config(**options)).eval()
    randomize(model)
    model.save_pretrained(d)
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hf_family_parity_every_layer(
    family: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hf = save_family(family, tmp_path)
    options = FAMILIES[family][1]
    with caplog.at_level(logging.WARNING):
        enc = load_encoder(tmp_path)
    cfg = enc.config
    # the structure comes from config.json
    assert cfg.extractor_norm == options["feat_extract_norm"]
    assert cfg.norm_order == ("pre" if options["do_stable_layer_norm"] else "post")
    assert cfg.conv_bias == options["conv_bias"]
    assert (cfg.model_dim, cfg.num_layers, cfg.num_heads) == (32, 2, 4)
    core = getattr(hf, "wav2vec2", hf)
    if "adapter_attn_dim" in options:
        assert "adapter weights" in caplog.text
        # the pretrained encoder is the model without adapters: silence them in HF
        with torch.no_grad():
            for layer in core.encoder.layers:
                layer.adapter_layer.linear_2.weight.zero_()
                layer.adapter_layer.linear_2.bias.zero_()
    wav, lens = padded_batch()
    check_every_layer(enc, hf_hidden(core, wav, lens), wav, lens)
    assert [enc.frame_count(int(n)) for n in lens] == core._get_feat_extract_output_lengths(
        lens
    ).tolist()


# HF -> fairseq1 names, for the releases that exist as fairseq1 checkpoints (base / large /
# XLSR-53 / MMS). Test-only writer.
_HF_TO_FAIRSEQ1 = [
    (r"masked_spec_embed", "mask_emb"),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.conv\.(.*)",
        r"feature_extractor.conv_layers.\1.0.\2",
    ),
    (
        r"feature_extractor\.conv_layers\.0\.layer_norm\.(.*)",
        r"feature_extractor.conv_layers.0.2.\1",
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


def test_fairseq1_base_checkpoint(tmp_path: Path) -> None:
    """wav2vec2 base as released by fairseq1 (group-norm CNN, post-LN, ``extractor_mode: default``)."""
    hf = save_family("w2v2_base", tmp_path / "hf")
    state = {}
    for key, value in hf.state_dict().items():
        for pat, repl in _HF_TO_FAIRSEQ1:
            m = re.fullmatch(pat, key)
            if m:
                state[m.expand(repl)] = value.clone()
                break
        else:
            raise AssertionError(f"no fairseq1 name for {key}")
    c = hf.config
    layers = " + ".join(
        f"[({d}, {k}, {s})]" for d, k, s in zip(c.conv_dim, c.conv_kernel, c.conv_stride)
    )
    model_cfg = {
        "_name": "wav2vec2", "extractor_mode": "default", "layer_norm_first": False, "conv_bias": False,
        "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": 4, "conv_feature_layers": layers, "conv_pos": 16, "conv_pos_groups": 4,
        "dropout": 0.0, "attention_dropout": 0.0, "dropout_input": 0.0, "encoder_layerdrop": 0.0,
    }  # fmt: skip
    torch.save({"model": state, "cfg": {"model": model_cfg}}, tmp_path / "wav2vec_small.pt")
    enc = load_encoder(tmp_path / "wav2vec_small.pt")
    assert (enc.config.norm_order, enc.config.extractor_norm) == ("post", "group")
    wav, lens = padded_batch()
    check_every_layer(enc, hf_hidden(hf, wav, lens), wav, lens)


@pytest.mark.parametrize(
    ("arch", "dim", "layers", "norm", "extractor", "bias"),
    [
        ("w2v2_base", 768, 12, "post", "group", False),
        ("w2v2_large", 1024, 24, "post", "group", False),
        ("xlsr_53", 1024, 24, "pre", "layer", True),
        ("mms_1b", 1280, 48, "pre", "layer", True),
    ],
)
def test_family_archs(
    arch: str, dim: int, layers: int, norm: str, extractor: str, bias: bool
) -> None:
    cfg = ARCHS[arch]()
    assert cfg.arch == arch
    assert (cfg.model_dim, cfg.num_layers, cfg.norm_order, cfg.extractor_norm, cfg.conv_bias) == (
        dim, layers, norm, extractor, bias,
    )  # fmt: skip
    assert arch in equivalent_archs(cfg)


def test_named_from_structure_not_file_name(tmp_path: Path) -> None:
    """A post-LN group-norm model whose dir is named like XLS-R is still post-LN."""
    save_family("w2v2_base", tmp_path / "xlsr_300m")
    enc = load_encoder(tmp_path / "xlsr_300m")
    assert enc.config.norm_order == "post" and enc.config.arch == "custom"


@pytest.mark.parametrize("arch", ["w2v2_base", "w2v2_large", "xlsr_53", "mms_300m", "mms_1b"])
def test_model_info_every_family(arch: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from avsr.cli import main

    assert main(["model", "info", arch, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = ARCHS[arch]()
    assert info["norm_order"] == cfg.norm_order and info["layers"] == cfg.num_layers
    assert arch in info["same_structure"]


def test_model_info_hf_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from avsr.cli import main

    save_family("w2v2_base", tmp_path / "base")
    assert main(["model", "info", str(tmp_path / "base"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["norm_order"] == "post" and info["extractor_norm"] == "group"
    assert info["layers"] == 2
