"""The evaluation grid: noise type x SNR x input modality (x language when scored).

Determinism: the noise of clip ``id`` under (category, seed) is chosen and
offset by :meth:`avsr.noise.NoiseBank.for_clip` (a SHA-256 of seed, category
and clip id), and mixed by :func:`avsr.noise.mix_at_snr` -- exactly what
``AVDataset(eval_noise=...)`` does, so the grid and the dataset agree. Batches
are fixed by clip length (no shuffling), so the same command gives the same
hypotheses.

Cost: each clip is decoded from disk once per chunk and reused for every
condition; video-only decoding does not hear the noise, so it is run once (on
clean audio) and shared by every condition of the grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from avsr.data import AVBatch, AVDataset, AVSample, LengthBatchSampler, collate
from avsr.errors import UserError
from avsr.evaluation.results import CLEAN, condition_key
from avsr.logging_utils import get_logger
from avsr.noise import NoiseBank

log = get_logger(__name__)

MODALITIES = ("a", "v", "av")


@dataclass(frozen=True)
class Condition:
    """One acoustic condition: ``clean`` (``snr is None``) or a noise type at an SNR in dB."""

    noise: str
    snr: float | None

    @property
    def key(self) -> str:
        return condition_key(self.noise, self.snr)


CLEAN_CONDITION = Condition(CLEAN, None)


def grid_conditions(noises: Sequence[str], snrs: Sequence[float | None]) -> list[Condition]:
    """Clean first (once, if asked for), then every noise type at every SNR, in the given order."""
    out = [CLEAN_CONDITION] if any(s is None for s in snrs) else []
    out += [Condition(n, float(s)) for n in noises for s in snrs if s is not None]
    return out


def parse_modalities(text: str) -> list[str]:
    """``"a,v,av"`` -> ``["a", "v", "av"]`` (checked, duplicates dropped)."""
    items = [t.strip().lower() for t in text.split(",")] if text else []
    if not items or any(t not in MODALITIES for t in items):
        raise UserError(f"--modality {text!r}: expected a comma-separated list of a, v, av")
    return list(dict.fromkeys(items))


class Decoder(Protocol):
    """What the grid decodes with (e.g. :class:`avsr.models.finetuned.FinetunedModel`)."""

    def decode(self, batch: AVBatch, *, modality: str = "av", beam: int = 5) -> list[str]:
        """Text per row; a decoder doing joint CTC/attention decoding also takes ``ctc_weight``."""
        ...


def condition_audio(
    bank: NoiseBank | None, clip_id: str, clean: np.ndarray, cond: Condition, seed: int
) -> np.ndarray:
    """The audio of a clip under ``cond``: clean, or mixed with the clip's own noise."""
    if cond.snr is None:
        return clean
    if bank is None:
        raise UserError(f"condition {cond.key} needs a noise folder (--noise-dir)")
    return bank.mix_for_clip(clean, clip_id, cond.noise, cond.snr, seed)


def eval_batches(
    dataset: AVDataset, *, max_frames_per_batch: int, max_batch_size: int | None
) -> list[list[int]]:
    """Fixed batches of dataset indices, grouped by length (longest first is not needed:
    the order only has to be the same every run)."""
    sampler = LengthBatchSampler(
        dataset.lengths,
        max_frames_per_batch=max_frames_per_batch,
        max_batch_size=max_batch_size,
        shuffle=False,
    )
    return [[int(k[0]) if isinstance(k, tuple) else int(k) for k in b] for b in sampler]


@dataclass(kw_only=True)
class GridJob:
    """Everything :func:`decode_grid` needs besides the model and the data."""

    conditions: list[Condition]
    """The acoustic conditions, in output order."""
    modalities: list[str]
    """Input modes (``a``, ``v``, ``av``)."""
    seed: int = 0
    """Seed of the per-clip noise choice."""
    beam: int = 5
    """Beam width of seq2seq decoding."""
    ctc_weight: float = 0.0
    """CTC weight of joint CTC/attention decoding (0: attention only; not passed on then)."""
    max_frames_per_batch: int = 1000
    """Bound on batch size x longest clip, in video frames."""
    max_batch_size: int | None = 16
    """Most clips in one batch (None: no bound)."""
    chunk_clips: int = 64
    """Clips decoded from disk at a time and reused for every condition."""
    num_workers: int = 0
    """Worker processes decoding the media of a chunk (0: in this process)."""


HypTable = dict[tuple[str, str], list[str]]
"""(condition key, modality) -> hypothesis per dataset index."""


