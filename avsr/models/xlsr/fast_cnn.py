"""A faster forward for fairseq2's wav2vec 2.0 CNN layers with LayerNorm (XLS-R's
``extractor_mode=layer_norm``), same parameters, same math.

fairseq2's ``Wav2Vec2FeatureExtractionLayer`` computes conv -> transpose -> LayerNorm
-> transpose -> GELU and hands the next convolution a *strided* (N, C, S) tensor;
oneDNN then makes it contiguous through a slow generic copy, in the forward and
again in the backward pass. Here GELU (element-wise) runs before the transpose back
and the result is made contiguous once with a plain 2-D transpose copy. On one CPU
thread the tiny encoder's CNN forward + backward is 1.2-2x faster
(``benchmarks/step_speedups.py`` prints the ratio; 1.23 on an idle machine); outputs
and gradients are equal up to float rounding (``tests/avsr/models/test_xlsr_model.py``).
"""

from __future__ import annotations

from fairseq2.models.wav2vec2.feature_extractor import (
    Wav2Vec2FeatureExtractionLayer,
    Wav2Vec2FeatureExtractor,
)
from torch import Tensor


class ContiguousFeatureExtractionLayer(Wav2Vec2FeatureExtractionLayer):
    """``Wav2Vec2FeatureExtractionLayer`` whose output is a contiguous (N, C, S) tensor."""

    def forward(self, seqs: Tensor) -> Tensor:
        """seqs (N, C_in, S) -> (N, C_out, S'), contiguous."""
        seqs = self.conv(seqs)
        if self.dropout is not None:
            seqs = self.dropout(seqs)
        if self.group_norm is not None:
            seqs = self.group_norm(seqs)
        if self.layer_norm is None:
            return self.activation(seqs)
        seqs = self.activation(self.layer_norm(seqs.transpose(1, 2)))  # (N, S', C_out)
        return seqs.transpose(1, 2).contiguous()


def use_contiguous_layers(extractor: Wav2Vec2FeatureExtractor) -> int:
    """Switch every LayerNorm layer of ``extractor`` to the faster forward in place
    (the modules keep their parameters and names); returns how many were switched."""
    n = 0
    for layer in extractor.layers:
        if type(layer) is Wav2Vec2FeatureExtractionLayer and layer.layer_norm is not None:
            layer.__class__ = ContiguousFeatureExtractionLayer
            n += 1
    return n
