"""Layer-N encoder features of a manifest's audio, in the HuBERT layout.

``dump_features(cfg)`` reads the rows of one shard (rank of world, contiguous as
in HuBERT's ``dump_*_feature.py``) of a MuAViC manifest, runs the encoder on
length-sorted, padded batches (early exit at ``layer``), and writes::

    OUT/{split}_{rank}_{world}.npy   # (sum of frames, D) float32, rows in manifest order
    OUT/{split}_{rank}_{world}.len   # frames per manifest row, one line each
    OUT/{split}_{rank}_{world}.json  # how it was made (encoder, layer, counts, notes)

The dump streams: every batch is appended to a raw ``.part`` file and its row
index to a ``.idx`` journal (both flushed), so memory does not grow with the
corpus and a killed run resumes after the last finished batch. At the end the
``.part`` rows are copied (memory-mapped) into the ``.npy`` in manifest order.

Encoders: any XLS-R-family checkpoint (:func:`avsr.models.encoders.load_encoder`),
an arch name (random weights, for tests), or ``mfcc``: 39-dim MFCC + deltas at
exactly the CNN's 50 Hz frame count (HuBERT round-1 style targets).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

import numpy as np

from avsr.audio import SAMPLE_RATE
from avsr.errors import UserError
from avsr.io import (
    Manifest,
    ManifestRow,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    read_manifest,
)
from avsr.logging_utils import get_logger, progress

log = get_logger(__name__)

WINDOW = 400  # receptive field of the wav2vec 2.0 CNN (samples)
HOP = 320  # its hop: 50 frames/s at 16 kHz


@dataclass(kw_only=True)
class FeatureDumpConfig:
    """Settings of one feature dump (one shard of one manifest)."""

    manifest: Path = Path("train.tsv")
    out: Path = Path("features")
    encoder: str = "tiny"
    """Checkpoint path (project dir, HF dir, fairseq1 .pt), arch name, or ``mfcc``."""
    layer: int | None = None
    """Transformer block whose output is dumped (early exit); None = last block + final norm."""
    rank: int = 0
    world: int = 1
    batch_frames: int = 6000
    """Maximum encoder frames per batch, padding included (50 frames = 1 s)."""
    max_batch_size: int = 64
    normalize: bool = True
    """Per-utterance zero mean / unit variance of the waveform (what XLS-R expects)."""
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast dtype; ``auto`` = bf16 on a GPU that supports it, else fp32. ``bf16`` and
    ``fp16`` autocast on CPU too (the same per-op policy as on a GPU, slower)."""
    device: str = "auto"
    seed: int = 0
    """Seed of the random weights when ``encoder`` is an arch name."""


@dataclass(kw_only=True)
class DumpResult:
    npy: Path
    lens: Path
    rows: int
    frames: int
    dim: int
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


# -- audio --------------------------------------------------------------------------


def read_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[str]]:
    """Mono float32 samples at ``sample_rate`` and notes on what was fixed (downmix, resample)."""
    import soundfile as sf

    notes: list[str] = []
    if not path.is_file():
        raise UserError(f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # type: ignore[attr-defined]
        raise UserError(f"{path}: cannot read audio: {exc}") from exc
    if data.shape[1] > 1:
        notes.append(f"{path.name}: {data.shape[1]} channels, downmixed to mono")
        data = data.mean(axis=1, keepdims=True)
    mono = np.ascontiguousarray(data[:, 0], dtype=np.float32)
    if sr != sample_rate and mono.size:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), sample_rate)
        mono = resample_poly(mono.astype(np.float64), sample_rate // g, int(sr) // g).astype(
            np.float32
        )
        notes.append(f"{path.name}: sample rate {sr} Hz, resampled to {sample_rate} Hz")
    return mono, notes


# -- MFCC ----------------------------------------------------------------------------


