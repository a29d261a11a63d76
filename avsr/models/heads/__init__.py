"""Fine-tuning heads: CTC (greedy decoding) and a Transformer decoder (beam search, optionally
joint with the CTC branch's prefix scores)."""

from avsr.models.heads.beam import Hypothesis, JointCTC, beam_search
from avsr.models.heads.ctc import CTCHead, CTCHeadConfig, ctc_greedy_decode
from avsr.models.heads.ctc_prefix import CTCPrefixScorer
from avsr.models.heads.decoder import DecoderConfig, TransformerDecoder, decoder_preset

__all__ = [
    "CTCHead",
    "CTCHeadConfig",
    "CTCPrefixScorer",
    "DecoderConfig",
    "Hypothesis",
    "JointCTC",
    "TransformerDecoder",
    "beam_search",
    "ctc_greedy_decode",
    "decoder_preset",
]
