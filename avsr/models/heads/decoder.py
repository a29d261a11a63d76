"""Transformer decoder for the seq2seq head (AVSR transcripts, AVST translations).

Pre-LayerNorm blocks (self attention, cross attention over the encoder output,
feed forward), sinusoidal positions, token embeddings scaled by sqrt(D) and
tied with the output projection, a final LayerNorm. Built from ``torch.nn``
pieces with its own key/value cache so that beam search runs one step at a
time (:meth:`TransformerDecoder.init_state`, :meth:`step`, :meth:`reorder`).

Sizes: :func:`decoder_preset` ``"muavic"`` (6 layers, 768/3072, 4 heads, the
MuAViC recipe, the default), ``"large"`` (9 layers, 1024/4096, 8 heads,
AV-HuBERT Large) and ``"tiny"`` for CPU tests and the demo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(kw_only=True)
class DecoderConfig:
    """Shape and regularisation of the seq2seq decoder."""

    num_layers: int = 6
    """Number of decoder blocks."""
    model_dim: int = 768
    """Width of the blocks and the token embeddings."""
    ffn_dim: int = 3072
    """Inner width of the feed-forward networks."""
    num_heads: int = 4
    """Attention heads of the self and cross attention."""
    dropout: float = 0.1
    """Dropout on the embeddings, the block outputs and the FFN activations."""
    attn_dropout: float = 0.0
    """Dropout on the attention weights."""
    label_smoothing: float = 0.1
    """Label smoothing of the training cross-entropy."""
    tie_embeddings: bool = True
    """Share the output projection with the token embeddings."""
    max_len_a: float = 0.0
    """Longest output at inference: ``max_len_a * encoder frames + max_len_b`` tokens
    (eos included)."""
    max_len_b: int = 200
    """See ``max_len_a``."""


_PRESETS: dict[str, dict[str, int]] = {
    "muavic": {"num_layers": 6, "model_dim": 768, "ffn_dim": 3072, "num_heads": 4},
    "large": {"num_layers": 9, "model_dim": 1024, "ffn_dim": 4096, "num_heads": 8},
    "tiny": {"num_layers": 2, "model_dim": 128, "ffn_dim": 512, "num_heads": 4},
}


def decoder_preset(name: str, **overrides: float | int | bool) -> DecoderConfig:
    """A named decoder size (``muavic``, ``large``, ``tiny``) with optional field overrides."""
    if name not in _PRESETS:
        raise ValueError(f"unknown decoder preset {name!r}; choose from {sorted(_PRESETS)}")
    return replace(DecoderConfig(), **_PRESETS[name], **overrides)  # type: ignore[arg-type]


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """(L,) integer positions -> (L, dim) sin/cos table (sin in the first half)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / max(half - 1, 1))
    ang = positions.to(torch.float32)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        """(N, L, D) -> (N, H, L, D/H)."""
        n, length, d = x.shape
        return x.view(n, length, self.num_heads, d // self.num_heads).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """x (N, Lq, D) queries over k/v (N, H, Lk, D/H); mask broadcastable to (N, H, Lq, Lk), True = attend."""
        q = self.split(self.q_proj(x))
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        n, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, length, -1))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d = cfg.model_dim
        self.self_attn = Attention(d, cfg.num_heads, cfg.attn_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.cross_attn = Attention(d, cfg.num_heads, cfg.attn_dropout)
        self.cross_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, d)
        self.ffn_layer_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        self_kv: tuple[Tensor, Tensor],
        self_mask: Tensor | None,
        cross_kv: tuple[Tensor, Tensor],
        cross_mask: Tensor | None,
    ) -> Tensor:
        h = self.self_attn_layer_norm(x)
        x = x + self.dropout(self.self_attn.attend(h, *self_kv, self_mask))
        h = self.cross_attn_layer_norm(x)
        x = x + self.dropout(self.cross_attn.attend(h, *cross_kv, cross_mask))
        h = self.ffn_layer_norm(x)
        x = x + self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(h)))))
        return x


@dataclass
class DecoderState:
    """Incremental decoding state for N rows (N = batch x beam)."""

    cross_kv: list[tuple[Tensor, Tensor]]
    cross_mask: Tensor | None  # (N, 1, 1, T) True = attend
    self_kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)
    step: int = 0