def _mel_filterbank(
    n_mels: int, n_fft: int, sr: int, fmin: float = 20.0, fmax: float | None = None
) -> np.ndarray:
    """HTK-mel triangular filters (n_mels, n_fft//2+1)."""
    fmax = fmax or sr / 2

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * np.expm1(m / 1127.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb.astype(np.float32)


def _deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """HTK regression deltas over time (T, D) with edge replication."""
    t = x.shape[0]
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(
        k * (pad[width + k : width + k + t] - pad[width - k : width - k + t])
        for k in range(1, width + 1)
    )
    return num / (2 * sum(k * k for k in range(1, width + 1)))


class MfccFeaturizer:
    """39-dim MFCC (13 + deltas + delta-deltas), 25 ms window, 20 ms hop: the CNN's 50 Hz frames.

    Frame t covers samples [320 t, 320 t + 400), so the count is the wav2vec 2.0
    CNN's for every length.
    """

    dim = 39
    name = "mfcc"

    def __init__(self, n_mels: int = 40, n_ceps: int = 13, n_fft: int = 512) -> None:
        self.n_fft = n_fft
        self.n_ceps = n_ceps
        self.fb = _mel_filterbank(n_mels, n_fft, SAMPLE_RATE)
        k = np.arange(n_mels)
        self.dct = (
            np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(n_ceps)[:, None])
            * math.sqrt(2.0 / n_mels)
        ).astype(np.float32)
        self.dct[0] /= math.sqrt(2.0)
        self.window = np.hamming(WINDOW).astype(np.float32)

    @staticmethod
    def frame_count(n_samples: int) -> int:
        return 0 if n_samples < WINDOW else (n_samples - WINDOW) // HOP + 1

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """(S,) float32 -> (T, 39) float32."""
        t = self.frame_count(wav.size)
        if t == 0:
            return np.zeros((0, self.dim), np.float32)
        x = wav.astype(np.float32)
        x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
        frames = np.lib.stride_tricks.as_strided(
            x, shape=(t, WINDOW), strides=(HOP * x.strides[0], x.strides[0])
        )
        frames = (frames - frames.mean(axis=1, keepdims=True)) * self.window
        power = np.abs(np.fft.rfft(frames, n=self.n_fft, axis=1)) ** 2
        logmel = np.log(np.maximum(power @ self.fb.T, 1e-10))
        ceps = logmel @ self.dct.T
        d1 = _deltas(ceps)
        d2 = _deltas(d1)
        return np.concatenate([ceps, d1, d2], axis=1).astype(np.float32)


# -- sharding and batching --------------------------------------------------------------


