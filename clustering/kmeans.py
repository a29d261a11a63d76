"""faiss k-means on dumped features: fit centroids, assign units, measure the units.

``fit_kmeans`` samples a share of the frames of one or more splits (memory-mapped
shards, so only the sample is in memory), runs faiss k-means (on GPU when faiss
sees one) and writes::

    KM/centroids.npy   # (k, D) float32
    KM/kmeans.json     # k, dim, seed, niter, sample size, inertia, the features' encoder/layer, time

``apply_kmeans`` assigns every frame of a split to its nearest centroid and writes
``LAB/{split}.km`` (one line per manifest row, unit ids separated by spaces, as many
as the row has frames), ``LAB/dict.km.txt`` (``i 1`` for every cluster 0..k-1,
cluster 0 included) and ``LAB/{split}.km.json`` (usage, entropy, empty clusters,
and phone/word purity and PNMI when frame labels are given).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avsr.audio import SAMPLE_RATE
from avsr.errors import UserError
from avsr.io import atomic_open, atomic_write_json, atomic_write_text, read_manifest
from avsr.logging_utils import get_logger
from clustering.features import HOP, WINDOW, FeatureShard, find_shards, iter_utterances

log = get_logger(__name__)

CENTROIDS = "centroids.npy"
META = "kmeans.json"


@dataclass(kw_only=True)
class KMeansConfig:
    """Settings of ``avsr kmeans fit`` (``--config FILE`` / ``--set key=value``)."""

    k: int = 2000
    """Number of clusters (units)."""
    sample_share: float = 0.1
    """Share of all frames used to fit (AV-HuBERT fits on a 10% sample)."""
    max_frames: int = 2_000_000
    """Cap on the fitting sample (frames); 0 = no cap."""
    min_frames_per_centroid: int = 1
    """Raise the sample to at least k * this many frames when the corpus has them."""
    niter: int = 50
    """Lloyd iterations of faiss."""
    nredo: int = 1
    """Runs of faiss k-means (each with its own seeding); the one with the lowest inertia is kept."""
    seed: int = 0
    """Seed of the frame sample and of faiss's seeding."""
    init: Literal["kmeans++", "random"] = "kmeans++"
    """``kmeans++``: faiss's k-means++ seeding on the whole sample; ``random``: faiss's
    random seeding (k sampled frames). Lloyd iterations follow either way."""
    threads: int = 0
    """OpenMP threads of faiss while fitting (0 = faiss's default: every core)."""
    gpu: Literal["auto", "yes", "no"] = "auto"
    """Fit on the GPU: when faiss sees one (``auto``), required (``yes``) or never (``no``)."""


def _faiss() -> Any:
    import logging

    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs every SIMD probe
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a project dependency
        raise UserError("faiss is not installed (pip install faiss-cpu or faiss-gpu)") from exc
    return faiss


def _use_gpu(spec: str) -> int:
    faiss = _faiss()
    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if spec == "yes" and n == 0:
        raise UserError("--gpu yes: faiss sees no GPU (is faiss-gpu installed?)")
    return 0 if spec == "no" else n


