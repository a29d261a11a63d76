"""What the audio encoder families share: the config's dict round trip, named shapes,
and the encoder properties the AV model, feature dumps and ``avsr model info`` use."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from avsr.config import from_dict, to_dict
from avsr.errors import UserError

if TYPE_CHECKING:
    from fairseq2.nn import BatchLayout

C = TypeVar("C", bound="EncoderConfigBase")


class EncoderConfigBase:
    """Mixin of an encoder config dataclass: ``to_dict`` / ``from_dict`` (validated)."""

    def validate(self) -> None:
        """Raise :class:`avsr.config.ConfigError` when the fields do not make an encoder."""

    def _after_read(self) -> None:
        """Turn YAML-read values into the field types (e.g. lists into tuples)."""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        cfg = from_dict(cls, data)
        cfg._after_read()
        cfg.validate()
        return cfg


def config_of_arch(
    archs: Mapping[str, Callable[[], C]], name: str, overrides: dict[str, Any], *, what: str
) -> C:
    """The validated config of the named shape ``name`` of ``archs``, with field overrides.

    ``what`` names the registry in the error of an unknown name (``encoder``, ``w2v-BERT``).
    """
    if name not in archs:
        raise UserError(f"unknown {what} arch '{name}' (known: {', '.join(sorted(archs))})")
    cfg = archs[name]()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)  # type: ignore[type-var]
    cfg.validate()
    return cfg


def same_structure(
    archs: Mapping[str, Callable[[], Any]], config: Any, fields: Sequence[str]
) -> list[str]:
    """Names of the shapes in ``archs`` whose ``fields`` all equal ``config``'s, in order."""
    out = []
    for name, factory in archs.items():
        ref = factory()
        if all(getattr(ref, k) == getattr(config, k) for k in fields):
            out.append(name)
    return out


class AudioEncoderBase(nn.Module):
    """The interface every audio encoder family offers: ``config``, ``mask_emb`` (D,), widths,
    depth, frame and parameter counts, and the pieces the AV model runs separately
    (:meth:`extract_features`, :meth:`project`, :meth:`encode`) that :meth:`forward` chains."""

    config: Any
    mask_emb: nn.Parameter

    @property
    def feature_dim(self) -> int:
        """Width of the front-end features before the projection to ``model_dim``."""
        return self.config.feature_dim

    @property
    def model_dim(self) -> int:
        return self.config.model_dim

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def frame_count(self, n_samples: int) -> int:
        """Number of output frames for ``n_samples`` waveform samples."""
        raise NotImplementedError

    def frame_counts(self, seq_lens: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) frame counts."""
        return torch.tensor([self.frame_count(int(n)) for n in seq_lens.tolist()], dtype=torch.long)

    def num_parameters(self, *, include_mask_emb: bool = False) -> int:
        """Parameter count of front end + encoder (the mask embedding optional)."""
        n = sum(p.numel() for name, p in self.named_parameters() if name != "mask_emb")
        return n + (self.mask_emb.numel() if include_mask_emb else 0)

    def extract_features(
        self, wav: Tensor, seq_lens: Tensor | None = None
    ) -> tuple[Tensor, BatchLayout]:
        """The front end before the projection: wav (B, S) -> (feats (B, T, feature_dim), layout)."""
        raise NotImplementedError

    def project(self, feats: Tensor) -> Tensor:
        """(B, T, feature_dim) -> (B, T, model_dim): the learned feature projection."""
        raise NotImplementedError

    def encode(
        self,
        seqs: Tensor,
        layout: BatchLayout,
        layer: int | None = None,
        hidden: list[Tensor] | None = None,
    ) -> Tensor:
        """The blocks (the first ``layer`` ones when given): (B, T, model_dim) -> same shape;
        each block's output appended to ``hidden`` when given."""
        raise NotImplementedError

    def _input_waveform(self, wav: Tensor, seq_lens: Tensor, normalize: bool) -> Tensor:
        """The waveform the front end reads (``normalize``: the family's input convention)."""
        return wav

    def forward(
        self,
        wav: Tensor,
        seq_lens: Tensor | None = None,
        layer: int | None = None,
        *,
        normalize: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """wav (B, S), seq_lens (B,) -> (feats (B, T, model_dim), feat_lens (B,)).

        ``layer=N``: the output of block N (early exit, see :meth:`encode`); ``layer=None``:
        the whole stack. ``normalize``: see the family's :meth:`_input_waveform`.
        """
        if seq_lens is None:
            seq_lens = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long)
        wav = self._input_waveform(wav, seq_lens, normalize)
        feats, layout = self.extract_features(wav, seq_lens)
        seqs = self.encode(self.project(feats), layout, layer)
        feat_lens = torch.tensor(list(layout.seq_lens), dtype=torch.long, device=seqs.device)
        return seqs, feat_lens
