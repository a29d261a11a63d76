"""One shard of a preprocessing run (``avsr preprocess --shard K/N``).

Clip ``i`` of the input list (in the order :func:`preprocessing.clip.read_input`
gives) belongs to shard ``i mod N``; shards are numbered ``0..N-1``. A shard writes
the clips' ROI videos and audio where an unsharded run writes them, and keeps its
own files under ``OUT/shards/`` (never another shard's)::

    shards/report.K-of-N.jsonl     # the shard's report records (resumable like report.jsonl)
    shards/preprocess.K-of-N.yaml  # the config it ran with
    shards/done.K-of-N.json        # written last: the shard finished (see :func:`finish_shard`)

The manifests, ``report.jsonl`` and ``preprocess.yaml`` are written by the merge
(:mod:`preprocessing.shard_merge`) once every shard is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avsr.config import save_config
from avsr.errors import UserError
from avsr.io import atomic_write_json
from preprocessing.clip import Clip, PreprocessConfig

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    """This shard's number, from 0."""
    count: int
    """Number of shards."""

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UserError(f"shard {self.index}/{self.count}: need 0 <= K < N and N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``'K/N'`` -> ``Shard(K, N)``."""
        m = _SHARD_RE.match(text)
        if not m:
            raise UserError(f"--shard {text!r}: expected K/N, e.g. 3/64 (K from 0 to N-1)")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def name(self) -> str:
        """``'K-of-N'``, the infix of this shard's file names."""
        return f"{self.index}-of-{self.count}"

    def select(self, clips: Sequence[Clip]) -> list[Clip]:
        """The clips of this shard, in input order."""
        return list(clips[self.index :: self.count])

    def report_path(self, out_dir: Path) -> Path:
        return shards_dir(out_dir) / f"report.{self.name}.jsonl"

    def config_path(self, out_dir: Path) -> Path:
        return shards_dir(out_dir) / f"preprocess.{self.name}.yaml"

    def done_path(self, out_dir: Path) -> Path:
        return shards_dir(out_dir) / f"done.{self.name}.json"


def shards_dir(out_dir: Path) -> Path:
    """``OUT/shards``: the per-shard reports, configs and done markers."""
    return Path(out_dir) / "shards"


def clips_fingerprint(clips: Sequence[Clip]) -> str:
    """sha256 of the whole input list (every field of every clip, in order).

    Shards of one run must agree on it: a shard started with another input,
    ``--transcripts``, ``--lang`` or ``--split`` would split a different list.
    """
    h = hashlib.sha256()
    for c in clips:
        h.update(json.dumps(asdict(c), ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def begin_shard(shard: Shard, out_dir: Path, clips: Sequence[Clip]) -> tuple[list[Clip], int]:
    """Start (or restart) a shard: forget its done marker, delete its clips' temporary files.

    Returns (the shard's clips, temporary files removed). Temporary files of other
    shards' clips, which may be running now, are left alone.
    """
    shards_dir(out_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        shard.done_path(out_dir).unlink()
    mine = shard.select(clips)
    return mine, remove_clip_temp_files(out_dir, mine)


def remove_clip_temp_files(out_dir: Path, clips: Sequence[Clip]) -> int:
    """Delete the temporary files a killed run left for these clips (``video/.{id}.mp4.*.tmp`` ...).

    Each output folder is listed once (``atomic_path`` names a temporary file
    ``.{name}.{random}.tmp``, the random part without dots).
    """
    n = 0
    for sub, ext in (("video", ".mp4"), ("audio", ".wav"), ("landmarks", ".npz")):
        names = {f"{c.id}{ext}" for c in clips}
        folder = Path(out_dir) / sub
        for p in folder.glob(".*.tmp") if folder.is_dir() else ():
            if p.name[1:].rsplit(".", 2)[0] in names:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
    return n


def finish_shard(
    shard: Shard,
    out_dir: Path,
    cfg: PreprocessConfig,
    clips: Sequence[Clip],
    statuses: dict[str, int],
) -> None:
    """Write the shard's config, then its done marker (the last file a shard writes).

    The marker (JSON) holds ``shard``, ``count``, ``clips`` (in this shard),
    ``total_clips`` and ``fingerprint`` (of the whole input list) and ``statuses``.
    """
    save_config(cfg, shard.config_path(out_dir))
    marker = {
        "shard": shard.index,
        "count": shard.count,
        "clips": len(shard.select(clips)),
        "total_clips": len(clips),
        "fingerprint": clips_fingerprint(clips),
        "statuses": statuses,
    }
    atomic_write_json(shard.done_path(out_dir), marker)


def read_done_marker(shard: Shard, out_dir: Path) -> dict[str, Any] | None:
    """The shard's done marker, or None when it did not finish."""
    path = shard.done_path(out_dir)
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return marker if isinstance(marker, dict) else None
