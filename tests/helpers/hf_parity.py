"""The project's encoder against HF's hidden states, layer by layer, on a padded batch."""

from __future__ import annotations

from typing import Any

import torch

SR = 16000


def padded_batch(lens: tuple[int, ...] = (SR, 11000, 6400)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random waveforms of lengths ``lens`` zero-padded to the longest: ``(B, T)`` and ``(B,)``."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor(lens)
    wav = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wav[i, :n] = torch.randn(n, generator=g)
    return wav, lengths


def hf_hidden(model: torch.nn.Module, wav: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
    """HF's hidden states (``num_layers + 1`` tensors of ``(B, frames, dim)``) for a padded batch."""
    mask = (torch.arange(wav.shape[1])[None] < lens[:, None]).long()
    with torch.no_grad():
        out = model(wav, attention_mask=mask, output_hidden_states=True)
    return list(out.hidden_states)


def check_every_layer(
    enc: Any, hidden: list[torch.Tensor], wav: torch.Tensor, lens: torch.Tensor
) -> None:
    """``enc`` stopped after each layer (and run to the end) matches HF's hidden states within
    1e-4 on every item's valid frames."""
    n_layers = len(hidden) - 1
    assert enc.num_layers == n_layers
    for layer in [*range(n_layers), None]:
        with torch.no_grad():
            feats, flens = enc(wav, lens, layer=layer)
        ref = hidden[n_layers if layer is None else layer]
        assert feats.shape == ref.shape
        for i, t in enumerate(flens.tolist()):
            diff = (feats[i, :t] - ref[i, :t]).abs().max().item()
            assert diff < 1e-4, f"layer {layer} item {i}: max diff {diff}"
