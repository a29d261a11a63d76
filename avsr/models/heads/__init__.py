"""Fine-tuning heads: CTC (greedy decoding) and a Transformer decoder (beam search)."""

from avsr.models.heads.beam import Hypothesis, beam_search
from avsr.models.heads.ctc import CTCHead, CTCHeadConfig, ctc_greedy_decode
from avsr.models.heads.decoder import DecoderConfig, TransformerDecoder, decoder_preset

__all__ = [
    "CTCHead",
    "CTCHeadConfig",
    "DecoderConfig",
    "Hypothesis",
    "TransformerDecoder",
    "beam_search",
    "ctc_greedy_decode",
    "decoder_preset",
]