class TransformerDecoder(nn.Module):
    """Autoregressive Transformer decoder over encoder features (B, T, E)."""

    def __init__(self, encoder_dim: int, vocab_size: int, config: DecoderConfig | None = None, *, pad_id: int = 1) -> None:
        super().__init__()
        cfg = self.config = config or DecoderConfig()
        d = cfg.model_dim
        self.pad_id = pad_id
        self.vocab_size = vocab_size
        self.embed_tokens = nn.Embedding(vocab_size, d, padding_idx=pad_id)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=d**-0.5)
        with torch.no_grad():
            self.embed_tokens.weight[pad_id].zero_()
        self.embed_scale = math.sqrt(d)
        self.encoder_proj: nn.Module = nn.Linear(encoder_dim, d) if encoder_dim != d else nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.layer_norm = nn.LayerNorm(d)
        self.output_proj = nn.Linear(d, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output_proj.weight = self.embed_tokens.weight

    # -- shared pieces -------------------------------------------------------
    def _embed(self, tokens: Tensor, start: int) -> Tensor:
        """tokens (N, L) at positions start.. -> (N, L, D)."""
        pos = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.embed_scale * self.embed_tokens(tokens) + sinusoidal_positions(pos, self.config.model_dim).to(
            self.embed_tokens.weight.dtype
        )
        return self.dropout(x)

    def _cross(self, enc: Tensor, enc_padding_mask: Tensor | None) -> tuple[list[tuple[Tensor, Tensor]], Tensor | None]:
        mem = self.encoder_proj(enc)
        kv = [layer.cross_attn.project_kv(mem) for layer in self.layers]
        mask = None if enc_padding_mask is None else (~enc_padding_mask)[:, None, None, :]
        return kv, mask

    # -- training (teacher forcing) ----------------------------------------------
    def forward(self, prev_tokens: Tensor, enc: Tensor, enc_padding_mask: Tensor | None = None) -> Tensor:
        """prev_tokens (B, L) (bos + target, right padded), enc (B, T, E),
        enc_padding_mask (B, T) True at padding -> logits (B, L, V)."""
        x = self._embed(prev_tokens, 0)
        length = prev_tokens.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        cross_kv, cross_mask = self._cross(enc, enc_padding_mask)
        for layer, ckv in zip(self.layers, cross_kv):
            h = layer.self_attn_layer_norm(x)
            skv = layer.self_attn.project_kv(h)
            x = layer(x, skv, causal, ckv, cross_mask)
        return self.output_proj(self.layer_norm(x))

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Summed label-smoothed cross entropy over non-pad targets. logits (B, L, V), targets (B, L)."""
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=self.pad_id,
            label_smoothing=self.config.label_smoothing,
            reduction="sum",
        )

    # -- incremental decoding --------------------------------------------------------
    def init_state(self, enc: Tensor, enc_padding_mask: Tensor | None = None) -> DecoderState:
        """State for decoding ``enc`` (N, T, E) one token at a time."""
        cross_kv, cross_mask = self._cross(enc, enc_padding_mask)
        return DecoderState(cross_kv=cross_kv, cross_mask=cross_mask, self_kv=[None] * len(self.layers))

    def step(self, tokens: Tensor, state: DecoderState) -> Tensor:
        """tokens (N,) the last token of every row -> logits (N, V); the state advances one step."""
        x = self._embed(tokens[:, None], state.step)
        for i, layer in enumerate(self.layers):
            h = layer.self_attn_layer_norm(x)
            k, v = layer.self_attn.project_kv(h)
            prev = state.self_kv[i]
            if prev is not None:
                k = torch.cat([prev[0], k], dim=2)
                v = torch.cat([prev[1], v], dim=2)
            state.self_kv[i] = (k, v)
            x = layer(x, (k, v), None, state.cross_kv[i], state.cross_mask)
        state.step += 1
        return self.output_proj(self.layer_norm(x))[:, 0]

    @staticmethod
    def reorder(state: DecoderState, index: Tensor) -> DecoderState:
        """Keep rows ``index`` (N',) of the state (beam reordering / expansion)."""
        state.cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in state.cross_kv]
        if state.cross_mask is not None:
            state.cross_mask = state.cross_mask.index_select(0, index)
        state.self_kv = [
            None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))
            for kv in state.self_kv
        ]
        return state

    def max_len(self, enc_frames: int) -> int:
        return max(1, int(self.config.max_len_a * enc_frames + self.config.max_len_b))
