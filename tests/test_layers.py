"""The import contracts of pyproject.toml hold for the tree, and they bite: the same config
run over an empty copy of the package layout plus one offending import fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("avsr", "preprocessing", "clustering", "tasks")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``root/pyproject.toml``, the packages imported from ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "pyproject.toml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    res = lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def empty_layout(dest: Path) -> None:
    """Every module of the four packages as an empty file, and the project's config."""
    for pkg in PACKAGES:
        for src in (REPO / pkg).rglob("*.py"):
            target = dest / src.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")


@pytest.mark.parametrize(
    ("offenders", "broken"),
    [
        ({"avsr/probe.py": "import tasks\n"}, "Package layers"),
        ({"preprocessing/probe.py": "import clustering.kmeans\n"}, "Package layers"),
        (
            {
                "avsr/models/xlsr/probe.py": "import avsr.models.w2vbert\n",
                "avsr/models/w2vbert/probe.py": "import avsr.models.xlsr\n",
            },
            "No import cycles",
        ),
        ({"avsr/models/families.py": "import avsr.models.encoders\n"}, "avsr.models layers"),
        ({"avsr/inference.py": "from avsr.evaluation import run\n"}, "Evaluation and inference"),
    ],
)
def test_the_contracts_bite(offenders: dict[str, str], broken: str, tmp_path: Path) -> None:
    empty_layout(tmp_path)
    assert lint_imports(tmp_path).returncode == 0  # the empty layout keeps every contract
    for rel, text in offenders.items():
        (tmp_path / rel).write_text(text)
    res = lint_imports(tmp_path)
    assert res.returncode != 0
    broken_section = res.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, res.stdout