def shard_range(n_rows: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous rows [start, end) of ``rank`` out of ``world`` (HuBERT's split)."""
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"rank {rank} is not in 0..{world - 1} (world size {world})")
    return round(n_rows * rank / world), round(n_rows * (rank + 1) / world)


def rank_world_from_env(rank: int | None, world: int | None) -> tuple[int, int]:
    """Flags win; otherwise torchrun's RANK / WORLD_SIZE; otherwise 0 / 1."""
    env_rank, env_world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    r = rank if rank is not None else int(env_rank) if env_rank is not None else 0
    w = world if world is not None else int(env_world) if env_world is not None else 1
    return r, w


def length_batches(
    lengths: Sequence[int], batch_frames: int, max_batch_size: int
) -> list[list[int]]:
    """Indices sorted by length (longest first), grouped so that B * max_T <= batch_frames."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and ((len(cur) + 1) * max(longest, 1) > batch_frames or len(cur) >= max_batch_size):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


# -- the dump ----------------------------------------------------------------------------


def _names(out: Path, split: str, rank: int, world: int) -> dict[str, Path]:
    stem = f"{split}_{rank}_{world}"
    return {
        "npy": out / f"{stem}.npy",
        "len": out / f"{stem}.len",
        "meta": out / f"{stem}.json",
        "part": out / f".{stem}.part",
        "idx": out / f".{stem}.idx",
        "run": out / f".{stem}.run.json",
    }


def _device(spec: str) -> Any:
    import torch

    if spec != "auto":
        return torch.device(spec)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _autocast_dtype(spec: str, device: Any) -> Any:
    import torch

    if spec == "fp32" or (spec == "auto" and device.type != "cuda"):
        return None
    if spec == "fp16":
        return torch.float16
    if spec == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class _Runner:
    """Turns a list of waveforms into a list of (T_i, D) feature arrays."""

    def __init__(self, cfg: FeatureDumpConfig) -> None:
        import torch

        self.cfg = cfg
        if cfg.encoder == "mfcc":
            self.mfcc: MfccFeaturizer | None = MfccFeaturizer()
            self.model = None
            self.dim = MfccFeaturizer.dim
            self.frame_count = MfccFeaturizer.frame_count
            self.device = torch.device("cpu")
            self.amp = None
            return
        from avsr.models.encoders import resolve_encoder

        self.mfcc = None
        model = resolve_encoder(cfg.encoder, seed=cfg.seed)
        n_layers = model.num_layers
        if cfg.layer is not None and not 1 <= cfg.layer <= n_layers:
            raise UserError(f"--layer {cfg.layer}: the encoder has layers 1..{n_layers}")
        self.device = _device(cfg.device)
        self.model = model.to(self.device).eval()
        self.amp = _autocast_dtype(cfg.dtype, self.device)
        self.dim = model.model_dim
        self.frame_count = model.frame_count

    def __call__(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        if self.mfcc is not None:
            return [self.mfcc(w) for w in wavs]
        out: list[np.ndarray | None] = [None] * len(wavs)
        live = [i for i, w in enumerate(wavs) if self.frame_count(w.size) > 0]
        for i in range(len(wavs)):
            if i not in live:
                out[i] = np.zeros((0, self.dim), np.float32)
        if live:
            width = max(wavs[i].size for i in live)
            batch = torch.zeros(len(live), width)
            for j, i in enumerate(live):
                batch[j, : wavs[i].size] = torch.from_numpy(wavs[i])
            lens = torch.tensor([wavs[i].size for i in live])
            batch = batch.to(self.device)
            with (
                torch.inference_mode(),
                torch.autocast(
                    self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
                ),
            ):
                feats, flens = self.model(
                    batch, lens, layer=self.cfg.layer, normalize=self.cfg.normalize
                )
            feats = feats.float().cpu().numpy()
            for j, i in enumerate(live):
                out[i] = np.ascontiguousarray(feats[j, : int(flens[j])])
        return [o for o in out if o is not None]


def _settings(cfg: FeatureDumpConfig) -> dict[str, Any]:
    return {
        "manifest": str(Path(cfg.manifest).resolve()),
        "encoder": cfg.encoder,
        "layer": cfg.layer,
        "normalize": cfg.normalize,
        "rank": cfg.rank,
        "world": cfg.world,
    }


def _load_journal(idx: Path, part: Path, dim: int) -> dict[int, tuple[int, int]]:
    """row -> (offset, n_frames) of finished rows; truncates ``part`` after the last good batch."""
    done: dict[int, tuple[int, int]] = {}
    if not idx.is_file() or not part.is_file():
        return done
    end = 0
    for line in idx.read_text(encoding="utf-8").splitlines():
        try:
            rows = json.loads(line)
        except ValueError:
            break  # a torn last line: that batch is redone
        for row, off, n in rows:
            done[int(row)] = (int(off), int(n))
            end = max(end, int(off) + int(n))
    with open(part, "r+b") as fh:
        fh.truncate(end * dim * 4)
    return done


def _finished_result(names: dict[str, Path], settings: dict[str, Any]) -> DumpResult | None:
    """The result of a finished dump with these settings (None when there is none).

    Raises UserError when a finished dump with other settings is in the way.
    """
    if not (names["npy"].is_file() and names["len"].is_file() and names["meta"].is_file()):
        return None
    meta = json.loads(names["meta"].read_text(encoding="utf-8"))
    if meta.get("settings") == settings:
        log.info("%s: already done, skipping", names["npy"])
        return DumpResult(
            npy=names["npy"],
            lens=names["len"],
            rows=meta["rows"],
            frames=meta["frames"],
            dim=meta["dim"],
            skipped=True,
        )
    raise UserError(
        f"{names['npy']}: exists with other settings ({meta.get('settings')}); delete it or choose another --out"
    )


def _audio_paths(manifest: Manifest, rows: Sequence[ManifestRow], where: Path) -> list[Path]:
    """The audio file of every row; raises UserError naming the first missing ones."""
    paths = [manifest.resolve(r.audio) for r in rows]
    missing = [f"{r.id} ({p})" for r, p in zip(rows, paths) if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(
            f"{where}: {len(missing)} audio files not found: {', '.join(missing[:5])}{more}"
        )
    return paths


def _resume(
    names: dict[str, Path], settings: dict[str, Any], dim: int, n_rows: int
) -> dict[int, tuple[int, int]]:
    """Rows an interrupted run with the same settings finished: row -> (offset, frames).

    A journal of other settings is deleted; the current settings are recorded.
    """
    if names["run"].is_file() and json.loads(names["run"].read_text(encoding="utf-8")) != {
        **settings,
        "dim": dim,
    }:
        for key in ("part", "idx"):
            names[key].unlink(missing_ok=True)
    atomic_write_json(names["run"], {**settings, "dim": dim})
    done = _load_journal(names["idx"], names["part"], dim)
    if done:
        log.info("resuming %s: %d of %d rows already done", names["npy"], len(done), n_rows)
    return done


def _plan_batches(
    rows: Sequence[ManifestRow],
    done: dict[int, tuple[int, int]],
    runner: _Runner,
    cfg: FeatureDumpConfig,
) -> list[list[int]]:
    """Row indices still to do, in length-sorted batches (lengths estimated from the manifest)."""
    est = [runner.frame_count(r.n_audio_samples) for r in rows]
    todo = [i for i in range(len(rows)) if i not in done]
    batches = length_batches([est[i] for i in todo], cfg.batch_frames, cfg.max_batch_size)
    return [[todo[j] for j in b] for b in batches]


def _load_batch(
    batch: list[int], paths: list[Path], rows: Sequence[ManifestRow], runner: _Runner
) -> tuple[list[np.ndarray], list[str]]:
    """Waveforms of a batch's rows and notes on what was odd about them."""
    wavs, batch_notes = [], []
    for i in batch:
        w, n = read_audio(paths[i])
        if w.size == 0:
            n.append(f"{rows[i].id}: empty audio (0 frames)")
        elif runner.frame_count(w.size) == 0:
            n.append(
                f"{rows[i].id}: {w.size} samples, shorter than one {WINDOW}-sample frame (0 frames)"
            )
        elif not np.any(w):
            n.append(f"{rows[i].id}: all-zero audio")
        wavs.append(w)
        batch_notes += n
    return wavs, batch_notes


def _append_batch(
    part: BinaryIO,
    idx: TextIO,
    batch: list[int],
    feats: list[np.ndarray],
    done: dict[int, tuple[int, int]],
    offset: int,
) -> int:
    """Append a batch's features to ``.part`` and its rows to the ``.idx`` journal (both flushed).

    Records the rows in ``done``; returns the new end offset (frames).
    """
    record = []
    for i, f in zip(batch, feats):
        part.write(np.ascontiguousarray(f, dtype=np.float32).tobytes())
        record.append([i, offset, int(f.shape[0])])
        done[i] = (offset, int(f.shape[0]))
        offset += int(f.shape[0])
    part.flush()
    os.fsync(part.fileno())
    idx.write(json.dumps(record) + "\n")
    idx.flush()
    return offset


def _run_batches(
    names: dict[str, Path],
    batches: list[list[int]],
    load: Callable[[list[int]], tuple[list[np.ndarray], list[str]]],
    runner: _Runner,
    done: dict[int, tuple[int, int]],
    offset: int,
    desc: str,
) -> tuple[list[str], int]:
    """Encode every batch (the next one loads in a thread meanwhile); returns (notes, end offset)."""
    notes: list[str] = []
    with (
        open(names["part"], "ab") as part,
        open(names["idx"], "a", encoding="utf-8") as idx,
        ThreadPoolExecutor(1) as pool,
    ):
        pending = pool.submit(load, batches[0]) if batches else None
        for bi in progress(range(len(batches)), desc=desc, total=len(batches), unit="batch"):
            assert pending is not None
            wavs, batch_notes = pending.result()
            pending = pool.submit(load, batches[bi + 1]) if bi + 1 < len(batches) else None
            for note in batch_notes:
                log.warning("%s", note)
            notes += batch_notes
            feats = runner(wavs)
            offset = _append_batch(part, idx, batches[bi], feats, done, offset)
    return notes, offset


def _assemble(
    names: dict[str, Path], n_rows: int, done: dict[int, tuple[int, int]], offset: int, dim: int
) -> int:
    """Copy the ``.part`` rows into the ``.npy`` in manifest order, write ``.len``; total frames."""
    total = sum(n for _, n in done.values())
    src = (
        np.memmap(names["part"], dtype=np.float32, mode="r", shape=(max(offset, 1), dim))
        if offset
        else None
    )
    with atomic_path(names["npy"]) as tmp:
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, dim))
        pos = 0
        for i in range(n_rows):
            off, n = done[i]
            if n:
                assert src is not None
                dst[pos : pos + n] = src[off : off + n]
            pos += n
        dst.flush()
        del dst
    del src
    atomic_write_text(names["len"], "".join(f"{done[i][1]}\n" for i in range(n_rows)))
    return total