def sample_frames(
    feat_dirs: Sequence[tuple[Path, str]], share: float, cap: int, floor: int, seed: int
) -> tuple[np.ndarray, int]:
    """A uniform random sample of about ``share`` of the frames of (feature dir, split) pairs.

    At least ``floor`` and at most ``cap`` (0 = no cap) frames are aimed at; every
    frame is kept with the same probability. Returns (sample (n, D) float32, total
    frames); only the sampled rows are read.
    """
    if not 0.0 < share <= 1.0:
        raise UserError(f"sample_share must be in (0, 1], got {share}")
    shards = [s for d, split in feat_dirs for s in find_shards(d, split)]
    sizes = [sum(s.lens) for s in shards]
    total = sum(sizes)
    if total == 0:
        raise UserError("no frames in the features (all utterances empty?)")
    n = max(int(round(total * share)), min(floor, total))
    if cap > 0:
        n = min(n, cap)
    # Bernoulli sampling in chunks: memory stays O(chunk) however large the corpus.
    p = n / total
    rng = np.random.default_rng(seed)
    parts = []
    chunk = 1 << 20
    for shard, size in zip(shards, sizes):
        if size == 0:
            continue
        arr = shard.open()
        for start in range(0, size, chunk):
            stop = min(size, start + chunk)
            sel = (
                np.arange(start, stop)
                if p >= 1.0
                else start + np.flatnonzero(rng.random(stop - start) < p)
            )
            if sel.size:
                parts.append(np.asarray(arr[sel], dtype=np.float32))
    dims = {part.shape[1] for part in parts}
    if len(dims) > 1:
        raise UserError(
            f"features of different dimensions {sorted(dims)} cannot be clustered together"
        )
    out = np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
    return np.ascontiguousarray(out), total


def _features_meta(feat_dir: Path, split: str) -> dict[str, Any]:
    metas = sorted(Path(feat_dir).glob(f"{split}_*_*.json"))
    if not metas:
        return {}
    try:
        settings = json.loads(metas[0].read_text(encoding="utf-8")).get("settings", {})
    except ValueError:
        return {}
    return {k: settings.get(k) for k in ("encoder", "layer", "normalize")}


def faiss_threads(n: int) -> contextlib.AbstractContextManager[None]:
    """faiss's OpenMP threads set to ``n`` inside the block, restored after (0: left as they are)."""
    return _faiss_threads(n) if n > 0 else contextlib.nullcontext()


@contextlib.contextmanager
def _faiss_threads(n: int) -> Iterator[None]:
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _fitting_sample(
    feat_dirs: Sequence[tuple[Path, str]], cfg: KMeansConfig
) -> tuple[np.ndarray, int]:
    """The (n, D) frames to fit on and the total frame count; refuses fewer than k frames."""
    x, total = sample_frames(
        feat_dirs, cfg.sample_share, cfg.max_frames, cfg.k * cfg.min_frames_per_centroid, cfg.seed
    )
    n = x.shape[0]
    if n < cfg.k:
        raise UserError(
            f"k={cfg.k} needs at least {cfg.k} frames to fit, but only {n} were sampled from {total}; lower --k or raise --sample-share"
        )
    if n < 39 * cfg.k:
        log.warning(
            "fitting k=%d on %d frames (%.1f per centroid): centroids will be noisy",
            cfg.k,
            n,
            n / cfg.k,
        )
    return x, total


def _train(x: np.ndarray, cfg: KMeansConfig, ngpu: int) -> tuple[np.ndarray, float]:
    """faiss k-means on ``x`` (n, D): centroids (k, D) float32 and the final inertia."""
    faiss = _faiss()
    n, dim = x.shape
    kwargs: dict[str, Any] = dict(
        niter=cfg.niter,
        nredo=cfg.nredo,
        seed=cfg.seed,
        verbose=False,
        max_points_per_centroid=max(1, math.ceil(n / cfg.k)) + 1,
    )
    if cfg.init == "kmeans++":
        kwargs["init_method"] = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
    km = faiss.Kmeans(dim, cfg.k, gpu=ngpu if ngpu else False, **kwargs)
    km.train(x)
    centroids = np.asarray(km.centroids, dtype=np.float32).reshape(cfg.k, dim)
    inertia = float(km.obj[-1]) if len(km.obj) else float("nan")
    return centroids, inertia


