"""MUSAN as distributed -> a noise folder with train/valid/test lists (AV-HuBERT's layout).

Input: the MUSAN tree as it unpacks, ``MUSAN/{music,noise,speech}/<source>/*.wav``
(sources such as fma, jamendo, rfm; free-sound, sound-bible; librivox, us-gov) plus
its README, LICENSE and ANNOTATIONS text files, which are ignored. Output under ``NOISE``::

    {music,noise,speech}/<source>/<recording>-NNN.wav   pieces, 16 kHz mono 16-bit
    babble/{train,valid,test}/babble-<split>-NNN.wav    babble from the speech pieces of the split
    {all,babble,music,noise,speech}/{split}.tsv         one piece per line, relative to NOISE
    prepare.json                                        counts, skipped and resampled files

- pieces: every recording is cut into ``piece_seconds`` (10 s) pieces; a tail of at
  most ``max_seconds - piece_seconds`` (1 s) joins the last piece, a tail of at least
  ``min_seconds`` (3 s) is a piece of its own, any other tail is dropped; so every
  piece lasts 3 to 11 s, and recordings shorter than 3 s are skipped;
- splits: the recordings (not the pieces) of each category are shuffled with the seed
  and dealt 0.8 / 0.1 / 0.1 to train / valid / test, so the lists of one category are
  disjoint and pieces of one recording never cross splits;
- babble: :func:`avsr.babble.mix_babble` of 30 streams of the split's speech pieces,
  each babble one piece long (``piece_seconds``);
- all: music, noise and babble together (speech stays its own category: one
  interfering talker);
- a wav that cannot be read is skipped and named in ``prepare.json``; other sample
  rates and channel counts are resampled/downmixed to 16 kHz mono (logged per file,
  counted in ``prepare.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from avsr.audio import SAMPLE_RATE, read_audio
from avsr.babble import mix_babble
from avsr.errors import UserError
from avsr.io import atomic_path, atomic_write_json, atomic_write_text
from avsr.logging_utils import get_logger, progress
from avsr.noise import stable_hash

log = get_logger(__name__)

MUSAN_CATEGORIES = ("music", "noise", "speech")
"""The category folders of MUSAN as distributed."""
SPLITS = ("train", "valid", "test")
SHARES = (0.8, 0.1, 0.1)
"""Share of the recordings of a category in train / valid / test."""
ALL_PARTS = ("music", "noise", "babble")
"""Categories listed together in ``all/{split}.tsv``."""


@dataclass(kw_only=True)
class PrepareOptions:
    """How MUSAN is cut, split and mixed."""

    seed: int = 0
    """Seed of the split assignment and of the babble mixes."""
    piece_seconds: float = 10.0
    """Length of the pieces the recordings are cut into (and of a babble file)."""
    min_seconds: float = 3.0
    """Shortest piece kept."""
    max_seconds: float = 11.0
    """Longest piece (a short tail joins the last piece up to this length)."""
    babble_files: int = 100
    """Babble files over all splits (dealt 0.8 / 0.1 / 0.1)."""
    babble_streams: int = 30
    """Speech streams averaged in one babble file."""


@dataclass(kw_only=True)
class PrepareReport:
    """What :func:`prepare_musan` did (written to ``NOISE/prepare.json``)."""

    pieces: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """category -> split -> piece paths relative to NOISE."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Recordings left out: ``{"file": ..., "reason": ...}``."""
    resampled: list[dict[str, Any]] = field(default_factory=list)
    """Recordings not at 16 kHz mono: ``{"file": ..., "rate": ..., "channels": ...}``."""

    def add(self, category: str, split: str, rel: str) -> None:
        self.pieces.setdefault(category, {s: [] for s in SPLITS})[split].append(rel)

    def summary(self) -> dict[str, Any]:
        counts = {c: {s: len(v) for s, v in by.items()} for c, by in self.pieces.items()}
        return {
            "pieces": counts,
            "skipped": len(self.skipped),
            "resampled": len(self.resampled),
        }


