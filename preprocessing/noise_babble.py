"""Babble noise from any manifest folder (``avsr noise babble``).

Reads ``DATA/train.tsv`` with ``DATA/train.lang`` (one language per row, as
``avsr preprocess`` and ``avsr data muavic`` write them; without it every row is
one language ``und``). Only the training split is used, so no valid or test
speaker is ever heard in the noise. Writes under ``OUT`` (usually ``NOISE/babble``)::

    {train,valid,test}/babble-<split>-NNN.wav   16 kHz mono 16-bit, ``seconds`` long
    {train,valid,test}.tsv                      one file per line, relative to OUT's parent
    babble.json                                 which speakers fed which split

Every babble file is :func:`avsr.babble.mix_babble`: the mean of 30 streams,
each at least 15 s of training utterances, filled round-robin over the languages.

Disjoint test babble: the training speakers of each language are shuffled with
the seed and a share (``heldout_share``, at least one speaker when a language has
two or more) is held out. Training babble mixes only the other speakers; valid and
test babble mix only the held-out ones, so no utterance or speaker of the training
babble is in the test babble. A speaker is the clip id up to its last ``/``
(MuAViC ``talk/utterance``, LRS3 ``speaker/utterance``); an id without ``/`` is a
speaker of its own. A language with a single speaker feeds training babble only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.audio import read_audio
from avsr.errors import UserError
from avsr.io import ManifestError, atomic_write_json, read_labels, read_manifest
from avsr.logging_utils import get_logger
from preprocessing.noise_prep import SPLITS, shuffled, write_babble_files, write_split_lists

log = get_logger(__name__)


@dataclass(kw_only=True)
class BabbleOptions:
    """How many babble files, how long, from which speakers."""

    split: str = "train"
    """Manifest split the utterances come from."""
    train_files: int = 20
    """Training babble files."""
    eval_files: int = 5
    """Babble files for each of valid and test."""
    streams: int = 30
    """Streams averaged in one babble file."""
    seconds: float = 15.0
    """Length of every stream (and of a babble file)."""
    heldout_share: float = 0.2
    """Share of each language's training speakers kept for valid/test babble."""
    seed: int = 0
    """Seed of the speaker hold-out and of the mixes."""


def speaker_of(clip_id: str) -> str:
    """The clip id up to its last ``/`` (the whole id when it has none)."""
    return clip_id.rsplit("/", 1)[0] if "/" in clip_id else clip_id


def _utterances(data: Path, split: str) -> dict[str, dict[str, list[Path]]]:
    """language -> speaker -> audio paths of the split's rows with audio."""
    tsv = Path(data) / f"{split}.tsv"
    try:
        manifest = read_manifest(tsv)
        lang_file = tsv.with_suffix(".lang")
        langs = read_labels(lang_file, len(manifest)) if lang_file.is_file() else None
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    out: dict[str, dict[str, list[Path]]] = {}
    for i, row in enumerate(manifest.rows):
        if not row.audio or row.n_audio_samples <= 0:
            continue
        lang = langs[i] if langs is not None else "und"
        out.setdefault(lang, {}).setdefault(speaker_of(row.id), []).append(
            manifest.resolve(row.audio)
        )
    if not out:
        raise UserError(f"{tsv}: no rows with audio to make babble from")
    return out


def _hold_out(
    by_lang: dict[str, dict[str, list[Path]]], opts: BabbleOptions
) -> tuple[dict[str, list[Path]], dict[str, list[Path]], dict[str, dict[str, list[str]]]]:
    """(training pools, held-out pools, split -> language -> speakers) by language."""
    train: dict[str, list[Path]] = {}
    held: dict[str, list[Path]] = {}
    who: dict[str, dict[str, list[str]]] = {"train": {}, "heldout": {}}
    for lang, speakers in sorted(by_lang.items()):
        names = shuffled(list(speakers), opts.seed, f"babble-{lang}")
        n_held = max(1, round(opts.heldout_share * len(names))) if len(names) >= 2 else 0
        n_held = min(n_held, len(names) - 1)
        for i, name in enumerate(names):
            key = "heldout" if i < n_held else "train"
            who[key].setdefault(lang, []).append(name)
            (held if key == "heldout" else train).setdefault(lang, []).extend(speakers[name])
        if n_held == 0:
            log.warning("%s: one training speaker: used for training babble only", lang)
    if not held:
        raise UserError(
            "babble: valid/test babble needs a language with two or more training speakers "
            "(a speaker is the clip id up to its last '/')"
        )
    return train, held, who


def _read_speech(path: Path) -> np.ndarray:
    """16 kHz mono samples of one utterance; UserError naming an empty file."""
    audio = read_audio(path)
    if audio.size == 0:
        raise UserError(f"{path}: empty audio (the manifest gives it samples)")
    return audio


def make_babble(data: Path, out: Path, opts: BabbleOptions | None = None) -> dict[str, list[str]]:
    """Babble files and split lists under ``out`` (see the module doc); split -> files."""
    opts = opts or BabbleOptions()
    out = Path(out)
    train, held, who = _hold_out(_utterances(data, opts.split), opts)
    counts = {"train": opts.train_files, "valid": opts.eval_files, "test": opts.eval_files}
    pools = {"train": train, "valid": held, "test": held}
    root, folder = out.parent, out.name
    written = write_babble_files(
        root, folder, pools, counts,
        load=_read_speech, seed=opts.seed, streams=opts.streams, seconds=opts.seconds,
    )  # fmt: skip
    write_split_lists(root, folder, written)
    atomic_write_json(
        out / "babble.json",
        {"data": str(Path(data).resolve()), "options": vars(opts), "speakers": who,
         "files": {s: len(written[s]) for s in SPLITS}},
    )  # fmt: skip
    return written


def count_summary(written: dict[str, Sequence[str]]) -> str:
    """``"train 20, valid 5, test 5"``."""
    return ", ".join(f"{s} {len(written.get(s, []))}" for s in SPLITS)
