from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from avsr.cli import COMMANDS, main


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.main)
    with pytest.raises(SystemExit) as ei:
        main([name, "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert f"avsr {name}" in out and len(out.splitlines()) >= 3


def test_console_script_installed() -> None:
    res = subprocess.run([sys.executable, "-m", "avsr.cli", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "xlavsr" in res.stdout
