"""Every audio encoder family behind one API: load, save, build and rebuild encoders by
asking the registry (:mod:`avsr.models.families`). Importing this module registers the
built-in families (wav2vec 2.0 and w2v-BERT 2.0); callers import the registry from here.

:func:`load_encoder` detects the format of ``path``:

- a project model dir (``config.yaml`` + ``model.safetensors``, kind ``encoder``); the
  config section names the family (``encoder``: wav2vec 2.0, ``w2vbert``: w2v-BERT 2.0);
- an HF transformers dir (``config.json``; its ``model_type`` names the family);
- a ``.pt`` checkpoint file (fairseq1 / fairseq2 wav2vec 2.0), read without running
  pickled code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avsr.checkpoint import is_model_dir, load_model_dir, read_model_config, save_model_dir
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.families import (
    DEFAULT_FAMILY,
    EncoderFamily,
    families,
    family_for_arch,
    family_for_config,
    family_for_hf,
    family_for_project,
    family_of,
    get_family,
)
from avsr.models.state_dicts import read_hf_config
from avsr.models.w2vbert.family import W2VBERT_FAMILY
from avsr.models.xlsr.family import WAV2VEC2_FAMILY

log = get_logger(__name__)

KIND = "encoder"
"""``kind`` of a project encoder dir."""

BUILTIN_FAMILIES: tuple[EncoderFamily, ...] = (WAV2VEC2_FAMILY, W2VBERT_FAMILY)
"""The families registered by importing this module."""

__all__ = [
    "BUILTIN_FAMILIES",
    "DEFAULT_FAMILY",
    "KIND",
    "EncoderFamily",
    "build_from_arch",
    "config_from_dict",
    "detect_format",
    "encoder_on_meta",
    "families",
    "family_for_arch",
    "family_for_config",
    "family_of",
    "get_family",
    "load_encoder",
    "resolve_encoder",
    "save_encoder",
]


# -- project format ---------------------------------------------------------------


def save_encoder(encoder: nn.Module, path: str | Path) -> Path:
    """Write ``encoder`` as a project model dir (kind ``encoder``, its family's config section)."""
    family = family_of(encoder)
    config = {family.project_key: encoder.config.to_dict()}  # type: ignore[union-attr,operator]
    return save_model_dir(path, encoder.state_dict(), config, kind=KIND)


def _load_project(path: Path) -> nn.Module:
    cfg = read_model_config(path)
    family = family_for_project(cfg) if cfg.get("kind") == KIND else None
    if family is None:
        raise UserError(f"{path}: a '{cfg.get('kind')}' model dir, not an encoder (kind '{KIND}')")
    state, _ = load_model_dir(path)
    try:
        config = family.config_class.from_dict(cfg[family.project_key])
    except ValueError as exc:
        raise UserError(f"{path}/config.yaml: {exc}") from exc
    return family.assemble(config, state, path)


# -- other formats -------------------------------------------------------------------


def _load_hf(path: Path) -> nn.Module:
    hf = read_hf_config(path)
    return family_for_hf(hf, str(path / "config.json")).load_hf(path, hf)


def _load_torch_file(path: Path) -> nn.Module:
    for family in families():
        if family.load_torch is not None:
            return family.load_torch(path)
    raise UserError(f"{path}: no encoder family reads .pt checkpoint files")


def detect_format(path: str | Path) -> str:
    """``project``, ``hf`` or ``torch`` (a ``.pt`` checkpoint file); UserError otherwise."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        if is_model_dir(path):
            return "project"
        if (path / "config.json").is_file():
            return "hf"
        raise UserError(
            f"{path}: neither an xlavsr model dir (config.yaml + model.safetensors) nor an HF dir (config.json)"
        )
    return "torch"


def load_encoder(path: str | Path) -> nn.Module:
    """Load an encoder of any family in any supported format (see the module docs);
    eval mode, fp32, CPU."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "project":
        model = _load_project(path)
    elif fmt == "hf":
        model = _load_hf(path)
    else:
        model = _load_torch_file(path)
    log.info("loaded %s encoder (%s format) from %s", model.config.arch, fmt, path)
    return model


# -- building --------------------------------------------------------------------------


def resolve_encoder(spec: str, *, seed: int = 0) -> nn.Module:
    """An encoder from a path, or a randomly initialised one from an arch name (seeded)."""
    family = family_for_arch(spec)
    if family is not None and not Path(spec).exists():
        log.warning(
            "'%s' is an arch name: using randomly initialised weights (seed %d)", spec, seed
        )
        torch.manual_seed(seed)
        return family.build(family.arch_config(spec)).eval()
    return load_encoder(spec)


def build_from_arch(family: str, arch: str, **overrides: Any) -> nn.Module:
    """A randomly initialised encoder of the named shape ``arch`` of ``family``."""
    handler = get_family(family)
    return handler.build(handler.arch_config(arch, **overrides))


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """The encoder config saved as ``data`` (``config.to_dict()``; family from its ``family``)."""
    return family_for_config(data).config_class.from_dict(dict(data))


def encoder_on_meta(config: Any) -> nn.Module:
    """The encoder of ``config`` with its weights on the meta device (to be assigned by
    ``load_state_dict(..., assign=True)``)."""
    with torch.device("meta"):
        return family_of(config).encoder_class(config)
