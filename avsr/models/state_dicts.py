"""Tensors of other toolkits' checkpoints: HF weight files (single or sharded), key
renaming with regex tables, and the key/shape comparison done before every strict load.

A key table is a list of ``(pattern, replacement)``; the first pattern that matches
(``re.fullmatch``) renames the key. Keys matched by an *ignore* pattern (heads,
quantizers) are dropped; any other unmatched key is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from avsr.errors import UserError
from avsr.models.safe_load import safe_torch_load

KeyTable = Sequence[tuple[str, str]]


class KeyMapError(ValueError):
    """Keys that no table entry maps and no ignore pattern drops."""

    def __init__(self, unmapped: list[str]) -> None:
        self.unmapped = unmapped
        shown = ", ".join(unmapped[:10]) + (
            f" (+{len(unmapped) - 10} more)" if len(unmapped) > 10 else ""
        )
        super().__init__(f"unexpected keys: {shown}")


def convert_keys(
    state: Mapping[str, Any],
    table: KeyTable,
    *,
    prefixes: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> dict[str, Any]:
    """Rename every key of ``state`` with ``table``; strip ``prefixes``; drop ``ignore`` keys.

    Raises :class:`KeyMapError` listing keys that match nothing.
    """
    compiled = [(re.compile(p), r) for p, r in table]
    ignored = [re.compile(p) for p in ignore]
    out: dict[str, Any] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        name = key
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if any(p.fullmatch(name) for p in ignored):
            continue
        for pattern, repl in compiled:
            m = pattern.fullmatch(name)
            if m is not None:
                out[m.expand(repl)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyMapError(unmapped)
    return out


def read_hf_config(path: Path) -> dict[str, Any]:
    """``path/config.json`` of an HF transformers dir; UserError when it is not JSON."""
    cfg_file = path / "config.json"
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{cfg_file}: not valid JSON: {exc}") from exc


def _read_weight_file(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        try:
            return load_file(str(file))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{file}: cannot read safetensors weights: {exc}") from exc
    state = safe_torch_load(file)
    if not isinstance(state, dict):
        raise UserError(f"{file}: not a state dict")
    return state


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF transformers dir: ``model.safetensors`` / ``pytorch_model.bin``,
    or the shards listed by their ``*.index.json`` (HF names, unchanged)."""
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (path / single).is_file():
            return _read_weight_file(path / single)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            try:
                weight_map = json.loads((path / index).read_text(encoding="utf-8"))["weight_map"]
            except (ValueError, KeyError) as exc:
                raise UserError(f"{path / index}: not a weight index ({exc})") from exc
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_read_weight_file(path / shard))
            return state
    raise UserError(f"{path}: HF model dir without model.safetensors or pytorch_model.bin")


@dataclass(frozen=True)
class StateMismatch:
    """How a state dict differs from the one a module expects (key names, in order)."""

    missing: list[str]
    """Expected keys absent from the state dict."""
    unexpected: list[str]
    """Keys of the state dict the module does not have."""
    mismatched: list[str]
    """Keys present in both with different shapes."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """The first five names of each kind, e.g. ``missing [...], unexpected [...], ...``."""
        return (
            f"missing {self.missing[:5]}, unexpected {self.unexpected[:5]}, "
            f"shape mismatch {self.mismatched[:5]}"
        )


def compare_state(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> StateMismatch:
    """The keys and shapes in which ``state`` differs from ``expected`` (a module's state dict)."""
    return StateMismatch(
        missing=[k for k in expected if k not in state],
        unexpected=[k for k in state if k not in expected],
        mismatched=[
            k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
        ],
    )
