"""``scripts/setup.sh`` on a machine whose only Python is 3.13: a clear error naming what to
install and how to rerun, before anything is installed (the pinned fairseq2n and mediapipe
wheels stop at Python 3.12)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import REPO


def _machine(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the script and a PATH whose ``python3`` is a fake 3.13 (no other Python)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text("#!/bin/sh\necho 3.13\n")
    fake.chmod(0o755)
    for tool in ("cat", "dirname"):
        os.symlink(shutil.which(tool) or f"/bin/{tool}", bin_dir / tool)
    return tmp_path / "scripts" / "setup.sh", bin_dir


def test_only_python_3_13_gives_an_actionable_error(tmp_path: Path) -> None:
    script, bin_dir = _machine(tmp_path)
    bash = shutil.which("bash") or "/bin/bash"
    for extra in ({}, {"PYTHON": str(bin_dir / "python3")}):
        env = {"PATH": str(bin_dir), **extra}
        res = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 1
        assert "is Python 3.13; xlavsr needs Python 3.10, 3.11 or 3.12" in res.stderr
        assert "fairseq2n" in res.stderr and "uv python install 3.12" in res.stderr
        assert "PYTHON=python3.12 make test" in res.stderr
        assert not (tmp_path / ".venv").exists()
