"""The registry of audio encoder families: one :class:`EncoderFamily` handler per family.

A family (``wav2vec2``: wav2vec 2.0 / XLS-R / MMS, ``w2vbert``: w2v-BERT 2.0) says how to
build its encoder from a config or arch name, read its HF and fairseq checkpoints, write and
read it in the project format, and rebuild it from a saved config dict. Each family registers
itself once, in its own package (:mod:`avsr.models.xlsr.family`,
:mod:`avsr.models.w2vbert.family`); :mod:`avsr.models.encoders` loads the built-in ones and
offers the format-independent API. Callers ask the registry instead of testing names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from avsr.config import ConfigError
from avsr.errors import UserError

DEFAULT_FAMILY = "wav2vec2"
"""Family of a saved config dict without a ``family`` field (wav2vec 2.0 configs have none)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class EncoderFamily:
    """Everything the project does with the encoders of one family (compared by identity)."""

    name: str
    """Family name, as in an AV model's ``model.encoder.family`` (``wav2vec2``, ``w2vbert``)."""
    config_class: type[Any]
    """The config dataclass; ``config_class.from_dict(d)`` reads a saved config dict back."""
    encoder_class: type[nn.Module]
    """The encoder module: ``encoder_class(config)``."""
    archs: Mapping[str, Callable[[], Any]]
    """Named shapes: arch name -> config factory."""
    arch_config: Callable[..., Any]
    """``arch_config(name, **overrides)``: the validated config of a named shape."""
    build: Callable[..., nn.Module]
    """``build(config | arch, device=None)``: a randomly initialised encoder."""
    project_key: str
    """Section of a project encoder dir's ``config.yaml`` that holds the config."""
    hf_model_type: str
    """``model_type`` of the HF transformers dirs (``config.json``) of this family."""
    load_hf: Callable[[Path, Mapping[str, Any]], nn.Module]
    """``load_hf(dir, config_json)``: the encoder of an HF dir, eval mode, fp32, CPU."""
    assemble: Callable[[Any, Mapping[str, Tensor], Path], nn.Module]
    """``assemble(config, state, where)``: build on the meta device and load project-named
    weights, checking every key and shape."""
    describe: Callable[[Any], dict[str, Any]]
    """``describe(config)``: the family's own rows of ``avsr model info``."""
    load_torch: Callable[[Path], nn.Module] | None = None
    """``load_torch(file)``: the encoder of a fairseq1 / fairseq2 ``.pt`` file (None: none)."""


_FAMILIES: dict[str, EncoderFamily] = {}


def register_family(family: EncoderFamily) -> None:
    """Add a family; a name registered twice is an error."""
    if family.name in _FAMILIES:
        raise ValueError(f"encoder family '{family.name}' is already registered")
    _FAMILIES[family.name] = family


def families() -> list[EncoderFamily]:
    """The registered families, in registration order."""
    return list(_FAMILIES.values())


def get_family(name: str) -> EncoderFamily:
    """The family called ``name``; :class:`ConfigError` when none is registered."""
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(_FAMILIES))
        raise ConfigError(f"unknown encoder family {name!r} (known: {known})") from None


def family_of(obj: Any) -> EncoderFamily:
    """The family of an encoder module or of an encoder config object."""
    for family in _FAMILIES.values():
        if isinstance(obj, (family.encoder_class, family.config_class)):
            return family
    raise TypeError(f"{type(obj).__name__} is not an encoder (or config) of a registered family")


def family_for_config(data: Mapping[str, Any]) -> EncoderFamily:
    """The family of a saved config dict (its ``family`` field, else :data:`DEFAULT_FAMILY`)."""
    return get_family(str(data.get("family", DEFAULT_FAMILY)))


def family_for_arch(name: str) -> EncoderFamily | None:
    """The family with a shape called ``name`` (None when no family has one)."""
    return next((f for f in _FAMILIES.values() if name in f.archs), None)


def family_for_hf(hf: Mapping[str, Any], where: str) -> EncoderFamily:
    """The family of an HF ``config.json`` (its ``model_type``, ``wav2vec2`` when absent)."""
    model_type = hf.get("model_type", get_family(DEFAULT_FAMILY).hf_model_type)
    for family in _FAMILIES.values():
        if family.hf_model_type == model_type:
            return family
    known = ", ".join(sorted(f.hf_model_type for f in _FAMILIES.values()))
    raise UserError(f"{where}: model_type '{model_type}' is not supported ({known})")


def family_for_project(config: Mapping[str, Any]) -> EncoderFamily | None:
    """The family whose section a project encoder dir's ``config.yaml`` has (None: none)."""
    return next((f for f in _FAMILIES.values() if f.project_key in config), None)