def find_musan_root(musan: Path) -> Path:
    """The folder holding ``music/noise/speech`` (``musan`` itself or ``musan/musan``).

    Raises UserError naming every missing category folder.
    """
    musan = Path(musan)
    if not musan.is_dir():
        raise UserError(f"{musan}: MUSAN folder not found")
    nested = musan / "musan"
    if not (musan / "music").is_dir() and nested.is_dir():
        musan = nested
    missing = [str(musan / c) for c in MUSAN_CATEGORIES if not (musan / c).is_dir()]
    if missing:
        raise UserError(
            f"{musan}: not a MUSAN folder (expected music/, noise/, speech/ with "
            f"<source>/*.wav): missing {', '.join(missing)}"
        )
    return musan


def piece_bounds(
    n: int, rate: int, piece_s: float = 10.0, min_s: float = 3.0, max_s: float = 11.0
) -> list[tuple[int, int]]:
    """(start, end) sample bounds of the pieces of an ``n``-sample recording (see module doc)."""
    piece, lo, hi = int(piece_s * rate), int(min_s * rate), int(max_s * rate)
    if n < lo:
        return []
    k, rem = divmod(n, piece)
    bounds = [(i * piece, (i + 1) * piece) for i in range(k)]
    if rem and k and piece + rem <= hi:
        bounds[-1] = (bounds[-1][0], n)
    elif rem >= lo:
        bounds.append((k * piece, n))
    return bounds


def shuffled(items: Sequence[str], seed: int, key: str) -> list[str]:
    """The sorted ``items`` in an order drawn from (seed, key): the same on every run."""
    order = sorted(items)
    rng = np.random.default_rng([seed, stable_hash("splits", key) % 2**32])
    return [order[i] for i in rng.permutation(len(order))]


def assign_splits(
    items: Sequence[str], seed: int, key: str, shares: Sequence[float] = SHARES
) -> dict[str, str]:
    """item -> split: the sorted items shuffled by (seed, key), dealt by ``shares``.

    valid and test get ``round(share * n)`` items each, at least one when there are
    three items or more; train gets the rest.
    """
    perm = shuffled(items, seed, key)
    n = len(perm)
    n_valid, n_test = (round(s * n) for s in shares[1:])
    if n >= 3:
        n_valid, n_test = max(1, n_valid), max(1, n_test)
    out = {item: "valid" for item in perm[:n_valid]}
    out.update({item: "test" for item in perm[n_valid : n_valid + n_test]})
    out.update({item: "train" for item in perm[n_valid + n_test :]})
    return out


