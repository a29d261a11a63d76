from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from avsr.config import (
    ConfigError,
    dump_config,
    from_dict,
    load_config,
    read_config_file,
    save_config,
    to_dict,
)


@dataclass(kw_only=True)
class OptimCfg:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 100


@dataclass(kw_only=True)
class DemoCfg:
    name: str = "run"
    mode: Literal["av", "a", "v"] = "av"
    layers: list[int] = field(default_factory=lambda: [1, 2])
    out: Path | None = None
    fp16: bool = False
    train: OptimCfg = field(default_factory=OptimCfg)


def test_round_trip(tmp_path: Path) -> None:
    cfg = DemoCfg(name="x", mode="a", layers=[3], out=Path("/tmp/o"), train=OptimCfg(lr=0.5))
    path = save_config(cfg, tmp_path / "c.yaml")
    assert yaml.safe_load(path.read_text())["version"] == 1
    back = load_config(DemoCfg, path)
    assert back == cfg
    assert to_dict(back)["train"]["betas"] == [0.9, 0.98]


def test_unknown_key_lists_valid(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lrr: 3\n")
    with pytest.raises(ConfigError) as ei:
        load_config(DemoCfg, p)
    msg = str(ei.value)
    assert "train.lrr" in msg and "lr" in msg and "warmup" in msg and str(p) in msg


def test_wrong_type() -> None:
    with pytest.raises(ConfigError, match="train.warmup"):
        from_dict(DemoCfg, {"train": {"warmup": "ten"}})
    with pytest.raises(ConfigError, match="mode"):
        from_dict(DemoCfg, {"mode": "audio"})
    with pytest.raises(ConfigError, match="fp16"):
        from_dict(DemoCfg, {"fp16": 1})


def test_overrides() -> None:
    cfg = load_config(DemoCfg, None, ["train.lr=3e-4", "mode=v", "layers=[4, 5]", "out=/x"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.mode == "v" and cfg.layers == [4, 5] and cfg.out == Path("/x")
    assert cfg.train.warmup == 100  # untouched sibling keeps its default
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        load_config(DemoCfg, None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="train.warmup"):
        load_config(DemoCfg, None, ["train.warmup=1.5"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(DemoCfg, None, ["train.lr"])


def test_int_promotes_to_float_and_dump() -> None:
    cfg = from_dict(DemoCfg, {"train": {"lr": 1}})
    assert isinstance(cfg.train.lr, float)
    assert dump_config(cfg).startswith("version: 1\n")


def test_atomic_output_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from avsr.io import atomic_write_text

    atomic_write_text(tmp_path / "x.txt", "hi")
    mode = stat.S_IMODE(os.stat(tmp_path / "x.txt").st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
    assert not list(tmp_path.glob(".*.tmp"))


def test_overrides_into_optional_sections_and_free_form_dicts() -> None:
    from tasks.finetune_config import FinetuneConfig

    cfg = load_config(FinetuneConfig, None, ["model.masking.audio_prob=0.3", "model.encoder_overrides.dropout=0.1"])
    assert cfg.model.masking is not None and cfg.model.masking.audio_prob == 0.3
    assert cfg.model.masking.audio_span == 10  # the section's other defaults
    assert cfg.model.encoder_overrides == {"dropout": 0.1}
    with pytest.raises(ConfigError, match="unknown config key 'model.maskin'"):
        load_config(FinetuneConfig, None, ["model.maskin.audio_prob=0.3"])
    with pytest.raises(ConfigError, match="audio_probb"):
        load_config(FinetuneConfig, None, ["model.masking.audio_probb=0.3"])


def test_base_chain_deep_merges(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.yaml").write_text("name: root\nlayers: [7]\ntrain: {lr: 0.5, warmup: 7}\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../root.yaml\ntrain: {warmup: 8}\n")
    (tmp_path / "top.yaml").write_text("base: sub/mid.yaml\nmode: v\nlayers: [1, 2, 3]\n")
    cfg = load_config(DemoCfg, tmp_path / "top.yaml", ["train.lr=0.25"])
    assert cfg == DemoCfg(name="root", mode="v", layers=[1, 2, 3], train=OptimCfg(lr=0.25, warmup=8))
    data, files = read_config_file(tmp_path / "top.yaml")
    assert "base" not in data and [f.name for f in files] == ["top.yaml", "mid.yaml", "root.yaml"]
    saved = yaml.safe_load(save_config(cfg, tmp_path / "out.yaml").read_text())
    assert "base" not in saved and saved["name"] == "root" and saved["train"]["warmup"] == 8


def test_base_cycle_and_errors_name_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(DemoCfg, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(DemoCfg, tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("train: {nope: 1}\n")
    (tmp_path / "e.yaml").write_text("base: d.yaml\n")
    with pytest.raises(ConfigError, match=r"e\.yaml \(base .*d\.yaml\).*train\.nope"):
        load_config(DemoCfg, tmp_path / "e.yaml")


def test_large_pretrain_configs_are_the_300m_recipe_with_their_differences() -> None:
    from tasks.pretrain_config import PretrainConfig
    from tests.helpers import REPO

    base = to_dict(load_config(PretrainConfig, REPO / "configs" / "pretrain_300m.yaml"))
    for size, lr in (("1b", 3e-4), ("2b", 2e-4)):
        cfg = to_dict(load_config(PretrainConfig, REPO / "configs" / f"pretrain_{size}.yaml"))
        assert cfg["model"]["encoder"]["arch"] == f"xlsr_{size}" and cfg["train"]["distributed"] == "fsdp2"
        assert cfg["optim"]["lr"] == lr
        cfg["model"]["encoder"]["arch"], cfg["train"]["distributed"], cfg["optim"]["lr"] = "xlsr_300m", "ddp", 5e-4
        assert cfg == base
