"""``avsr pretrain`` / ``avsr finetune`` stop at start when the config asks for noise without a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsr.cli import main as cli_main
from tests.helpers import REPO


@pytest.mark.parametrize("size", ["300m", "1b", "2b"])
def test_pretrain_recipe_without_noise_dir_fails_at_start(
    size: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = REPO / "configs" / f"pretrain_{size}.yaml"
    argv = ["pretrain", "--config", str(config), "--data", str(tmp_path), "--labels", str(tmp_path),
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "data.noise_prob is 0.25" in err and "data.noise_dir is null" in err
    assert "--set data.noise_dir=NOISE" in err
    assert not (tmp_path / "run").exists()


def test_finetune_recipe_without_noise_dir_fails_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = REPO / "configs" / "finetune_300m.yaml"
    argv = ["finetune", "--config", str(config), "--data", str(tmp_path), "--init", str(tmp_path),
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "data.noise_dir" in err and "data.noise_prob" in err
