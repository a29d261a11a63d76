"""Atomic file output and the MuAViC manifest / label formats.

Manifest ``{split}.tsv``: first line the root directory, then one row per clip
``id <TAB> video <TAB> audio <TAB> n_video_frames <TAB> n_audio_samples``, with
media paths relative to the root (absolute paths are kept as they are).
Labels ``{split}.{lang}``: one line per clip, in manifest order.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A killed run leaves only a ``.tmp`` file (never a half-written ``path``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """``open`` that writes to a temporary file and renames it on success."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@dataclass(frozen=True, kw_only=True)
class ManifestRow:
    """One clip of a MuAViC manifest."""

    id: str
    video: str
    audio: str
    n_video_frames: int
    n_audio_samples: int


@dataclass(kw_only=True)
class Manifest:
    """A MuAViC ``{split}.tsv``: a root directory and its rows."""

    root: Path
    rows: list[ManifestRow]
    path: Path | None = None

    def resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def __len__(self) -> int:
        return len(self.rows)


class ManifestError(ValueError):
    """A manifest or label file is malformed."""


def read_manifest(path: str | Path) -> Manifest:
    """Read a MuAViC manifest; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ManifestError(f"{path}: empty manifest (the first line must be the root directory)")
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise ManifestError(f"{path}:{lineno}: expected 5 tab-separated fields, got {len(parts)}")
        try:
            rows.append(
                ManifestRow(
                    id=parts[0],
                    video=parts[1],
                    audio=parts[2],
                    n_video_frames=int(parts[3]),
                    n_audio_samples=int(parts[4]),
                )
            )
        except ValueError as exc:
            raise ManifestError(f"{path}:{lineno}: frame/sample counts must be integers") from exc
    return Manifest(root=root, rows=rows, path=path)


def write_manifest(path: str | Path, root: str | Path, rows: Sequence[ManifestRow]) -> None:
    lines = [str(root)]
    for r in rows:
        lines.append(f"{r.id}\t{r.video}\t{r.audio}\t{r.n_video_frames}\t{r.n_audio_samples}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_labels(path: str | Path, expected: int | None = None) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"label file not found: {path}")
    labels = path.read_text(encoding="utf-8").split("\n")
    if labels and labels[-1] == "":
        labels = labels[:-1]
    if expected is not None and len(labels) != expected:
        raise ManifestError(f"{path}: {len(labels)} label lines but the manifest has {expected} rows")
    return labels


def write_labels(path: str | Path, labels: Sequence[str]) -> None:
    for i, lab in enumerate(labels):
        if "\n" in lab:
            raise ManifestError(f"label {i} for {path} contains a newline")
    atomic_write_text(path, "".join(f"{lab}\n" for lab in labels))