def dump_features(cfg: FeatureDumpConfig) -> DumpResult:
    """Dump one shard's features (resumable; skips a finished shard with the same settings)."""
    manifest = read_manifest(cfg.manifest) if Path(cfg.manifest).is_file() else None
    if manifest is None:
        raise UserError(f"{cfg.manifest}: manifest not found")
    split = Path(cfg.manifest).stem
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    names = _names(out, split, cfg.rank, cfg.world)
    start, end = shard_range(len(manifest.rows), cfg.rank, cfg.world)
    rows = manifest.rows[start:end]
    settings = _settings(cfg)
    finished = _finished_result(names, settings)
    if finished is not None:
        return finished

    paths = _audio_paths(manifest, rows, cfg.manifest)
    runner = _Runner(cfg)
    dim = runner.dim
    done = _resume(names, settings, dim, len(rows))
    batches = _plan_batches(rows, done, runner, cfg)
    offset = max((o + n for o, n in done.values()), default=0)
    load = functools.partial(_load_batch, paths=paths, rows=rows, runner=runner)
    desc = f"features {split} {cfg.rank}/{cfg.world}"
    notes, offset = _run_batches(names, batches, load, runner, done, offset, desc)

    total = _assemble(names, len(rows), done, offset, dim)
    meta = {
        "settings": settings,
        "rows": len(rows),
        "row_range": [start, end],
        "frames": total,
        "dim": dim,
        "frame_rate_hz": SAMPLE_RATE / HOP,
        "notes": notes[:50] + ([f"... and {len(notes) - 50} more notes"] if len(notes) > 50 else []),
    }
    atomic_write_json(names["meta"], meta)
    for key in ("part", "idx", "run"):
        names[key].unlink(missing_ok=True)
    log.info("wrote %s: %d rows, %d frames x %d dims", names["npy"], len(rows), total, dim)
    return DumpResult(
        npy=names["npy"], lens=names["len"], rows=len(rows), frames=total, dim=dim, notes=notes
    )