def decode_grid(
    decoder: Decoder,
    dataset: AVDataset,
    job: GridJob,
    bank: NoiseBank | None,
    *,
    skip: Iterable[tuple[str, str]] = (),
    device: str = "cpu",
    on_progress: Callable[[int], None] | None = None,
) -> HypTable:
    """Decode every (condition, modality) pair not in ``skip``; hypotheses in dataset order.

    Video-only pairs are decoded once (clean audio) and shared by every condition.
    """
    skip = set(skip)
    pending, v_needed = _pending_pairs(job, skip)
    n = len(dataset)
    out: HypTable = {(c.key, m): [""] * n for c, m in pending}
    if not pending:
        return {}
    for cond, _ in pending:
        if cond.snr is not None:
            if bank is None:
                raise UserError(f"condition {cond.key} needs a noise folder (--noise-dir)")
            bank.files(cond.noise)  # fail early, naming the type and the folder
    batches = eval_batches(
        dataset, max_frames_per_batch=job.max_frames_per_batch, max_batch_size=job.max_batch_size
    )
    for chunk in _chunks(batches, job.chunk_clips):
        samples = load_samples(dataset, [i for b in chunk for i in b], job.num_workers)
        for cond, mod in pending:
            for b in chunk:
                hyps = _decode_batch(decoder, [samples[i] for i in b], bank, cond, mod, job, device)
                for i, h in zip(b, hyps):
                    out[(cond.key, mod)][i] = h
        if on_progress is not None:
            on_progress(len(samples))
    if v_needed:
        clean_v = out.pop((CLEAN_CONDITION.key, "v"))
        for cond in job.conditions:
            if (cond.key, "v") not in skip:
                out[(cond.key, "v")] = list(clean_v)
    return out


def _pending_pairs(job: GridJob, skip: set[tuple[str, str]]) -> tuple[list[tuple[Condition, str]], bool]:
    """The (condition, modality) pairs to decode, video-only once on clean audio at the end;
    and whether that shared video-only pair is among them."""
    pending: list[tuple[Condition, str]] = []
    shared_v = "v" in job.modalities
    for cond in job.conditions:
        for mod in job.modalities:
            if mod == "v":
                continue
            if (cond.key, mod) not in skip:
                pending.append((cond, mod))
    v_needed = shared_v and any((c.key, "v") not in skip for c in job.conditions)
    if v_needed:
        pending.append((CLEAN_CONDITION, "v"))
    return pending, v_needed


def _chunks(batches: Iterable[list[int]], chunk_clips: int) -> list[list[list[int]]]:
    """Consecutive batches grouped into chunks of at most ``chunk_clips`` clips (a batch
    larger than that is a chunk of its own)."""
    chunks: list[list[list[int]]] = [[]]
    for b in batches:
        if chunks[-1] and sum(len(x) for x in chunks[-1]) + len(b) > chunk_clips:
            chunks.append([])
        chunks[-1].append(b)
    return chunks


def _decode_batch(
    decoder: Decoder,
    samples: list[AVSample],
    bank: NoiseBank | None,
    cond: Condition,
    mod: str,
    job: GridJob,
    device: str,
) -> list[str]:
    """Hypotheses of one batch of clips under ``cond`` in input mode ``mod``."""
    batch = collate([_with_audio(sample, bank, cond, job.seed) for sample in samples])
    if device != "cpu":
        batch = batch.to(device)
    joint = {"ctc_weight": job.ctc_weight} if job.ctc_weight else {}
    hyps = decoder.decode(batch, modality=mod, beam=job.beam, **joint)
    if len(hyps) != len(samples):
        raise RuntimeError(f"decoder returned {len(hyps)} hypotheses for {len(samples)} clips")
    return hyps


def _first(items: list[AVSample]) -> AVSample:
    return items[0]


def load_samples(
    dataset: AVDataset, indices: list[int], num_workers: int = 0
) -> dict[int, AVSample]:
    """Decoded clips by dataset index (in worker processes when ``num_workers > 0``)."""
    if num_workers <= 0 or len(indices) < 2:
        return {i: dataset[i] for i in indices}
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=1,
        sampler=indices,
        num_workers=min(num_workers, len(indices)),
        collate_fn=_first,
    )
    return {s.index: s for s in loader}


def _with_audio(sample: AVSample, bank: NoiseBank | None, cond: Condition, seed: int) -> AVSample:
    if sample.audio is None or cond.snr is None:
        return sample
    return dataclasses.replace(
        sample, audio=condition_audio(bank, sample.id, sample.audio, cond, seed)
    )
