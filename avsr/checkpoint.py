"""The project's model checkpoint format: a directory with safetensors weights
and a versioned YAML config beside them (never a pickled config).

Layout of a model directory::

    model.safetensors   # tensors only
    config.yaml         # {format: xlavsr, version: 1, kind: <str>, ...}
    (extra files, e.g. tokenizer.model)

``kind`` says what the weights are (``encoder`` for an XLS-R-style audio
encoder, ``av`` for the AV model, ``finetuned`` for a fine-tuned model, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from avsr.errors import UserError
from avsr.io import atomic_path, atomic_write_text

FORMAT = "xlavsr"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"


def is_model_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding both the weights and the config."""
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


def save_model_dir(path: str | Path, state_dict: dict[str, Any], config: dict[str, Any], *, kind: str) -> Path:
    """Write weights (atomically, contiguous CPU copies) and the config with its version."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    # safetensors refuses shared storage; clone tensors that alias another one.
    seen: dict[int, str] = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            tensors[k] = v.clone()
        seen[ptr] = k
    with atomic_path(path / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "kind": kind})
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, **config}
    atomic_write_text(path / CONFIG, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    return path


def _parse_yaml(cfg_path: Path) -> Any:
    """The YAML document of ``cfg_path`` (UserError when it is not valid YAML)."""
    try:
        return yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{cfg_path}: not valid YAML: {exc}") from exc


def read_model_config(path: str | Path) -> dict[str, Any]:
    """The checked config of a model directory (or of its ``config.yaml`` given directly)."""
    path = Path(path)
    cfg_path = path / CONFIG if path.is_dir() else path
    if not cfg_path.is_file():
        raise UserError(f"{path}: not a model directory (no {CONFIG})")
    cfg = _parse_yaml(cfg_path)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise UserError(f"{cfg_path}: not an xlavsr model config (format field missing)")
    version = cfg.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{cfg_path}: config version {version!r} is newer than this xlavsr ({FORMAT_VERSION})")
    return cfg


def load_model_dir(path: str | Path, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, config) of a model directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_model_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{path}: no {WEIGHTS}")
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{weights}: cannot read safetensors weights: {exc}") from exc
    return state, cfg
