"""Models: audio encoder families (``xlsr``: wav2vec 2.0 / XLS-R, ``w2vbert``) behind one
registry (``families``, ``encoders``), the audio-visual model (``av``), heads, the fine-tuned
model (``finetuned``) and HF CTC interop (``hf_ctc``)."""
