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

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from avsr.cli import main
from avsr.models.encoders import load_encoder
from avsr.models.xlsr.config import ARCHS, equivalent_archs
from tests.helpers.fairseq1 import fairseq1_cfg, hf_to_fairseq1
from tests.helpers.hf_models import NO_DROPOUT, POST_LN, PRE_LN, randomize, w2v2_config
from tests.helpers.hf_parity import check_every_layer, hf_hidden, padded_batch

transformers = pytest.importorskip("transformers")

LENS = (8000, 5600, 3200)
"""The padded batch: clip lengths in samples."""

# family -> (HF class, the family's config options as in its published config.json)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "w2v2_base": ("Wav2Vec2Model", POST_LN),
    "w2v2_large_960h": ("Wav2Vec2ForCTC", dict(**POST_LN, vocab_size=32)),
    "w2v2_large_lv60": ("Wav2Vec2ForPreTraining", PRE_LN),
    "xlsr_53": ("Wav2Vec2ForPreTraining", PRE_LN),
    "mms_300m": ("Wav2Vec2Model", PRE_LN),
    "mms_1b_all": ("Wav2Vec2ForCTC", dict(**PRE_LN, adapter_attn_dim=8, vocab_size=40)),
}


def save_family(family: str, d: Path) -> torch.nn.Module:
    """A tiny random model of ``family`` (2 layers x 32, dropout off) saved to ``d``."""
    cls_name, options = FAMILIES[family]
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(w2v2_config(**NO_DROPOUT, **options)).eval()
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
    wav, lens = padded_batch(LENS)
    check_every_layer(enc, hf_hidden(core, wav, lens), wav, lens)
    assert [enc.frame_count(int(n)) for n in lens] == core._get_feat_extract_output_lengths(
        lens
    ).tolist()


def test_fairseq1_base_checkpoint(tmp_path: Path) -> None:
    """wav2vec2 base as released by fairseq1 (group-norm CNN, post-LN, ``extractor_mode: default``)."""
    hf = save_family("w2v2_base", tmp_path / "hf")
    state = hf_to_fairseq1(hf.state_dict(), extractor="group")
    model_cfg = fairseq1_cfg(hf.config)
    assert (model_cfg["extractor_mode"], model_cfg["layer_norm_first"]) == ("default", False)
    torch.save({"model": state, "cfg": {"model": model_cfg}}, tmp_path / "wav2vec_small.pt")
    enc = load_encoder(tmp_path / "wav2vec_small.pt")
    assert (enc.config.norm_order, enc.config.extractor_norm) == ("post", "group")
    wav, lens = padded_batch(LENS)
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
    assert main(["model", "info", arch, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = ARCHS[arch]()
    assert info["norm_order"] == cfg.norm_order and info["layers"] == cfg.num_layers
    assert arch in info["same_structure"]


def test_model_info_hf_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_family("w2v2_base", tmp_path / "base")
    assert main(["model", "info", str(tmp_path / "base"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["norm_order"] == "post" and info["extractor_norm"] == "group"
    assert info["layers"] == 2