def write_wav16(path: Path, audio: np.ndarray) -> None:
    """16-bit PCM 16 kHz mono wav, written atomically (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _read_recording(path: Path, rel: str, report: PrepareReport) -> np.ndarray | None:
    """16 kHz mono samples of one MUSAN wav, or None (skip recorded in ``report``)."""
    try:
        info = sf.info(str(path))
        audio = read_audio(path)
    except (UserError, RuntimeError, OSError) as exc:
        log.warning("%s: unreadable, skipped (%s)", path, exc)
        report.skipped.append({"file": rel, "reason": f"unreadable: {exc}"})
        return None
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        report.resampled.append({"file": rel, "rate": info.samplerate, "channels": info.channels})
    return audio


def _cut_category(
    musan: Path, out: Path, category: str, opts: PrepareOptions, report: PrepareReport
) -> None:
    """Pieces of every recording of one category, under ``out/category`` by split."""
    folder = musan / category
    files = sorted(f for f in folder.rglob("*.wav") if f.is_file())
    if not files:
        raise UserError(f"{folder}: no .wav files (expected {folder}/<source>/*.wav)")
    rels = {f: f.relative_to(folder).as_posix() for f in files}
    splits = assign_splits(list(rels.values()), opts.seed, category)
    report.pieces.setdefault(category, {s: [] for s in SPLITS})
    for f in progress(files, desc=f"musan {category}", unit="file"):
        rel = f"{category}/{rels[f]}"
        audio = _read_recording(f, rel, report)
        if audio is None:
            continue
        bounds = piece_bounds(
            audio.size, SAMPLE_RATE, opts.piece_seconds, opts.min_seconds, opts.max_seconds
        )
        if not bounds:
            report.skipped.append({"file": rel, "reason": f"shorter than {opts.min_seconds:g} s"})
            continue
        stem = Path(rels[f]).with_suffix("")
        for i, (a, b) in enumerate(bounds):
            piece = Path(category) / stem.parent / f"{stem.name}-{i:03d}.wav"
            write_wav16(out / piece, audio[a:b])
            report.add(category, splits[rels[f]], piece.as_posix())


def babble_counts(total: int, shares: Sequence[float] = SHARES) -> dict[str, int]:
    """Babble files per split: ``round(share * total)``, at least one each (none for 0)."""
    return {s: max(1, round(share * total)) if total > 0 else 0 for s, share in zip(SPLITS, shares)}


def write_babble_files(
    out: Path,
    folder: str,
    pools: dict[str, dict[str, list[Any]]],
    counts: dict[str, int],
    *,
    load: Callable[[Any], np.ndarray],
    seed: int,
    streams: int,
    seconds: float,
) -> dict[str, list[str]]:
    """``out/folder/{split}/babble-{split}-NNN.wav`` from each split's pools; paths relative to ``out``.

    Args:
        pools: split -> language -> utterances (items ``load`` reads).
        counts: split -> number of babble files.
    """
    written: dict[str, list[str]] = {s: [] for s in SPLITS}
    jobs = [(s, k) for s in SPLITS for k in range(counts.get(s, 0)) if pools.get(s)]
    for split, k in progress(jobs, desc="babble", unit="file"):
        rng = np.random.default_rng([seed, SPLITS.index(split), k])
        audio = mix_babble(pools[split], rng, load=load, n_streams=streams, min_seconds=seconds)
        rel = Path(folder) / split / f"babble-{split}-{k:03d}.wav"
        write_wav16(out / rel, audio)
        written[split].append(rel.as_posix())
    return written


def write_split_lists(out: Path, category: str, by_split: dict[str, list[str]]) -> None:
    """``out/category/{split}.tsv``: one path (relative to ``out``) per line, sorted."""
    for split in SPLITS:
        rows = sorted(by_split.get(split, []))
        atomic_write_text(out / category / f"{split}.tsv", "".join(r + "\n" for r in rows))


def prepare_musan(musan: Path, out: Path, opts: PrepareOptions | None = None) -> PrepareReport:
    """MUSAN tree -> noise folder ``out`` (see the module doc); returns the report."""
    opts = opts or PrepareOptions()
    musan = find_musan_root(musan)
    out = Path(out)
    if out.resolve() == musan.resolve() or musan.resolve() in out.resolve().parents:
        raise UserError(f"{out}: the output folder must be outside the MUSAN tree {musan}")
    report = PrepareReport()
    for category in MUSAN_CATEGORIES:
        _cut_category(musan, out, category, opts, report)
    speech = report.pieces["speech"]
    pools = {s: {"speech": [out / p for p in speech[s]]} for s in SPLITS if speech[s]}
    report.pieces["babble"] = write_babble_files(
        out,
        "babble",
        pools,
        babble_counts(opts.babble_files),
        load=read_audio,
        seed=opts.seed,
        streams=opts.babble_streams,
        seconds=opts.piece_seconds,
    )
    for category, by_split in report.pieces.items():
        write_split_lists(out, category, by_split)
    merged = {s: [p for c in ALL_PARTS for p in report.pieces[c][s]] for s in SPLITS}
    write_split_lists(out, "all", merged)
    _check_disjoint(report)
    atomic_write_json(
        out / "prepare.json",
        {"musan": str(musan), "options": vars(opts), **report.summary(),
         "skipped_files": report.skipped, "resampled_files": report.resampled},
    )  # fmt: skip
    return report


def _check_disjoint(report: PrepareReport) -> None:
    """Assert that no piece is listed in two splits of one category."""
    for category, by_split in report.pieces.items():
        seen: set[str] = set()
        for split in SPLITS:
            items = set(by_split.get(split, []))
            if items & seen:
                raise AssertionError(f"{category}: a piece is listed in two splits")
            seen |= items
