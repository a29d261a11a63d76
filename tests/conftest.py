"""Fixtures shared by the test folders: tiny real model directories, built once per session
(from fixed seeds) and only read by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_models import make_tiny_finetuned, save_tiny_av_init, save_tiny_xlsr


@pytest.fixture(scope="session")
def tiny_xlsr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project encoder dir of the XLS-R ``tiny`` arch (seed 0)."""
    return save_tiny_xlsr(tmp_path_factory.mktemp("enc") / "tiny")


@pytest.fixture(scope="session")
def tiny_av_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AV model dir (XLS-R ``tiny`` + narrow lip ResNet, seed 0): an ``--init`` to fine-tune."""
    return save_tiny_av_init(tmp_path_factory.mktemp("av") / "av_init")


@pytest.fixture(scope="session")
def tiny_finetuned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tuned AV CTC model dir (1 Transformer layer of 32 dims, seed 0)."""
    return make_tiny_finetuned(tmp_path_factory.mktemp("finetuned") / "model")
