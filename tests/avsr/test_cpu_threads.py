"""ThreadBudget: a process follows the thread count its stage runner writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from avsr.cpu_threads import THREADS_FILE_ENV, ThreadBudget


@pytest.fixture
def keep_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_without_a_budget_file_nothing_changes(monkeypatch: pytest.MonkeyPatch, keep_threads: int) -> None:
    monkeypatch.delenv(THREADS_FILE_ENV, raising=False)
    assert ThreadBudget(every=0).poll() is None
    assert torch.get_num_threads() == keep_threads


def test_a_changed_budget_is_applied_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_threads: int) -> None:
    path = tmp_path / "stage.threads"
    monkeypatch.setenv(THREADS_FILE_ENV, str(path))
    budget = ThreadBudget(every=0)
    assert budget.poll() is None  # not written yet
    path.write_text("not a number\n")
    assert budget.poll() is None
    other = 1 if keep_threads != 1 else 2
    path.write_text(f"{other}\n")
    assert budget.poll() == other
    assert torch.get_num_threads() == other
    assert budget.poll() is None  # the same budget: nothing to do


def test_the_file_is_read_at_most_every_few_seconds(tmp_path: Path, keep_threads: int) -> None:
    path = tmp_path / "stage.threads"
    budget = ThreadBudget(path, every=3600.0)
    assert budget.poll() is None  # looked: no file
    path.write_text(f"{1 if keep_threads != 1 else 2}\n")
    assert budget.poll() is None  # too soon to look again
    assert torch.get_num_threads() == keep_threads
