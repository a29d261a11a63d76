"""Models: XLS-R-family audio encoders (``xlsr``), the audio-visual model (``av``), heads."""
