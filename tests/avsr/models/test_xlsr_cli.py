"""``avsr model info`` / ``avsr model convert`` from the command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avsr.cli import main
from avsr.models.encoders import load_encoder
from tests.helpers.hf_models import PRE_LN, w2v2_config


def test_info_arch_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", "xlsr_300m", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layers"] == 24 and info["unit_layer"] == 18
    assert round(info["parameters"]["total (front end + encoder)"] / 1e6, 2) == 315.44


def test_convert_hf_to_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = w2v2_config(num_attention_heads=2, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
                      mask_time_prob=0.05, **PRE_LN)  # fmt: skip
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(cfg).save_pretrained(tmp_path / "hf")
    assert main(["model", "convert", str(tmp_path / "hf"), str(tmp_path / "proj")]) == 0
    a, b = load_encoder(tmp_path / "hf"), load_encoder(tmp_path / "proj")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # second run refuses to overwrite, --force overwrites
    assert main(["model", "convert", str(tmp_path / "hf"), str(tmp_path / "proj")]) == 2
    assert "already a model dir" in capsys.readouterr().err
    assert main(["model", "convert", str(tmp_path / "hf"), str(tmp_path / "proj"), "--force"]) == 0
    assert main(["model", "info", str(tmp_path / "proj")]) == 0
    assert "custom" in capsys.readouterr().out


def test_info_of_project_dir(tiny_xlsr_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", str(tiny_xlsr_dir)]) == 0
    assert "tiny" in capsys.readouterr().out
