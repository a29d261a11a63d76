"""Save and load AV models as project model dirs (kind ``av``).

Layout (see :mod:`avsr.checkpoint`): ``model.safetensors`` holds the tensors
of an :class:`AVPretrainModel` (``encoder.*`` = the AVEncoder, ``head.*`` =
the unit head when present); ``config.yaml`` holds ``av`` (the
:class:`AVModelConfig`), ``encoder`` (the XLS-R ``EncoderConfig``),
``num_units`` (or null) and ``frame_rate``.

:func:`load_av_encoder` also accepts any encoder that
:func:`avsr.models.xlsr.load_encoder` reads (project ``encoder`` dir, HF dir,
fairseq1 ``.pt``): the AV encoder is then built around it with a freshly
initialised lip encoder and fusion.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from avsr.checkpoint import is_model_dir, load_model_dir, read_model_config, save_model_dir
from avsr.config import ConfigError, to_dict
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.av.config import AVModelConfig, av_config_from_dict
from avsr.models.av.model import AVEncoder, AVPretrainModel

log = get_logger(__name__)

KIND = "av"


def save_av_model(model: AVEncoder | AVPretrainModel, path: str | Path) -> Path:
    """Write an AV encoder (with its unit head if ``model`` is an AVPretrainModel)."""
    if isinstance(model, AVPretrainModel):
        enc, state, num_units = model.encoder, model.state_dict(), model.num_units
    else:
        enc, num_units = model, None
        state = {f"encoder.{k}": v for k, v in model.state_dict().items()}
    config = {
        "av": to_dict(enc.cfg),
        "encoder": enc.xlsr.config.to_dict(),
        "num_units": num_units,
        "frame_rate": enc.frame_rate,
    }
    return save_model_dir(path, state, config, kind=KIND)


def save_stage0_encoder(model: AVEncoder | AVPretrainModel, path: str | Path) -> Path:
    """Write an audio-only (stage 0) model as an XLS-R encoder dir (kind ``encoder``),
    loadable by everything that loads a real XLS-R."""
    from avsr.models.xlsr import save_encoder

    enc = model.encoder if isinstance(model, AVPretrainModel) else model
    if enc.visual is not None or enc.fbank is not None:
        raise ValueError(
            "only an audio-only model with the XLS-R CNN front end is an XLS-R encoder"
        )
    return save_encoder(enc.xlsr, path)


def is_av_dir(path: str | Path) -> bool:
    path = Path(path)
    return is_model_dir(path) and read_model_config(path).get("kind") == KIND


def _with_overrides(xlsr: Any, overrides: dict[str, Any]) -> Any:
    """Rebuild ``xlsr`` with changed config fields (dropouts, grad scale), same weights."""
    if not overrides:
        return xlsr
    try:
        config = dataclasses.replace(xlsr.config, **overrides)
    except TypeError as exc:
        raise UserError(f"model.encoder.overrides: {exc}") from exc
    new = type(xlsr)(config)  # XlsrEncoder or W2vBertEncoder
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


def _read_av_dir(
    path: Path, config: AVModelConfig | None
) -> tuple[AVModelConfig, Any, dict[str, torch.Tensor], dict[str, Any]]:
    from avsr.models.xlsr import EncoderConfig, XlsrEncoder

    state, meta = load_model_dir(path)
    if isinstance(meta.get("encoder"), dict) and meta["encoder"].get("family") == "w2vbert":
        from avsr.models.w2vbert import W2vBertConfig, W2vBertEncoder

        enc_cls: Any = W2vBertEncoder
        enc_cfg_cls: Any = W2vBertConfig
    else:
        enc_cls, enc_cfg_cls = XlsrEncoder, EncoderConfig
    try:
        saved_cfg = av_config_from_dict(meta["av"])
        enc_cfg = enc_cfg_cls.from_dict(meta["encoder"])
    except (KeyError, ConfigError, ValueError) as exc:
        raise UserError(f"{path}/config.yaml: not a valid AV model config: {exc}") from exc
    cfg = config if config is not None else saved_cfg
    if cfg.encoder.overrides:
        try:
            enc_cfg = dataclasses.replace(enc_cfg, **cfg.encoder.overrides)
        except TypeError as exc:
            raise UserError(f"encoder overrides {cfg.encoder.overrides}: {exc}") from exc
    with torch.device("meta"):
        xlsr = enc_cls(enc_cfg)
    return cfg, xlsr, state, meta


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad:
        raise UserError(
            f"{where}: weights do not fit the configured AV model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {bad[:5]} (check model.modalities, "
            "audio_frontend, visual widths, fusion kind)"
        )
    module.load_state_dict(state, assign=True)


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
        cfg, xlsr, state, _ = _read_av_dir(path, config)
        enc = AVEncoder(cfg, xlsr)  # xlsr on meta; the small AV parts on the CPU
        enc_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        _load_strict(enc, enc_state, path)
        log.info("loaded AV encoder from %s", path)
        return enc.eval()
    from avsr.models.xlsr import load_encoder

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
        cfg, xlsr, state, meta = _read_av_dir(path, config)
        saved_units = meta.get("num_units")
        k = num_units if num_units is not None else saved_units
        if k is None:
            raise UserError(f"{path}: no unit head saved; give the number of units")
        model = AVPretrainModel(AVEncoder(cfg, xlsr), int(k))
        if saved_units == k:
            _load_strict(model, state, path)
        else:
            enc_state = {
                k2[len("encoder.") :]: v for k2, v in state.items() if k2.startswith("encoder.")
            }
            _load_strict(model.encoder, enc_state, path)
            log.info("%s: new unit head with %d units (saved: %s)", path, k, saved_units)
        return model.eval()
    if num_units is None:
        raise UserError(f"{path}: an encoder without a unit head; give the number of units")
    return AVPretrainModel(load_av_encoder(path, config), num_units).eval()
