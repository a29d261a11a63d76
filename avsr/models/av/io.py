"""Save and load AV models as project model dirs (kind ``av``).

Layout (see :mod:`avsr.checkpoint`): ``model.safetensors`` holds the tensors
of an :class:`AVPretrainModel` (``encoder.*`` = the AVEncoder, ``head.*`` =
the unit head when present); ``config.yaml`` holds ``av`` (the
:class:`AVModelConfig`), ``encoder`` (the audio encoder's config, its family
named by its ``family`` field, wav2vec 2.0 when absent), ``num_units`` (or null)
and ``frame_rate``.

:func:`load_av_encoder` also accepts any encoder that
:func:`avsr.models.encoders.load_encoder` reads (project ``encoder`` dir, HF dir,
fairseq1 ``.pt``): the AV encoder is then built around it with a freshly
initialised lip encoder and fusion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from avsr.checkpoint import is_model_dir, load_model_dir, read_model_config, save_model_dir
from avsr.config import to_dict
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.av.config import AVModelConfig, av_config_from_dict
from avsr.models.av.model import AVEncoder, AVPretrainModel
from avsr.models.encoders import config_from_dict, encoder_on_meta, load_encoder, save_encoder
from avsr.models.state_dicts import compare_state

log = get_logger(__name__)

KIND = "av"


def encoder_sections(enc: AVEncoder) -> dict[str, Any]:
    """The ``av`` and ``encoder`` config sections that rebuild ``enc`` (:func:`rebuild_av_encoder`)."""
    return {"av": to_dict(enc.cfg), "encoder": enc.xlsr.config.to_dict()}


def save_av_model(model: AVEncoder | AVPretrainModel, path: str | Path) -> Path:
    """Write an AV encoder (with its unit head if ``model`` is an AVPretrainModel)."""
    if isinstance(model, AVPretrainModel):
        enc, state, num_units = model.encoder, model.state_dict(), model.num_units
    else:
        enc, num_units = model, None
        state = {f"encoder.{k}": v for k, v in model.state_dict().items()}
    config = {**encoder_sections(enc), "num_units": num_units, "frame_rate": enc.frame_rate}
    return save_model_dir(path, state, config, kind=KIND)


def save_stage0_encoder(model: AVEncoder | AVPretrainModel, path: str | Path) -> Path:
    """Write an audio-only (stage 0) model as an XLS-R encoder dir (kind ``encoder``),
    loadable by everything that loads a real XLS-R."""
    enc = model.encoder if isinstance(model, AVPretrainModel) else model
    if enc.visual is not None or enc.fbank is not None:
        raise ValueError(
            "only an audio-only model with the XLS-R CNN front end is an XLS-R encoder"
        )
    return save_encoder(enc.xlsr, path)


def is_av_dir(path: str | Path) -> bool:
    path = Path(path)
    return is_model_dir(path) and read_model_config(path).get("kind") == KIND


def _replace_fields(config: Any, overrides: dict[str, Any], label: str) -> Any:
    """``config`` with the fields ``overrides`` changed; an unknown field is a UserError."""
    try:
        return dataclasses.replace(config, **overrides)
    except TypeError as exc:
        raise UserError(f"{label}: {exc}") from exc


def _with_overrides(xlsr: Any, overrides: dict[str, Any]) -> Any:
    """Rebuild ``xlsr`` with changed config fields (dropouts, grad scale), same weights."""
    if not overrides:
        return xlsr
    config = _replace_fields(xlsr.config, overrides, "model.encoder.overrides")
    new = type(xlsr)(config)  # the same family's encoder class
    new.load_state_dict(xlsr.state_dict())
    return new


def with_encoder_overrides(encoder: AVEncoder, overrides: dict[str, Any]) -> AVEncoder:
    """``encoder`` with its audio encoder rebuilt for config ``overrides`` (same weights),
    recorded in ``encoder.cfg.encoder.overrides``; e.g. a fine-tuned model's encoder."""
    if not overrides:
        return encoder
    encoder.xlsr = _with_overrides(encoder.xlsr, overrides)
    encoder.cfg.encoder = dataclasses.replace(
        encoder.cfg.encoder, overrides={**encoder.cfg.encoder.overrides, **overrides}
    )
    return encoder


