"""Label files beside a manifest: ``.km`` unit ids (one line per row) or text labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsr.errors import UserError
from avsr.io import ManifestError, read_labels
from avsr.logging_utils import get_logger

log = get_logger(__name__)

UNIT_SUFFIXES = (".km",)


def is_unit_file(path: str | Path) -> bool:
    """True for k-means unit files (``.km``)."""
    return Path(path).suffix in UNIT_SUFFIXES


def read_units(path: str | Path, expected_rows: int | None = None) -> list[np.ndarray]:
    """One int64 array of unit ids per line of a ``.km`` file."""
    try:
        lines = read_labels(path, expected=expected_rows)
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    out = []
    for lineno, line in enumerate(lines, start=1):
        try:
            out.append(np.array(line.split(), dtype=np.int64))
        except ValueError:
            raise UserError(f"{path}:{lineno}: unit ids must be integers") from None
        if out[-1].size and out[-1].min() < 0:
            raise UserError(f"{path}:{lineno}: negative unit id")
    return out


def read_text_labels(path: str | Path, expected_rows: int | None = None) -> list[str]:
    """Text labels (transcripts, translations, language codes), one per manifest row."""
    try:
        return read_labels(path, expected=expected_rows)
    except ManifestError as exc:
        raise UserError(str(exc)) from exc


def fit_units(
    units: np.ndarray, n_frames: int, *, tolerance: int = 2, where: str = ""
) -> np.ndarray:
    """Trim or pad (repeating the last id) ``units`` to ``n_frames``.

    Unit files and decoded audio may disagree by a frame or two (encoder
    padding conventions); a larger difference is logged as a warning.
    """
    diff = units.size - n_frames
    if abs(diff) > tolerance:
        log.warning(
            "%s: %d units but the audio gives %d encoder frames",
            where or "units",
            units.size,
            n_frames,
        )
    if diff >= 0:
        return units[:n_frames]
    if units.size == 0:
        return np.zeros(n_frames, dtype=np.int64)
    return np.concatenate([units, np.full(-diff, units[-1], dtype=units.dtype)])