# -- reading back ------------------------------------------------------------------------


@dataclass(kw_only=True)
class FeatureShard:
    npy: Path
    lens: list[int]

    def open(self) -> np.ndarray:
        """Memory-mapped (frames, D) array."""
        return np.load(self.npy, mmap_mode="r")


def find_shards(feat_dir: str | Path, split: str) -> list[FeatureShard]:
    """All shards ``{split}_{r}_{world}`` of one split in rank order (all ranks must be present)."""
    feat_dir = Path(feat_dir)
    found = sorted(feat_dir.glob(f"{split}_*_*.npy"))
    worlds: dict[int, dict[int, Path]] = {}
    for p in found:
        parts = p.stem[len(split) + 1 :].split("_")
        if len(parts) != 2 or not all(x.isdigit() for x in parts):
            continue
        worlds.setdefault(int(parts[1]), {})[int(parts[0])] = p
    if not worlds:
        raise UserError(f"{feat_dir}: no features for split '{split}' ({split}_RANK_WORLD.npy)")
    if len(worlds) > 1:
        raise UserError(
            f"{feat_dir}: features of '{split}' with several world sizes {sorted(worlds)}; keep one"
        )
    world, ranks = next(iter(worlds.items()))
    missing = [r for r in range(world) if r not in ranks]
    if missing:
        raise UserError(f"{feat_dir}: split '{split}' is missing ranks {missing} of world {world}")
    shards = []
    for r in range(world):
        npy = ranks[r]
        len_file = npy.with_suffix(".len")
        if not len_file.is_file():
            raise UserError(f"{len_file}: missing (the dump of that shard did not finish)")
        lens = [int(x) for x in len_file.read_text(encoding="utf-8").split()]
        shard = FeatureShard(npy=npy, lens=lens)
        n = shard.open().shape[0]
        if n != sum(lens):
            raise UserError(f"{npy}: {n} frames but {len_file} sums to {sum(lens)}")
        shards.append(shard)
    return shards


def iter_utterances(shards: Sequence[FeatureShard]) -> Iterator[np.ndarray]:
    """Features of every manifest row in order, (T_i, D) views of the memory maps."""
    for shard in shards:
        arr = shard.open()
        pos = 0
        for n in shard.lens:
            yield arr[pos : pos + n]
            pos += n
