"""The stand-in audio encoder shipped with the package (XLS-R shaped, tiny).

Pretrained without labels by the project's own stage-0 machinery (masked prediction of
MFCC k-means units, k=100, 8000 updates: HuBERT's first iteration) on about 3 hours of the
embedded corpus's speech in nine languages, from training speakers only (the demo's valid
and test speakers and the babble voices are never heard). It is what ``avsr demo`` starts
from, exactly as it would start from a real XLS-R (``--encoder``). How it was built, with
the command that rebuilds it and its curves: ``docs/results/2026-12-05-shipped-encoder.md``
and ``scripts/build_shipped_encoder.sh``.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_ENCODER = Path(__file__).resolve().parent
"""Folder of the shipped encoder (``config.yaml`` + ``model.safetensors``, the project's
encoder format)."""


def resolve_demo_encoder(name: str | None) -> str | None:
    """``shipped`` -> the shipped encoder's folder; anything else unchanged."""
    return str(SHIPPED_ENCODER) if name == "shipped" else name
