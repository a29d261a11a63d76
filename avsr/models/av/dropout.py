"""Modality dropout: with probability ``p`` drop one modality of a row, the audio
with share ``audio_share`` of those cases, the video otherwise (defaults 0.5 / 0.5:
25 % audio dropped, 25 % video dropped, 50 % both kept). A dropped modality's
front-end output (after its projection) is multiplied by zero, exactly what
the input modes ``a`` (video zeros) and ``v`` (audio zeros) do.

Drawn per row (AV-HuBERT draws once per batch; per row gives the same rates
with less gradient variance and makes the draws independent of how a global
batch is split across processes).
"""

from __future__ import annotations

import numpy as np


def draw_modality(rng: np.random.Generator, p: float, audio_share: float) -> tuple[bool, bool]:
    """(keep_audio, keep_video) for one row."""
    u = float(rng.random())
    if u >= p:
        return True, True
    v = float(rng.random())
    if v < audio_share:
        return False, True
    return True, False


def modality_keep_flags(modality: str) -> tuple[bool, bool]:
    """(keep_audio, keep_video) of an input mode ``av`` / ``a`` / ``v``."""
    if modality == "av":
        return True, True
    if modality == "a":
        return True, False
    if modality == "v":
        return False, True
    raise ValueError(f"modality must be 'av', 'a' or 'v', got {modality!r}")
