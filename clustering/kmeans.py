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

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avsr.errors import UserError
from avsr.io import atomic_open, atomic_write_json, atomic_write_text, read_manifest
from avsr.logging_utils import get_logger
from clustering.features import HOP, SAMPLE_RATE, WINDOW, find_shards, iter_utterances

log = get_logger(__name__)

CENTROIDS = "centroids.npy"
META = "kmeans.json"


@dataclass(kw_only=True)
class KMeansConfig:
    k: int = 2000
    sample_share: float = 0.1
    """Share of all frames used to fit (AV-HuBERT fits on a 10% sample)."""
    max_frames: int = 2_000_000
    """Cap on the fitting sample (frames); 0 = no cap."""
    min_frames_per_centroid: int = 1
    """Raise the sample to at least k * this many frames when the corpus has them."""
    niter: int = 50
    nredo: int = 1
    seed: int = 0
    init: Literal["kmeans++", "random"] = "kmeans++"
    """``kmeans++``: greedy k-means++ seeding (scikit-learn's) on ``init_frames`` sampled
    frames, then faiss Lloyd iterations; ``random``: faiss's random seeding."""
    init_frames: int = 5_000
    """Frames the k-means++ seeding looks at (at least 3 k)."""
    n_init: int = 3
    """k-means++ seedings tried; the one with the lowest inertia on the seeding frames is kept."""
    threads: int = 0
    """CPU threads for faiss and the seeding (0 = library default)."""
    gpu: Literal["auto", "yes", "no"] = "auto"


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


def kmeans_pp_init(
    x: np.ndarray, k: int, init_frames: int, seed: int, threads: int = 0, n_init: int = 1
) -> np.ndarray:
    """Greedy k-means++ seeds (k, D) from a random subset of ``init_frames`` rows of ``x``.

    With ``n_init`` > 1, the seeding with the lowest inertia on that subset is kept.
    """
    from sklearn.cluster import kmeans_plusplus
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    m = min(x.shape[0], max(init_frames, 3 * k))
    sub = x[np.sort(rng.choice(x.shape[0], size=m, replace=False))] if m < x.shape[0] else x
    sub = np.ascontiguousarray(sub, dtype=np.float32)
    best: tuple[float, np.ndarray] | None = None
    with threadpool_limits(threads if threads > 0 else None):
        for r in range(max(1, n_init)):
            seeds, _ = kmeans_plusplus(sub, k, random_state=seed + r)
            seeds = np.ascontiguousarray(seeds, dtype=np.float32)
            cost = float(Assigner(seeds, gpu="no")(sub)[1].sum()) if n_init > 1 else 0.0
            if best is None or cost < best[0]:
                best = (cost, seeds)
    assert best is not None
    return best[1]


def _features_meta(feat_dir: Path, split: str) -> dict[str, Any]:
    metas = sorted(Path(feat_dir).glob(f"{split}_*_*.json"))
    if not metas:
        return {}
    try:
        settings = json.loads(metas[0].read_text(encoding="utf-8")).get("settings", {})
    except ValueError:
        return {}
    return {k: settings.get(k) for k in ("encoder", "layer", "normalize")}


def fit_kmeans(
    feat_dirs: Sequence[tuple[Path, str]], out: Path, cfg: KMeansConfig
) -> dict[str, Any]:
    """Fit k-means on a sample of frames; write centroids + metadata; return the metadata."""
    faiss = _faiss()
    out = Path(out)
    if cfg.k < 2:
        raise UserError(f"k must be at least 2, got {cfg.k}")
    t0 = time.time()
    x, total = sample_frames(
        feat_dirs, cfg.sample_share, cfg.max_frames, cfg.k * cfg.min_frames_per_centroid, cfg.seed
    )
    n, dim = x.shape
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
    ngpu = _use_gpu(cfg.gpu)
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
    ids: list[str] | None = None
    if manifest is not None:
        m = read_manifest(manifest)
        if len(m.rows) != n_rows:
            raise UserError(
                f"{manifest}: {len(m.rows)} rows but the features of '{split}' have {n_rows} utterances"
            )
        ids = [r.id for r in m.rows]
    ext_labels: list[list[str]] | None = None
    if frame_labels is not None:
        lines = Path(frame_labels).read_text(encoding="utf-8").splitlines()
        if len(lines) != n_rows:
            raise UserError(
                f"{frame_labels}: {len(lines)} lines but the features have {n_rows} utterances"
            )
        ext_labels = [ln.split() for ln in lines]
    if alignments is not None and ids is None:
        raise UserError("--alignments needs the manifest (to know the utterance ids)")

    counts = np.zeros(k, np.int64)
    dist_sum = 0.0
    all_units: list[np.ndarray] = []
    all_labels: list[str] = []
    missing_ali = 0
    out = Path(out)
    with atomic_open(out / f"{split}.km", "w") as fh:
        for row, feats in enumerate(iter_utterances(shards)):
            units_parts, n = [], feats.shape[0]
            for s in range(0, n, chunk_frames):
                u, d = assign(np.asarray(feats[s : s + chunk_frames]))
                units_parts.append(u)
                dist_sum += float(d.sum())
            units = np.concatenate(units_parts) if units_parts else np.zeros(0, np.int64)
            counts += np.bincount(units, minlength=k)
            fh.write(" ".join(map(str, units.tolist())) + "\n")
            labels: list[str] | None = None
            if ext_labels is not None:
                labels = ext_labels[row]
                if len(labels) != n:
                    raise UserError(
                        f"{frame_labels}: line {row + 1} has {len(labels)} labels for {n} frames"
                    )
            elif alignments is not None and ids is not None:
                ali = Path(alignments) / f"{ids[row]}.json"
                if ali.is_file():
                    labels = frame_labels_from_alignment(
                        json.loads(ali.read_text(encoding="utf-8")), n, label_level
                    )
                else:
                    missing_ali += 1
            if labels is not None:
                all_units.append(units)
                all_labels += labels
    write_dict(out, k)
    report: dict[str, Any] = {"split": split, "utterances": n_rows, **usage_report(counts)}
    report["inertia_per_frame"] = dist_sum / max(int(counts.sum()), 1)
    if all_labels:
        q = unit_quality(np.concatenate(all_units), all_labels)
        report["labels"] = {
            "source": "frame_labels" if ext_labels is not None else f"alignments ({label_level})",
            "frames": len(all_labels),
            **q,
        }
        if missing_ali:
            report["labels"]["utterances_without_alignment"] = missing_ali
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
