"""``avsr kmeans fit/apply``: centroids, unit files, dictionary, usage and label metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsr.cli import main
from avsr.errors import UserError
from avsr.io import ManifestRow, write_manifest
from clustering.kmeans import (
    KMeansConfig,
    apply_kmeans,
    fit_kmeans,
    frame_labels_from_alignment,
    unit_quality,
    usage_report,
)

CENTERS = np.random.default_rng(42).normal(0, 10, size=(6, 16)).astype(np.float32)


def write_shards(
    feat_dir: Path, split: str, lens: list[int], world: int = 1, seed: int = 0
) -> list[list[int]]:
    """Blob features in the HuBERT layout; returns the true blob id of every frame per utterance."""
    rng = np.random.default_rng(seed)
    truth = [rng.integers(0, len(CENTERS), n).tolist() for n in lens]
    feat_dir.mkdir(parents=True, exist_ok=True)
    bounds = [round(len(lens) * r / world) for r in range(world + 1)]
    for r in range(world):
        rows = range(bounds[r], bounds[r + 1])
        frames = [CENTERS[truth[i]] + rng.normal(0, 0.5, (lens[i], 16)) for i in rows]
        arr = np.concatenate(frames).astype(np.float32) if frames else np.zeros((0, 16), np.float32)
        np.save(feat_dir / f"{split}_{r}_{world}.npy", arr)
        (feat_dir / f"{split}_{r}_{world}.len").write_text("".join(f"{lens[i]}\n" for i in rows))
    return truth


def test_fit_apply_blobs(tmp_path: Path) -> None:
    lens = [30, 0, 45, 12, 60, 25]
    truth = write_shards(tmp_path / "f", "train", lens, world=2)
    meta = fit_kmeans(
        [(tmp_path / "f", "train")],
        tmp_path / "km",
        KMeansConfig(k=6, sample_share=1.0, niter=30, seed=1, nredo=3),
    )
    assert meta["k"] == 6 and meta["dim"] == 16 and meta["sample_frames"] == sum(lens)
    assert np.load(tmp_path / "km" / "centroids.npy").shape == (6, 16)
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("".join(" ".join(f"b{t}" for t in tr) + "\n" for tr in truth))
    rep = apply_kmeans(
        tmp_path / "km", tmp_path / "f", "train", tmp_path / "lab", frame_labels=labels_file
    )
    lines = (tmp_path / "lab" / "train.km").read_text().split("\n")[:-1]
    assert len(lines) == len(lens)
    assert [len(ln.split()) for ln in lines] == lens
    assert (tmp_path / "lab" / "dict.km.txt").read_text().splitlines() == [
        f"{i} 1" for i in range(6)
    ]
    assert rep["labels"]["pnmi"] > 0.99 and rep["labels"]["cluster_purity"] > 0.99
    assert rep["empty_clusters"] == 0 and rep["entropy_bits"] > 2.4
    assert json.loads((tmp_path / "lab" / "train.km.json").read_text())["frames"] == sum(lens)


def test_metrics_known_values() -> None:
    u = np.array([0, 0, 1, 1, 2, 2])
    q = unit_quality(u, ["a", "a", "b", "b", "c", "c"])
    assert q["pnmi"] == pytest.approx(1.0) and q["cluster_purity"] == 1.0
    q = unit_quality(np.array([0, 1, 0, 1]), ["a", "a", "b", "b"])
    assert q["pnmi"] == pytest.approx(0.0, abs=1e-12) and q["cluster_purity"] == 0.5
    rep = usage_report(np.array([5, 0, 5, 0]))
    assert (
        rep["entropy_bits"] == pytest.approx(1.0)
        and rep["empty_clusters"] == 2
        and rep["empty_cluster_ids"] == [1, 3]
    )
    assert rep["normalized_entropy"] == pytest.approx(0.5)


def test_alignment_labels() -> None:
    rec = {"words": [{"word": "ab", "start": 0.1, "end": 0.3}]}
    labels = frame_labels_from_alignment(rec, 20, "char")
    # frame t centre = (320 t + 200) / 16000 s
    assert (
        labels[:5] == ["<sil>"] * 5
        and labels[5] == "a"
        and labels[14] == "b"
        and labels[15] == "<sil>"
    )
    assert set(frame_labels_from_alignment(rec, 20, "word")) == {"<sil>", "ab"}


def test_too_few_frames(tmp_path: Path) -> None:
    write_shards(tmp_path / "f", "train", [5, 5])
    with pytest.raises(UserError, match="k=50 needs at least 50 frames"):
        fit_kmeans(
            [(tmp_path / "f", "train")], tmp_path / "km", KMeansConfig(k=50, sample_share=1.0)
        )


def test_cli_fit_apply_with_manifest_and_alignments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lens = [40, 35, 50]
    write_shards(tmp_path / "f", "train", lens)
    write_shards(tmp_path / "f", "valid", [20, 22], seed=1)
    rows = [
        ManifestRow(id=f"c{i}", video="v.mp4", audio="a.wav", n_video_frames=0, n_audio_samples=0)
        for i in range(3)
    ]
    (tmp_path / "data").mkdir()
    write_manifest(tmp_path / "data" / "train.tsv", tmp_path, rows)
    write_manifest(tmp_path / "data" / "valid.tsv", tmp_path, rows[:2])
    ali = tmp_path / "ali"
    ali.mkdir()
    (ali / "c0.json").write_text(json.dumps({"words": [{"word": "hi", "start": 0.0, "end": 0.5}]}))
    km = str(tmp_path / "km")
    fit = ["kmeans", "fit", "--feats", str(tmp_path / "f"), "--out", km, "--k", "4"]
    assert main([*fit, "--sample-share", "0.5", "--niter", "10"]) == 0
    assert main(fit) == 2  # refuses to overwrite
    capsys.readouterr()
    rc = main(["kmeans", "apply", "--model", km, "--feats", str(tmp_path / "f"), "--out", str(tmp_path / "lab"),
               "--data", str(tmp_path / "data"), "--alignments", str(ali)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "train: 3 utterances" in out and "valid: 2 utterances" in out and "PNMI" in out
    assert len((tmp_path / "lab" / "valid.km").read_text().splitlines()) == 2
    rep = json.loads((tmp_path / "lab" / "train.km.json").read_text())
    assert rep["labels"]["utterances_without_alignment"] == 2
    write_manifest(tmp_path / "data" / "valid.tsv", tmp_path, rows)  # 3 rows vs 2 utterances
    assert main(["kmeans", "apply", "--model", km, "--feats", str(tmp_path / "f"), "--out", str(tmp_path / "lab2"),
                 "--data", str(tmp_path / "data"), "--split", "valid"]) == 2  # fmt: skip
    assert "3 rows but the features" in capsys.readouterr().err


def test_sample_share(tmp_path: Path) -> None:
    from clustering.kmeans import sample_frames

    write_shards(tmp_path / "f", "train", [1000] * 10, world=3)
    x, total = sample_frames([(tmp_path / "f", "train")], 0.3, 0, 1, seed=0)
    assert total == 10_000 and 2700 < x.shape[0] < 3300 and x.shape[1] == 16
    y, _ = sample_frames([(tmp_path / "f", "train")], 0.3, 0, 1, seed=0)
    assert np.array_equal(x, y)  # seeded
    z, _ = sample_frames([(tmp_path / "f", "train")], 0.3, 500, 1, seed=0)
    assert 400 < z.shape[0] < 600  # capped
    with pytest.raises(UserError, match="sample_share"):
        sample_frames([(tmp_path / "f", "train")], 0.0, 0, 1, seed=0)


def test_cli_threads_sets_faiss_openmp_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    calls: list[int] = []
    real = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (calls.append(n), real(n))[1])
    before = faiss.omp_get_max_threads()
    write_shards(tmp_path / "f", "train", [40, 35])
    argv = ["kmeans", "fit", "--feats", str(tmp_path / "f"), "--k", "3", "--sample-share", "1.0"]
    assert main([*argv, "--out", str(tmp_path / "km0")]) == 0
    assert calls == []  # default: faiss's own thread count
    assert main([*argv, "--out", str(tmp_path / "km1"), "--threads", "1"]) == 0
    assert calls == [1, before] and faiss.omp_get_max_threads() == before
    assert json.loads((tmp_path / "km1" / "kmeans.json").read_text())["config"]["threads"] == 1
