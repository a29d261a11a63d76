"""The XLS-R-style audio encoder, assembled from fairseq2 0.8.1's wav2vec 2.0 pieces.

``XlsrEncoder`` = fairseq2 ``Wav2Vec2Frontend`` (CNN feature extractor, LayerNorm,
projection to the model width, convolutional position encoder) + fairseq2
``StandardTransformerEncoder`` (blocks + final LayerNorm for pre-LN models) + the
learned mask embedding used by masked pretraining.

Layer convention: ``forward(..., layer=N)`` runs only the first N blocks and
returns block N's output without the final LayerNorm (fairseq
``extract_features(layer=N-1)``, HF ``hidden_states[N]``); ``layer=None`` runs
the whole stack with the final LayerNorm (HF ``last_hidden_state``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from avsr.models.audio_encoder import AudioEncoderBase
from avsr.models.xlsr.config import EncoderConfig, arch_config

if TYPE_CHECKING:
    from fairseq2.models.transformer import StandardTransformerEncoder
    from fairseq2.models.wav2vec2 import Wav2Vec2EncoderConfig
    from fairseq2.models.wav2vec2.frontend import Wav2Vec2Frontend
    from fairseq2.nn import BatchLayout


def fairseq2_config(cfg: EncoderConfig) -> Wav2Vec2EncoderConfig:
    """The fairseq2 ``Wav2Vec2EncoderConfig`` of an :class:`EncoderConfig`."""
    from fairseq2.models.transformer import TransformerNormOrder
    from fairseq2.models.wav2vec2.config import Wav2Vec2EncoderConfig

    pre = cfg.norm_order == "pre"
    return Wav2Vec2EncoderConfig(
        model_dim=cfg.model_dim,
        max_seq_len=cfg.max_seq_len,
        feature_dim=cfg.feature_dim,
        use_fbank=False,
        first_pass_dropout_p=cfg.feature_dropout,
        # The encoder LayerNorm *before* the blocks exists only in post-LN models;
        # pre-LN (XLS-R) models have their final LayerNorm after the last block.
        layer_norm_features=not pre,
        feature_extractor_layer_descs=[tuple(c) for c in cfg.conv_layers],
        feature_extractor_bias=cfg.conv_bias,
        feature_extractor_layer_norm_convs=cfg.extractor_norm == "layer",
        feature_grad_scale=cfg.feature_grad_scale,
        pos_encoder_type="conv",
        pos_encoder_depth=cfg.pos_conv_depth,
        pos_conv_kernel_size=cfg.pos_conv_kernel,
        num_pos_conv_groups=cfg.pos_conv_groups,
        num_encoder_layers=cfg.num_layers,
        num_encoder_attn_heads=cfg.num_heads,
        ffn_inner_dim=cfg.ffn_dim,
        dropout_p=cfg.dropout,
        attn_dropout_p=cfg.attn_dropout,
        ffn_inner_dropout_p=cfg.ffn_dropout,
        layer_drop_p=cfg.layer_drop,
        norm_order=TransformerNormOrder.PRE if pre else TransformerNormOrder.POST,
    )


def conv_frame_count(n_samples: int, conv_layers: list[tuple[int, int, int]]) -> int:
    """Output length of the CNN for ``n_samples`` input samples (0 when too short)."""
    n = int(n_samples)
    for _, kernel, stride in conv_layers:
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


def normalize_waveform(wav: Tensor, seq_lens: Tensor | None = None, eps: float = 1e-7) -> Tensor:
    """Per-utterance zero mean, unit variance over the valid samples; padding set to 0.

    wav (B, S) float, seq_lens (B,) -> (B, S) float32. An all-zero utterance stays zero.
    """
    wav = wav.float()
    b, s = wav.shape
    if seq_lens is None:
        seq_lens = torch.full((b,), s, dtype=torch.long, device=wav.device)
    mask = torch.arange(s, device=wav.device)[None, :] < seq_lens.to(wav.device)[:, None]
    n = mask.sum(dim=1, keepdim=True).clamp(min=1)
    x = wav * mask
    mean = x.sum(dim=1, keepdim=True) / n
    var = (((wav - mean) * mask) ** 2).sum(dim=1, keepdim=True) / n
    return (wav - mean) / torch.sqrt(var + eps) * mask


class XlsrEncoder(AudioEncoderBase):
    """wav2vec 2.0 / XLS-R encoder: waveform (B, S) -> features (B, T, D) at 50 Hz.

    ``feature_dim`` is the channel count of the CNN features (512 for XLS-R).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        from fairseq2.models.wav2vec2.factory import Wav2Vec2EncoderFactory

        config.validate()
        self.config = config
        factory = Wav2Vec2EncoderFactory(fairseq2_config(config))
        self.frontend: Wav2Vec2Frontend = factory.create_encoder_frontend()
        if self.frontend.feature_extractor is not None:
            from avsr.models.xlsr.fast_cnn import use_contiguous_layers

            use_contiguous_layers(self.frontend.feature_extractor)  # type: ignore[arg-type]
        self.encoder: StandardTransformerEncoder = factory.create_encoder()  # type: ignore[assignment]
        # Learned embedding that replaces masked frames in masked pretraining
        # (fairseq1 ``mask_emb``, HF ``masked_spec_embed``).
        self.mask_emb = nn.Parameter(torch.empty(config.model_dim).uniform_())

    def frame_count(self, n_samples: int) -> int:
        """Number of output frames for ``n_samples`` waveform samples (CNN output length)."""
        return conv_frame_count(n_samples, self.config.conv_layers)

    # -- pieces (used by the audio-visual model) ---------------------------------

    def extract_features(
        self, wav: Tensor, seq_lens: Tensor | None = None
    ) -> tuple[Tensor, BatchLayout]:
        """CNN + LayerNorm: wav (B, S) -> (feats (B, T, feature_dim), layout).

        Every ``seq_lens`` item must be at least one receptive field (400 samples).
        """
        from fairseq2.nn import BatchLayout

        if wav.ndim != 2:
            raise ValueError(f"wav must be (B, S), got shape {tuple(wav.shape)}")
        lens = None if seq_lens is None else [int(n) for n in seq_lens.tolist()]
        if lens is not None and min(lens, default=1) < self._min_samples():
            raise ValueError(
                f"every waveform needs at least {self._min_samples()} samples, got lengths {lens}"
            )
        layout = BatchLayout.of(wav, lens)
        seqs, layout, _ = self.frontend.extract_features(wav, layout)
        return seqs, layout

    def project(self, feats: Tensor) -> Tensor:
        """(B, T, feature_dim) -> (B, T, model_dim): projection + input dropout."""
        fe = self.frontend
        if fe.model_dim_proj is not None:
            feats = fe.model_dim_proj(feats)
        if fe.first_pass_dropout is not None:
            feats = fe.first_pass_dropout(feats)
        return feats

    def encode(
        self,
        seqs: Tensor,
        layout: BatchLayout,
        layer: int | None = None,
        hidden: list[Tensor] | None = None,
    ) -> Tensor:
        """Position encoder + the first ``layer`` blocks (all + final norm when None).

        seqs (B, T, model_dim) -> (B, T, model_dim); padded frames are set to 0.
        ``hidden``: when given, each block's output (B, T, model_dim) is appended to it
        (a block skipped by LayerDrop appends its input).
        """
        from fairseq2.models.transformer import AttentionBiasCache

        n_layers = len(self.encoder.layers)
        if layer is not None and not 0 <= layer <= n_layers:
            raise ValueError(f"layer must be in 0..{n_layers}, got {layer}")
        fe = self.frontend
        if fe.pos_encoder is not None:
            seqs = fe.pos_encoder(seqs, layout)
        if fe.layer_norm is not None:
            seqs = fe.layer_norm(seqs)
        if fe.dropout is not None:
            seqs = fe.dropout(seqs)
        cache = AttentionBiasCache()
        stop = n_layers if layer is None else layer
        drop_p = self.encoder.layer_drop_p if self.training else 0.0
        for idx in range(stop):
            if not (drop_p > 0.0 and float(torch.rand(())) < drop_p):  # LayerDrop skips it
                seqs = self.encoder.layers[idx](seqs, layout, cache)
            if hidden is not None:
                hidden.append(seqs)
        if layer is None:
            if self.encoder.layer_norm is not None:
                seqs = self.encoder.layer_norm(seqs)
            if self.encoder.dropout is not None:
                seqs = self.encoder.dropout(seqs)
        if layout.padded:
            seqs = seqs * (layout.position_indices >= 0).unsqueeze(-1).to(seqs.dtype)
        return seqs

    def _input_waveform(self, wav: Tensor, seq_lens: Tensor, normalize: bool) -> Tensor:
        """``normalize=True`` applies :func:`normalize_waveform` (what XLS-R expects on raw audio)."""
        return normalize_waveform(wav, seq_lens) if normalize else wav

    def _min_samples(self) -> int:
        n = 1
        for _, kernel, stride in reversed(self.config.conv_layers):
            n = (n - 1) * stride + kernel
        return n


def build_encoder(
    config: EncoderConfig | str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> XlsrEncoder:
    """A randomly initialised encoder of a config or arch name (``device="meta"`` for a dry run)."""
    cfg = arch_config(config) if isinstance(config, str) else config
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"):
            enc = XlsrEncoder(cfg)
    else:
        enc = XlsrEncoder(cfg)
        if device is not None:
            enc = enc.to(device)
    if dtype is not None:
        enc = enc.to(dtype)
    return enc
