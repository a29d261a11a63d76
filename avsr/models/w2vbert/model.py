"""The w2v-BERT 2.0 encoder (conformer on a fixed filterbank front end), plain torch.

Data flow (B batch, S samples, T frames at 50 Hz, D model width)::

    wav (B,S) -- W2vBertFbank (80 log-mel, per-bin norm, stack 2) -> (B,T,160)   [fixed]
              -- LayerNorm(160) -- Linear(160,D) -- dropout       -> (B,T,D)     [learned]
              -- padded frames zeroed -- N conformer blocks        -> (B,T,D)

Conformer block (Macaron): x + FFN/2, + self-attention (relative-key position term,
distances clamped to [-64, 8]), + convolution module (pointwise -> GLU -> causal
depthwise -> LayerNorm -> swish -> pointwise), + FFN/2, final LayerNorm. There is no
final encoder LayerNorm (each block ends with one).

Module names follow HF ``Wav2Vec2BertModel`` inside the blocks (``ffn1``,
``self_attn.linear_q``, ``conv_module.depthwise_conv``, ...), so the key map is short.

The class offers the interface the AV model uses of an XLS-R encoder
(:class:`avsr.models.xlsr.XlsrEncoder`): ``extract_features`` (here the fixed
filterbank), ``project`` (the learned feature projection: this is where video is fused
in the AV model), ``encode(seqs, layout, layer)``, ``mask_emb``, ``frame_counts``,
``frontend`` and ``encoder.layers``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avsr.models.audio_encoder import AudioEncoderBase
from avsr.models.w2vbert.config import W2vBertConfig, w2vbert_arch_config
from avsr.models.w2vbert.fbank import W2vBertFbank, output_frames

if TYPE_CHECKING:
    from fairseq2.nn import BatchLayout


class FeedForward(nn.Module):
    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.model_dim, cfg.ffn_dim)
        self.intermediate_dropout = nn.Dropout(cfg.ffn_dropout)
        self.output_dense = nn.Linear(cfg.ffn_dim, cfg.model_dim)
        self.output_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.intermediate_dropout(F.silu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class RelativeKeyAttention(nn.Module):
    """Multi-head self-attention with a learned embedding of the clamped key-query distance
    added to the scores (``q . E[clamp(j - i)] / sqrt(d)``)."""

    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        d = cfg.model_dim
        self.num_heads = cfg.num_heads
        self.head_dim = d // cfg.num_heads
        self.left = cfg.left_max_positions
        self.right = cfg.right_max_positions
        self.linear_q = nn.Linear(d, d)
        self.linear_k = nn.Linear(d, d)
        self.linear_v = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.distance_embedding = nn.Embedding(self.left + self.right + 1, self.head_dim)
        self.dropout = nn.Dropout(cfg.attn_dropout)

    def forward(self, x: Tensor, key_padding: Tensor | None) -> Tensor:
        """x (B, T, D); key_padding (B, T) bool, True on padded frames."""
        b, t, _ = x.shape

        def heads(y: Tensor) -> Tensor:
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.linear_q(x)), heads(self.linear_k(x)), heads(self.linear_v(x))
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = (q @ k.transpose(-2, -1)) * scale
        pos = torch.arange(t, device=x.device)
        dist = (pos[None, :] - pos[:, None]).clamp(-self.left, self.right) + self.left
        rel = self.distance_embedding(dist).to(q.dtype)  # (T, T, d)
        scores = scores + torch.einsum("bhid,ijd->bhij", q, rel) * scale
        if key_padding is not None:
            scores = scores.masked_fill(
                key_padding[:, None, None, :], torch.finfo(scores.dtype).min
            )
        probs = self.dropout(torch.softmax(scores, dim=-1))
        out = (probs @ v).transpose(1, 2).reshape(b, t, -1)
        return self.linear_out(out)


class ConvModule(nn.Module):
    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        d = cfg.model_dim
        self.layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1, bias=False)
        self.depthwise_conv = nn.Conv1d(d, d, cfg.conv_kernel, groups=d, bias=False)
        self.depthwise_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.pointwise_conv2 = nn.Conv1d(d, d, 1, bias=False)
        self.dropout = nn.Dropout(cfg.conv_dropout)

    def forward(self, x: Tensor, padding: Tensor | None) -> Tensor:
        x = self.layer_norm(x)
        if padding is not None:
            x = x.masked_fill(padding[..., None], 0.0)
        y = F.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        y = self.depthwise_conv(F.pad(y, (self.depthwise_conv.kernel_size[0] - 1, 0)))
        y = F.silu(self.depthwise_layer_norm(y.transpose(1, 2)).transpose(1, 2))
        return self.dropout(self.pointwise_conv2(y)).transpose(1, 2)


class ConformerBlock(nn.Module):
    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        d, eps = cfg.model_dim, cfg.layer_norm_eps
        self.ffn1_layer_norm = nn.LayerNorm(d, eps=eps)
        self.ffn1 = FeedForward(cfg)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=eps)
        self.self_attn = RelativeKeyAttention(cfg)
        self.self_attn_dropout = nn.Dropout(cfg.attn_dropout)
        self.conv_module = ConvModule(cfg)
        self.ffn2_layer_norm = nn.LayerNorm(d, eps=eps)
        self.ffn2 = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: Tensor, padding: Tensor | None) -> Tensor:
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn_dropout(self.self_attn(self.self_attn_layer_norm(x), padding))
        x = x + self.conv_module(x, padding)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class W2vBertFrontend(nn.Module):
    """Fixed filterbank + learned feature projection (LayerNorm(160) + Linear(160, D))."""

    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        self.fbank = W2vBertFbank(cfg.n_mels, cfg.stack)
        self.layer_norm = nn.LayerNorm(cfg.feature_dim, eps=cfg.layer_norm_eps)
        self.proj = nn.Linear(cfg.feature_dim, cfg.model_dim)
        self.dropout = nn.Dropout(cfg.feature_dropout)


class ConformerStack(nn.Module):
    def __init__(self, cfg: W2vBertConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.num_layers))
        self.layer_drop_p = cfg.layer_drop


class W2vBertEncoder(AudioEncoderBase):
    """w2v-BERT 2.0: waveform (B, S) -> features (B, T, model_dim) at 50 Hz.

    ``feature_dim`` is the width of the stacked filterbank features (160).
    """

    def __init__(self, config: W2vBertConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.frontend = W2vBertFrontend(config)
        self.encoder = ConformerStack(config)
        self.mask_emb = nn.Parameter(torch.empty(config.model_dim).uniform_())

    @property
    def family(self) -> str:
        return "w2vbert"

    def frame_count(self, n_samples: int) -> int:
        return output_frames(int(n_samples), self.config.stack)

    def extract_features(
        self, wav: Tensor, seq_lens: Tensor | None = None
    ) -> tuple[Tensor, BatchLayout]:
        """The fixed filterbank: wav (B, S) in [-1, 1] -> (feats (B, T, 160), layout)."""
        from fairseq2.nn import BatchLayout

        if wav.ndim != 2:
            raise ValueError(f"wav must be (B, S), got shape {tuple(wav.shape)}")
        if seq_lens is None:
            seq_lens = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long)
        feats, lens = self.frontend.fbank(wav, seq_lens)
        feats = feats.to(self.mask_emb.device)
        if min(lens.tolist(), default=1) < 1:
            raise ValueError(f"every waveform needs at least {400 + 160} samples")
        return feats, BatchLayout.of(feats, [int(n) for n in lens.tolist()])

    def project(self, feats: Tensor) -> Tensor:
        """(B, T, 160) -> (B, T, model_dim): LayerNorm + Linear + dropout (learned)."""
        fe = self.frontend
        return fe.dropout(fe.proj(fe.layer_norm(feats)))

    def encode(
        self,
        seqs: Tensor,
        layout: BatchLayout,
        layer: int | None = None,
        hidden: list[Tensor] | None = None,
    ) -> Tensor:
        """The first ``layer`` conformer blocks (all when None; there is no final norm).

        seqs (B, T, model_dim) -> (B, T, model_dim); padded frames are set to 0.
        ``hidden``: when given, each block's output is appended to it (a block skipped
        by LayerDrop appends its input).
        """
        n_layers = len(self.encoder.layers)
        if layer is not None and not 0 <= layer <= n_layers:
            raise ValueError(f"layer must be in 0..{n_layers}, got {layer}")
        t = seqs.shape[1]
        lens = torch.tensor(list(layout.seq_lens), device=seqs.device)
        padding = torch.arange(t, device=seqs.device)[None] >= lens[:, None]
        has_pad = bool(padding.any())
        pad_arg = padding if has_pad else None
        seqs = seqs.masked_fill(padding[..., None], 0.0)
        seqs = self.encoder.dropout(seqs)
        stop = n_layers if layer is None else layer
        drop_p = self.encoder.layer_drop_p if self.training else 0.0
        for idx in range(stop):
            if not (drop_p > 0.0 and float(torch.rand(())) < drop_p):  # LayerDrop skips it
                seqs = self.encoder.layers[idx](seqs, pad_arg)
            if hidden is not None:
                hidden.append(seqs)
        return seqs.masked_fill(padding[..., None], 0.0)

    def _input_waveform(self, wav: Tensor, seq_lens: Tensor, normalize: bool) -> Tensor:
        """``normalize`` has no effect: the filterbank is normalised per utterance and mel bin
        (a waveform gain or offset cancels out)."""
        return wav

    def forward_features(
        self, feats: Tensor, feat_lens: Tensor, layer: int | None = None
    ) -> Tensor:
        """Run from precomputed stacked filterbanks (B, T, 160) (e.g. HF's ``input_features``)."""
        from fairseq2.nn import BatchLayout

        layout = BatchLayout.of(feats, [int(n) for n in feat_lens.tolist()])
        return self.encode(self.project(feats), layout, layer)


def build_w2vbert(config: W2vBertConfig | str, **kw: Any) -> W2vBertEncoder:
    """A randomly initialised encoder of a config or arch name (``device="meta"`` for a dry run)."""
    cfg = w2vbert_arch_config(config) if isinstance(config, str) else config
    if kw.get("device") is not None and torch.device(kw["device"]).type == "meta":
        with torch.device("meta"):
            return W2vBertEncoder(cfg)
    return W2vBertEncoder(cfg)
