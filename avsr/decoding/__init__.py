"""Decoding beyond the model's own greedy/beam search: CTC prefix beam search with a word
n-gram language model (:mod:`avsr.decoding.ctc_lm`) and the ARPA checks it relies on
(:mod:`avsr.decoding.arpa`)."""
