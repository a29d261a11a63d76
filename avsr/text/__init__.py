"""Target text: normalisation and the SentencePiece tokenizer of fine-tuned models."""

from avsr.text.normalize import normalize_target
from avsr.text.tokenizer import Tokenizer, train_tokenizer

__all__ = ["Tokenizer", "normalize_target", "train_tokenizer"]
