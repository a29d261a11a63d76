"""The encoder-family registry: every family is found from an encoder, a config, a saved
config dict, an arch name and an HF config.json, and saves into its own config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsr.checkpoint import read_model_config
from avsr.config import ConfigError
from avsr.errors import UserError
from avsr.models.encoders import (
    BUILTIN_FAMILIES,
    build_from_arch,
    config_from_dict,
    encoder_on_meta,
    families,
    family_for_arch,
    family_for_config,
    family_of,
    get_family,
    load_encoder,
    save_encoder,
)
from avsr.models.families import family_for_hf, register_family

ARCH = {"wav2vec2": "tiny", "w2vbert": "w2vbert_tiny"}


def test_builtin_families_are_registered_once() -> None:
    assert sorted(f.name for f in families()) == ["w2vbert", "wav2vec2"]
    assert set(families()) == set(BUILTIN_FAMILIES)
    with pytest.raises(ValueError, match="already registered"):
        register_family(get_family("wav2vec2"))
    with pytest.raises(ConfigError, match="unknown encoder family 'nope'"):
        get_family("nope")


@pytest.mark.parametrize("name", sorted(ARCH))
def test_every_lookup_finds_the_family(name: str, tmp_path: Path) -> None:
    family = get_family(name)
    enc = build_from_arch(name, ARCH[name])
    assert family_of(enc) is family and family_of(enc.config) is family
    assert family_for_arch(ARCH[name]) is family
    saved = enc.config.to_dict()
    assert family_for_config(saved) is family
    assert config_from_dict(saved) == enc.config
    assert family_of(encoder_on_meta(enc.config)) is family
    assert family_for_hf({"model_type": family.hf_model_type}, "config.json") is family
    save_encoder(enc, tmp_path / "enc")
    assert family.project_key in read_model_config(tmp_path / "enc")
    assert family_of(load_encoder(tmp_path / "enc")) is family


def test_defaults_and_unknowns() -> None:
    assert family_for_config({}).name == "wav2vec2"  # wav2vec 2.0 configs have no family field
    assert family_for_hf({}, "config.json").name == "wav2vec2"
    assert family_for_arch("no_such_arch") is None
    with pytest.raises(UserError, match="model_type 'bert' is not supported"):
        family_for_hf({"model_type": "bert"}, "config.json")
    with pytest.raises(TypeError, match="not an encoder"):
        family_of(object())