def fit_kmeans(
    feat_dirs: Sequence[tuple[Path, str]], out: Path, cfg: KMeansConfig
) -> dict[str, Any]:
    """Fit k-means on a sample of frames; write centroids + metadata; return the metadata."""
    faiss = _faiss()
    out = Path(out)
    if cfg.k < 2:
        raise UserError(f"k must be at least 2, got {cfg.k}")
    t0 = time.time()
    x, total = _fitting_sample(feat_dirs, cfg)
    n, dim = x.shape
    ngpu = _use_gpu(cfg.gpu)
    with faiss_threads(cfg.threads):
        centroids, inertia = _train(x, cfg, ngpu)
    seconds = time.time() - t0
    with atomic_open(out / CENTROIDS, "wb") as fh:
        np.save(fh, centroids)
    meta = {
        "k": cfg.k,
        "dim": dim,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "features": [
            {"dir": str(Path(d).resolve()), "split": s, **_features_meta(d, s)}
            for d, s in feat_dirs
        ],
        "total_frames": total,
        "sample_frames": n,
        "inertia": inertia,
        "inertia_per_frame": inertia / n,
        "gpu": ngpu,
        "faiss": faiss.__version__,
        "seconds": round(seconds, 2),
    }
    atomic_write_json(out / META, meta)
    log.info(
        "k-means k=%d on %d of %d frames (dim %d): inertia/frame %.4g in %.1fs",
        cfg.k,
        n,
        total,
        dim,
        inertia / n,
        seconds,
    )
    return meta


def load_centroids(km_dir: str | Path) -> np.ndarray:
    path = Path(km_dir) / CENTROIDS if Path(km_dir).is_dir() else Path(km_dir)
    if not path.is_file():
        raise UserError(f"{km_dir}: no {CENTROIDS} (run 'avsr kmeans fit' first)")
    c = np.load(path, allow_pickle=False)
    if c.ndim != 2:
        raise UserError(f"{path}: centroids must be a (k, D) array, got shape {c.shape}")
    return np.ascontiguousarray(c, dtype=np.float32)


class Assigner:
    """Nearest-centroid search (faiss flat L2, GPU when available)."""

    def __init__(self, centroids: np.ndarray, gpu: str = "auto") -> None:
        faiss = _faiss()
        self.k, self.dim = centroids.shape
        index = faiss.IndexFlatL2(self.dim)
        index.add(centroids)
        if _use_gpu(gpu):
            index = faiss.index_cpu_to_all_gpus(index)
        self.index = index

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) -> (ids (n,) int64, squared distances (n,))."""
        if x.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if x.shape[1] != self.dim:
            raise UserError(f"features have {x.shape[1]} dims but the centroids {self.dim}")
        d, i = self.index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return i[:, 0].astype(np.int64), d[:, 0]


# -- frame labels for purity / PNMI -------------------------------------------------------


def frame_labels_from_alignment(
    record: dict[str, Any], n_frames: int, level: str = "char"
) -> list[str]:
    """Label of each 50 Hz frame (at the frame's centre) from corpus word timings.

    ``word``: the word; ``char``: the word's characters spread evenly over it;
    ``<sil>`` outside words.
    """
    labels = ["<sil>"] * n_frames
    for w in record.get("words", []):
        start, end, word = float(w["start"]), float(w["end"]), str(w["word"])
        if end <= start or not word:
            continue
        for t in range(n_frames):
            c = (t * HOP + WINDOW / 2) / SAMPLE_RATE
            if start <= c < end:
                if level == "word":
                    labels[t] = word
                else:
                    labels[t] = word[
                        min(len(word) - 1, int((c - start) / (end - start) * len(word)))
                    ]
    return labels


def unit_quality(units: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Phone (label) purity, cluster purity and PNMI of units against frame labels.

    PNMI = I(label; unit) / H(label) (HuBERT, Hsu et al. 2021).
    """
    if len(units) != len(labels) or len(units) == 0:
        raise ValueError("units and labels must be non-empty and of equal length")
    names, lab = np.unique(np.asarray(labels), return_inverse=True)
    _, unit = np.unique(units, return_inverse=True)
    joint = np.zeros((unit.max() + 1, lab.max() + 1))
    np.add.at(joint, (unit, lab), 1)
    p = joint / joint.sum()
    pu, pl = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pu @ pl)[nz])).sum())
    h_lab = float(-(pl[pl > 0] * np.log(pl[pl > 0])).sum())
    return {
        "label_purity": float(p.max(0).sum()),  # for each label, its most frequent unit
        "cluster_purity": float(p.max(1).sum()),  # for each unit, its most frequent label
        "pnmi": mi / h_lab if h_lab > 0 else 0.0,
        "n_labels": int(len(names)),
    }


