"""Shared test helpers: tiny real models and toy training data (imported as ``tests.helpers``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root (configs/, benchmarks/, README.md)."""
