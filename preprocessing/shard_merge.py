"""Merge the shards of a preprocessing run (``avsr preprocess --merge-shards N``).

Checks that every shard ``0..N-1`` finished on the same input list, then writes
what one unsharded run of that list writes under ``OUT``: the manifests and label
files (byte-identical: the same :func:`preprocessing.manifests.write_manifests`
over the same clips and records), ``preprocess.yaml`` (shard 0's config) and
``report.jsonl`` (every record of every shard, ordered by the clip's place in the
input list; a clip's records in the order its shard wrote them). A run with one
worker and no retries gives the same ``report.jsonl`` as an unsharded run except
the timing fields (``seconds``, ``cpu_seconds``, ``frames_per_s``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from avsr.errors import UserError
from avsr.io import atomic_open, atomic_write_text
from avsr.logging_utils import get_logger
from preprocessing.clip import Clip
from preprocessing.manifests import write_manifests
from preprocessing.pipeline import count_statuses, output_paths
from preprocessing.shards import Shard, clips_fingerprint, read_done_marker

log = get_logger(__name__)

History = dict[str, list[dict[str, Any]]]


class ShardsNotDone(UserError):
    """Some shards did not finish (or ran on other input); ``shards`` lists their numbers."""

    def __init__(self, message: str, shards: list[int]) -> None:
        super().__init__(message)
        self.shards = shards


def _check_marker(shard: Shard, out_dir: Path, fingerprint: str) -> str | None:
    """Why the shard cannot be merged, or None when its done marker fits this input."""
    marker = read_done_marker(shard, out_dir)
    rel = shard.done_path(out_dir).relative_to(out_dir)
    if marker is None:
        return f"shard {shard.index}/{shard.count}: not finished (no {rel})"
    if marker.get("fingerprint") != fingerprint:
        return (
            f"shard {shard.index}/{shard.count}: ran on another clip list ({rel}: other --input, "
            "--transcripts, --lang or --split)"
        )
    return None


def _read_history(shard: Shard, out_dir: Path, mine: Sequence[Clip]) -> tuple[History, list[str]]:
    """The shard's records of its own clips (id -> records in file order); ids without one."""
    wanted = {c.id for c in mine}
    history: History = {}
    path = shard.report_path(out_dir)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            rid = rec["id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn line of a killed run; its clip was redone later
        if rid in wanted:
            history.setdefault(rid, []).append(rec)
    return history, [c.id for c in mine if c.id not in history]


def _missing_outputs(out_dir: Path, history: History) -> list[str]:
    """Ids whose last record is ok but whose ROI video or audio file is not there."""
    missing = []
    for cid, recs in history.items():
        rec = recs[-1]
        if rec.get("status") != "ok":
            continue
        video, audio = output_paths(out_dir, cid)
        if not video.is_file() or (rec.get("audio") is not None and not audio.is_file()):
            missing.append(cid)
    return missing


def _read_config(shard: Shard, out_dir: Path) -> tuple[str, dict[str, Any]]:
    """(text, fields without ``workers``) of the shard's ``preprocess.K-of-N.yaml``."""
    path = shard.config_path(out_dir)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    fields = yaml.safe_load(text) if text else None
    if not isinstance(fields, dict):
        return text, {}
    fields.pop("workers", None)
    return text, fields


def _check_shard(
    shard: Shard, out_dir: Path, clips: Sequence[Clip], fingerprint: str
) -> tuple[str | None, History]:
    """(why the shard cannot be merged, or None; the records of its clips)."""
    problem = _check_marker(shard, out_dir, fingerprint)
    if problem is not None:
        return problem, {}
    where = f"shard {shard.index}/{shard.count}"
    part, lacking = _read_history(shard, out_dir, shard.select(clips))
    if lacking:
        report = shard.report_path(out_dir).relative_to(out_dir)
        return f"{where}: {report} has no record of {len(lacking)} clip(s), e.g. {lacking[0]}", part
    gone = _missing_outputs(out_dir, part)
    if gone:
        return (
            f"{where}: the video or audio of {len(gone)} ok clip(s) is gone, e.g. {gone[0]}",
            part,
        )
    return None, part


def _collect(
    clips: Sequence[Clip], out_dir: Path, count: int
) -> tuple[History, str, list[str], list[int]]:
    """(history of all clips, shard 0's config text, problems, shards with a problem)."""
    fingerprint = clips_fingerprint(clips)
    history: History = {}
    problems: list[str] = []
    bad: list[int] = []
    config0: tuple[str, dict[str, Any]] | None = None
    for k in range(count):
        shard = Shard(k, count)
        problem, part = _check_shard(shard, out_dir, clips, fingerprint)
        history.update(part)
        if problem is None:
            config = _read_config(shard, out_dir)
            config0 = config0 or config
            if config[1] != config0[1]:
                name = shard.config_path(out_dir).name
                problem = (
                    f"shard {k}/{count}: ran with another config than the shards before it ({name})"
                )
        if problem is not None:
            problems.append(problem)
            bad.append(k)
    return history, config0[0] if config0 else "", problems, bad


def merge_shards(clips: Sequence[Clip], out_dir: str | Path, count: int) -> dict[str, Any]:
    """Merge shards ``0..count-1`` of ``clips`` in ``out_dir``; raises :class:`ShardsNotDone`.

    Returns a summary: ``clips``, ``statuses`` (clips per status), ``manifests`` (rows per manifest).
    """
    if count < 1:
        raise UserError(f"--merge-shards {count}: need N >= 1")
    out_dir = Path(out_dir).resolve()
    history, config_text, problems, bad = _collect(clips, out_dir, count)
    if problems:
        raise ShardsNotDone(
            f"{out_dir}: cannot merge {count} shard(s); {len(bad)} not ready:\n  "
            + "\n  ".join(problems)
            + "\nrerun them (avsr preprocess ... --shard K/N), then merge again",
            bad,
        )
    with atomic_open(out_dir / "report.jsonl") as fh:
        for c in clips:
            for rec in history[c.id]:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    records = {cid: recs[-1] for cid, recs in history.items()}
    counts = write_manifests(out_dir, clips, records)
    atomic_write_text(out_dir / "preprocess.yaml", config_text)
    log.info("merged %d shard(s) of %d clip(s) into %s", count, len(clips), out_dir)
    return {"clips": len(clips), "statuses": count_statuses(clips, records), "manifests": counts}