def usage_report(counts: np.ndarray) -> dict[str, Any]:
    """Cluster usage: used/empty clusters, entropy (bits), normalised entropy, perplexity."""
    k = counts.size
    total = int(counts.sum())
    p = counts[counts > 0] / max(total, 1)
    ent = float(-(p * np.log2(p)).sum()) if total else 0.0
    empty = np.flatnonzero(counts == 0)
    return {
        "k": k,
        "frames": total,
        "used_clusters": int(k - empty.size),
        "empty_clusters": int(empty.size),
        "empty_cluster_ids": empty[:50].tolist(),
        "entropy_bits": ent,
        "max_entropy_bits": math.log2(k),
        "normalized_entropy": ent / math.log2(k) if k > 1 else 0.0,
        "perplexity": 2.0**ent,
        "top_cluster_share": float(counts.max() / total) if total else 0.0,
    }


def write_dict(out: Path, k: int) -> Path:
    """``dict.km.txt`` with every cluster 0..k-1 (cluster 0 included)."""
    path = Path(out) / "dict.km.txt"
    atomic_write_text(path, "".join(f"{i} 1\n" for i in range(k)))
    return path


def _manifest_ids(manifest: Path | None, split: str, n_rows: int) -> list[str] | None:
    """Utterance ids of the manifest (None without one); its rows must match the features'."""
    if manifest is None:
        return None
    m = read_manifest(manifest)
    if len(m.rows) != n_rows:
        raise UserError(
            f"{manifest}: {len(m.rows)} rows but the features of '{split}' have {n_rows} utterances"
        )
    return [r.id for r in m.rows]


def _read_frame_labels(frame_labels: Path | None, n_rows: int) -> list[list[str]] | None:
    """The labels file's rows (one line of frame labels per utterance); None without one."""
    if frame_labels is None:
        return None
    lines = Path(frame_labels).read_text(encoding="utf-8").splitlines()
    if len(lines) != n_rows:
        raise UserError(
            f"{frame_labels}: {len(lines)} lines but the features have {n_rows} utterances"
        )
    return [ln.split() for ln in lines]


@dataclass
class _LabelSource:
    """Frame labels for purity/PNMI: a labels file, else corpus alignments, else none."""

    ext_labels: list[list[str]] | None
    """Rows of the labels file (one list of frame labels per utterance)."""
    frame_labels: Path | None
    """The labels file (for messages)."""
    alignments: Path | None
    """Folder of ``{id}.json`` word timings."""
    ids: list[str] | None
    """Utterance ids (to find their alignments)."""
    level: str
    """``char`` or ``word`` labels from the alignments."""
    missing: int = 0
    """Utterances without an alignment file so far."""

    def for_row(self, row: int, n: int) -> list[str] | None:
        """The ``n`` frame labels of utterance ``row``, or None when it has none."""
        if self.ext_labels is not None:
            labels = self.ext_labels[row]
            if len(labels) != n:
                raise UserError(
                    f"{self.frame_labels}: line {row + 1} has {len(labels)} labels for {n} frames"
                )
            return labels
        if self.alignments is not None and self.ids is not None:
            ali = Path(self.alignments) / f"{self.ids[row]}.json"
            if ali.is_file():
                return frame_labels_from_alignment(
                    json.loads(ali.read_text(encoding="utf-8")), n, self.level
                )
            self.missing += 1
        return None


