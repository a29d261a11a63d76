"""Loading pickled (``torch.save``) checkpoints without executing pickled code.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers only.
fairseq1 checkpoints also pickle an ``argparse.Namespace`` (old ``args``), numpy
arrays and fairseq/omegaconf objects (meters, configs) in their training state.
Those are allowed as follows, and only these:

- ``argparse.Namespace`` and numpy array/dtype reconstruction: the real types
  (their reconstruction runs no user code);
- any class from the ``fairseq``/``omegaconf`` packages: replaced by an inert
  :class:`PickledObject` that only records its constructor arguments and state
  (nothing of fairseq is imported or run);
- anything else (``os.system``, ``builtins.eval``, ``subprocess.*``, ...):
  the file is refused with an error naming the offending globals.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from avsr.errors import UserError

_STUB_PACKAGES = ("fairseq", "omegaconf", "fairseq2", "hydra")


class PickledObject:
    """Inert stand-in for a class from a package that is not loaded (records its data only)."""

    pickled_name: str = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"PickledObject({self.pickled_name})"


def _stub(name: str) -> type:
    return type("PickledObject_" + name.replace(".", "_"), (PickledObject,), {"pickled_name": name})


def _numpy_globals() -> list[Any]:
    out: list[Any] = []
    try:
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined]

        out += [_reconstruct, scalar]
    except ImportError:  # pragma: no cover - numpy layout differs
        pass
    out += [np.ndarray, np.dtype]
    out += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return out


def _allowed_for(names: list[str], path: Path) -> list[Any]:
    """Safe globals for the unsafe global ``names`` of a checkpoint, or a refusal."""
    known: dict[str, Any] = {"argparse.Namespace": argparse.Namespace}
    for obj in _numpy_globals():
        known[f"{obj.__module__}.{obj.__qualname__}"] = obj
        known[f"{obj.__module__}.{obj.__name__}"] = obj
    known["numpy.core.multiarray._reconstruct"] = known.get(
        "numpy._core.multiarray._reconstruct", known.get("numpy.core.multiarray._reconstruct")
    )
    known["numpy.core.multiarray.scalar"] = known.get(
        "numpy._core.multiarray.scalar", known.get("numpy.core.multiarray.scalar")
    )
    known["numpy.dtype"] = np.dtype
    known["numpy.ndarray"] = np.ndarray
    allowed: list[Any] = []
    refused: list[str] = []
    for name in names:
        obj = known.get(name)
        if obj is not None:
            allowed.append((obj, name))
        elif name.split(".")[0] in _STUB_PACKAGES:
            allowed.append((_stub(name), name))
        else:
            refused.append(name)
    if refused:
        raise UserError(
            f"{path}: refusing to load: the pickle would call {', '.join(sorted(set(refused)))} "
            "(only tensors, containers, argparse.Namespace, numpy arrays and inert fairseq/omegaconf objects are allowed)"
        )
    return allowed


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` of a user's file without running pickled code (see module docs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    allowed: list[Any] = [(argparse.Namespace, "argparse.Namespace")]
    if zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse failure means "not a checkpoint"
            raise UserError(
                f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {exc})"
            ) from exc
        allowed = _allowed_for(list(unsafe), path)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if (
            "Unsupported global" in str(exc)
            or "GLOBAL" in str(exc)
            or "not an allowed global" in str(exc)
        ):
            raise UserError(f"{path}: refusing to load: {msg}") from exc
        raise UserError(f"{path}: not a PyTorch checkpoint ({msg})") from exc
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
        MemoryError,
        OverflowError,
    ) as exc:
        raise UserError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def plain(obj: Any) -> Any:
    """A pickled config as plain data: Namespace -> dict, inert objects -> their recorded state."""
    if isinstance(obj, argparse.Namespace):
        return {k: plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, PickledObject):
        state = obj.state
        if isinstance(state, dict) and "_content" in state:  # omegaconf DictConfig/ListConfig/node
            return plain(state["_content"])
        if isinstance(state, dict) and "_val" in state:  # omegaconf ValueNode
            return plain(state["_val"])
        return plain(state) if state is not None else None
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