def rebuild_av_encoder(
    sections: Mapping[str, Any],
    config: AVModelConfig | None = None,
    *,
    where: str | Path,
    what: str = "not a valid AV model config",
) -> AVEncoder:
    """The AVEncoder described by saved ``av`` + ``encoder`` config sections, its audio
    encoder on the meta device (weights assigned by ``load_state_dict(..., assign=True)``).

    ``config`` replaces the saved AV config; its ``encoder.overrides`` are applied to the
    audio encoder's config. A bad section is a UserError ``{where}/config.yaml: {what}: ...``.
    """
    try:
        saved_cfg = av_config_from_dict(sections["av"])
        enc_cfg = config_from_dict(sections["encoder"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}/config.yaml: {what}: {exc}") from exc
    cfg = config if config is not None else saved_cfg
    overrides = cfg.encoder.overrides
    if overrides:
        enc_cfg = _replace_fields(enc_cfg, overrides, f"encoder overrides {overrides}")
    return AVEncoder(cfg, encoder_on_meta(enc_cfg))


def load_strict(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], error: Callable[[str], str]
) -> None:
    """Assign ``state`` to ``module`` after checking every key and shape; a difference is a
    UserError with the message ``error(summary of the difference)``."""
    diff = compare_state(module.state_dict(), state)
    if diff:
        raise UserError(error(diff.summary()))
    module.load_state_dict(state, assign=True)


def _load_av_state(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    load_strict(
        module,
        state,
        lambda diff: f"{where}: weights do not fit the configured AV model: {diff} (check "
        "model.modalities, audio_frontend, visual widths, fusion kind)",
    )


def _encoder_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` tensors of an AV dir's state, without the prefix."""
    return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}


def load_av_encoder(
    path: str | Path,
    config: AVModelConfig | None = None,
    *,
    encoder_overrides: dict[str, Any] | None = None,
) -> AVEncoder:
    """An AVEncoder from an AV dir, or around any XLS-R encoder path (fresh lip encoder).

    ``config`` (optional) replaces the saved AV config (its architecture fields must fit
    the saved weights); for a plain encoder path it defaults to ``AVModelConfig()``.
    ``encoder_overrides`` (e.g. ``{"dropout": 0.1}``) change non-architectural fields of
    the audio encoder's config on top of ``config.encoder.overrides``.
    Returned in eval mode on the CPU.
    """
    path = Path(path)
    if encoder_overrides:
        if config is None and is_av_dir(path):
            config = av_config_from_dict(read_model_config(path)["av"])
        config = dataclasses.replace(config) if config is not None else AVModelConfig()
        config.encoder = dataclasses.replace(
            config.encoder, overrides={**config.encoder.overrides, **encoder_overrides}
        )
    if is_av_dir(path):
        state, meta = load_model_dir(path)
        enc = rebuild_av_encoder(meta, config, where=path)  # the small AV parts on the CPU
        _load_av_state(enc, _encoder_state(state), path)
        log.info("loaded AV encoder from %s", path)
        return enc.eval()
    cfg = config if config is not None else AVModelConfig()
    xlsr = _with_overrides(load_encoder(path), cfg.encoder.overrides)
    enc = AVEncoder(cfg, xlsr)
    if cfg.has_video:
        log.info(
            "AV encoder around the audio encoder %s; lip encoder and fusion freshly initialised",
            path,
        )
    return enc.eval()


def load_av_pretrain_model(
    path: str | Path, config: AVModelConfig | None = None, num_units: int | None = None
) -> AVPretrainModel:
    """An AVPretrainModel from an AV dir (head included when it has ``num_units`` units),
    or around any encoder path (fresh head). ``num_units`` is required unless the dir has a head."""
    path = Path(path)
    if is_av_dir(path):
        state, meta = load_model_dir(path)
        encoder = rebuild_av_encoder(meta, config, where=path)
        saved_units = meta.get("num_units")
        k = num_units if num_units is not None else saved_units
        if k is None:
            raise UserError(f"{path}: no unit head saved; give the number of units")
        model = AVPretrainModel(encoder, int(k))
        if saved_units == k:
            _load_av_state(model, state, path)
        else:
            _load_av_state(model.encoder, _encoder_state(state), path)
            log.info("%s: new unit head with %d units (saved: %s)", path, k, saved_units)
        return model.eval()
    if num_units is None:
        raise UserError(f"{path}: an encoder without a unit head; give the number of units")
    return AVPretrainModel(load_av_encoder(path, config), num_units).eval()