@dataclass
class _Tally:
    """What assigning a split's frames adds up."""

    counts: np.ndarray
    """(k,) frames per cluster."""
    dist_sum: float = 0.0
    """Sum of the squared distances of the frames to their centroids."""
    units: list[np.ndarray] = field(default_factory=list)
    """Units of the utterances that have frame labels."""
    labels: list[str] = field(default_factory=list)
    """Their frame labels, concatenated."""


def _units_of(assign: Assigner, feats: np.ndarray, chunk_frames: int, tally: _Tally) -> np.ndarray:
    """Units (n,) of one utterance's (n, D) frames, assigned in chunks; adds their distances."""
    units_parts, n = [], feats.shape[0]
    for s in range(0, n, chunk_frames):
        u, d = assign(np.asarray(feats[s : s + chunk_frames]))
        units_parts.append(u)
        tally.dist_sum += float(d.sum())
    return np.concatenate(units_parts) if units_parts else np.zeros(0, np.int64)


def _write_units(
    path: Path, shards: list[FeatureShard], assign: Assigner, chunk_frames: int, source: _LabelSource
) -> _Tally:
    """Write one line of units per utterance to ``path``; return the counts and labelled units."""
    tally = _Tally(counts=np.zeros(assign.k, np.int64))
    with atomic_open(path, "w") as fh:
        for row, feats in enumerate(iter_utterances(shards)):
            units = _units_of(assign, feats, chunk_frames, tally)
            tally.counts += np.bincount(units, minlength=assign.k)
            fh.write(" ".join(map(str, units.tolist())) + "\n")
            labels = source.for_row(row, feats.shape[0])
            if labels is not None:
                tally.units.append(units)
                tally.labels += labels
    return tally


def _apply_report(split: str, n_rows: int, tally: _Tally, source: _LabelSource) -> dict[str, Any]:
    """The ``{split}.km.json`` report: usage, inertia and, with frame labels, purity/PNMI."""
    report: dict[str, Any] = {"split": split, "utterances": n_rows, **usage_report(tally.counts)}
    report["inertia_per_frame"] = tally.dist_sum / max(int(tally.counts.sum()), 1)
    if tally.labels:
        q = unit_quality(np.concatenate(tally.units), tally.labels)
        name = "frame_labels" if source.ext_labels is not None else f"alignments ({source.level})"
        report["labels"] = {"source": name, "frames": len(tally.labels), **q}
        if source.missing:
            report["labels"]["utterances_without_alignment"] = source.missing
    return report


def apply_kmeans(
    km_dir: Path,
    feat_dir: Path,
    split: str,
    out: Path,
    *,
    manifest: Path | None = None,
    alignments: Path | None = None,
    frame_labels: Path | None = None,
    label_level: str = "char",
    gpu: str = "auto",
    chunk_frames: int = 200_000,
) -> dict[str, Any]:
    """Write ``{split}.km``, ``dict.km.txt`` and the ``{split}.km.json`` report; return the report."""
    centroids = load_centroids(km_dir)
    k = centroids.shape[0]
    assign = Assigner(centroids, gpu)
    shards = find_shards(feat_dir, split)
    n_rows = sum(len(s.lens) for s in shards)
    ids = _manifest_ids(manifest, split, n_rows)
    ext_labels = _read_frame_labels(frame_labels, n_rows)
    if alignments is not None and ids is None:
        raise UserError("--alignments needs the manifest (to know the utterance ids)")
    source = _LabelSource(ext_labels, frame_labels, alignments, ids, label_level)
    out = Path(out)
    tally = _write_units(out / f"{split}.km", shards, assign, chunk_frames, source)
    write_dict(out, k)
    report = _apply_report(split, n_rows, tally, source)
    atomic_write_json(out / f"{split}.km.json", report)
    log.info(
        "%s: %d utterances, %d frames, %d/%d clusters used, entropy %.2f of %.2f bits",
        split,
        n_rows,
        report["frames"],
        report["used_clusters"],
        k,
        report["entropy_bits"],
        report["max_entropy_bits"],
    )
    return report
