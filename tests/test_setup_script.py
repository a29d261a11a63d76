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


def _low_disk_machine(tmp_path: Path, avail_kb: int) -> tuple[Path, dict[str, str]]:
    """A checkout with a fresh .venv (Python 3.11, no torch yet), the Debian packages in
    place, and a ``df`` that reports ``avail_kb`` free on one disk for every folder."""
    script, bin_dir = _machine(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "constraints.txt").write_text("")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text(
        "#!/bin/sh\n"
        'case "$2" in *"import torch"*) exit 1 ;; *version_info*) echo 3.11 ;; esac\n'
        'case "$*" in *"pip install"*) echo PIP-RAN >&2 ;; esac\n'
    )
    python.chmod(0o755)
    fakes = {
        "dpkg-query": "#!/bin/sh\necho 'install ok installed'\n",
        "df": (
            "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted'\n"
            f'case "$*" in *-m*) echo "/dev/x 1 1 {avail_kb // 1024} 99% /" ;; '
            f'*) echo "/dev/x 1 1 {avail_kb} 99% /" ;; esac\n'
        ),
    }
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for tool in ("grep", "awk", "sha256sum", "cut", "id"):
        os.symlink(shutil.which(tool) or f"/usr/bin/{tool}", bin_dir / tool)
    return script, {"PATH": str(bin_dir), "TMPDIR": str(tmp_path)}


def test_first_install_refuses_early_when_the_disk_is_too_full(tmp_path: Path) -> None:
    script, env = _low_disk_machine(tmp_path, avail_kb=3_000_000)
    bash = shutil.which("bash") or "/bin/bash"
    res = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "only 2929 MB free for .venv" in res.stderr and "needs about 13500 MB" in res.stderr
    assert "PIP-RAN" not in res.stderr  # nothing was installed


def test_enough_disk_goes_on_to_install(tmp_path: Path) -> None:
    script, env = _low_disk_machine(tmp_path, avail_kb=20_000_000)
    bash = shutil.which("bash") or "/bin/bash"
    res = subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert "free for .venv" not in res.stderr
    assert "PIP-RAN" in res.stderr
