"""Command-line pieces shared by the ``avsr`` task commands: config file, ``--set`` overrides."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from avsr.config import ConfigError, load_config
from avsr.errors import UserError

T = TypeVar("T")


def add_set_arg(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str,
    *,
    flag: str = "--set",
    dest: str | None = "overrides",
) -> None:
    """A repeatable ``KEY=VALUE`` option collected into a list (``args.overrides`` by default;
    ``dest=None``: named after ``flag``)."""
    parser.add_argument(
        flag, dest=dest, action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_config_arg(
    parser: argparse.ArgumentParser, help: str, *, type: Any = None, metavar: str | None = None
) -> None:
    """The ``--config FILE`` option (a YAML config; ``type=Path`` for a :class:`Path`)."""
    parser.add_argument("--config", type=type, metavar=metavar, help=help)


def load_task_config(cls: type[T], path: str | Path | None, overrides: Sequence[str]) -> T:
    """:func:`avsr.config.load_config`, its errors turned into a :class:`UserError`."""
    try:
        return load_config(cls, path, overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
