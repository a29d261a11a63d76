"""What running a fine-tuned model needs, shared by evaluation and inference: the
device, the model directory, and the ROI geometry the model was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avsr.checkpoint import is_model_dir
from avsr.data.config import DataConfig
from avsr.errors import UserError
from avsr.logging_utils import get_logger

log = get_logger(__name__)


def pick_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other names are checked."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device visible")
    return name


def resolve_model_dir(path: str | Path) -> Path:
    """A fine-tuned model directory: ``path`` itself, or the ``model/`` export of an
    ``avsr finetune`` run folder. UserError when neither."""
    path = Path(path)
    if is_model_dir(path):
        return path
    if is_model_dir(path / "model"):
        log.info("%s: using the run's exported model %s", path, path / "model")
        return path / "model"
    if not path.exists():
        raise UserError(f"{path}: model directory not found")
    raise UserError(
        f"{path}: not a fine-tuned model directory (no model.safetensors + config.yaml)"
    )


def input_geometry(model_config: dict[str, Any]) -> tuple[int, int | None]:
    """(centre-crop size, resize-to size or None) of the ROI frames the model was trained on.

    From the ``data`` section of a fine-tuned model's config when it has one, else the
    data defaults (88, no resize).
    """
    default = DataConfig()
    data = model_config.get("data") or {}
    crop = int(data.get("crop_size", default.crop_size))
    size = data.get("image_size", default.image_size)
    return crop, (int(size) if size is not None else None)
