"""Encoder features -> faiss k-means -> unit labels."""
