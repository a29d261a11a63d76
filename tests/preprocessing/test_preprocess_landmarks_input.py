"""`avsr preprocess --landmarks DIR` with AV-HuBERT / auto_avsr landmark pickles and .npy files.

The 68 dlib-like points of a synthetic clip are taken from the face-mesh
landmarks of the same clip (through the mesh -> dlib index correspondence), so
the ROI of the file path can be compared with the face-mesh path's ROI.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avsr.cli import main
from avsr.errors import UserError
from preprocessing.align import apply
from preprocessing.clip import PreprocessConfig, read_input
from preprocessing.landmarks import FACE_MESH_REFERENCE
from preprocessing.landmarks_input import (
    DLIB68_MEAN_FACE,
    MESH_TO_DLIB68,
    derive_dlib68_mean_face,
    keypoints4_from_dlib68,
    read_landmark_file,
    read_landmark_pickle,
)
from preprocessing.pipeline import run
from preprocessing.synthetic import SyntheticVideo, write_face_video
from preprocessing.video_io import read_gray_video

N = 30
MISSING = (10, 11)  # frames written as None ("no face")


class _Exploit:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _per_frame(track: np.ndarray, dtype: type) -> list[np.ndarray | None]:
    """(T, N, 2) -> list of (N, 2) arrays, None for the MISSING frames (as the tools write them)."""
    return [None if t in MISSING else track[t].astype(dtype) for t in range(len(track))]


def _dump(path: Path, obj: object, protocol: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A synthetic clip in AV-HuBERT's nesting, its face-mesh run and landmark files of each format."""
    d = tmp_path_factory.mktemp("lm_input")
    raw = d / "raw"
    (raw / "trainval" / "spk1").mkdir(parents=True)
    video = write_face_video(raw / "trainval" / "spk1" / "00001.mp4", N, 25)
    clips = read_input(raw)
    cfg = PreprocessConfig(landmark_stride=1, save_landmarks=True)
    run(clips, d / "mesh", cfg, show_progress=False)
    mesh = np.load(d / "mesh" / "landmarks" / f"{clips[0].id}.npz")["landmarks"]
    dlib = mesh[:, list(MESH_TO_DLIB68)].astype(np.float64)
    track68 = _per_frame(np.round(dlib), np.int64)  # dlib writes integer pixels
    _dump(d / "lm_avhubert" / "trainval" / "spk1" / "00001.pkl", track68, 4)
    track4 = _per_frame(keypoints4_from_dlib68(dlib), np.float32)
    _dump(d / "lm_auto_avsr" / f"{clips[0].id}.pkl", track4, 5)
    arr = dlib.copy()
    arr[list(MISSING)] = np.nan
    (d / "lm_npy").mkdir()
    np.save(d / "lm_npy" / "00001.npy", arr)
    ref, _ = read_gray_video(d / "mesh" / "video" / f"{clips[0].id}.mp4")
    return {"dir": d, "raw": raw, "clip": clips[0], "video": video, "ref": ref, "track68": track68}


def _preprocess(data: dict[str, Any], fmt: str, out: Path) -> dict[str, Any]:
    argv = ["preprocess", "--input", str(data["raw"]), "--out", str(out), "--no-progress"]
    argv += ["--landmarks", str(data["dir"] / f"lm_{fmt}"), "--landmarks-format", fmt]
    assert main([*argv, "--save-landmarks"]) == 0
    return json.loads((out / "report.jsonl").read_text().splitlines()[-1])


@pytest.mark.parametrize(
    ("fmt", "scheme", "name"),
    [
        ("avhubert", "dlib_68", "trainval/spk1/00001.pkl"),
        ("auto_avsr", "face_detection_4", "trainval_spk1_00001.pkl"),
        ("npy", "dlib_68", "00001.npy"),
    ],
)
def test_landmark_files_give_a_centred_roi(
    clip_data: dict[str, Any], tmp_path: Path, fmt: str, scheme: str, name: str
) -> None:
    rec = _preprocess(clip_data, fmt, tmp_path)
    assert rec["status"] == "ok", rec
    assert rec["n_video_frames"] == N and rec["interpolated_frames"] == len(MISSING)
    assert rec["landmarks_source"] == "file" and rec["landmarks_scheme"] == scheme
    assert rec["landmarks_file"] == str(clip_data["dir"] / f"lm_{fmt}" / name)
    roi, _ = read_gray_video(tmp_path / "video" / f"{rec['id']}.mp4")
    assert roi.shape == clip_data["ref"].shape
    corr = np.corrcoef(roi.ravel().astype(float), clip_data["ref"].ravel().astype(float))[0, 1]
    assert corr > 0.9, corr
    mats = np.load(tmp_path / "landmarks" / f"{rec['id']}.npz")["matrices"]
    video: SyntheticVideo = clip_data["video"]
    err = np.linalg.norm([apply(m, p) - 48.0 for m, p in zip(mats, video.mouth)], axis=1)
    assert err.mean() < 3.0 and err.max() < 6.0, err


def test_unknown_format_is_an_error(clip_data: dict[str, Any], tmp_path: Path) -> None:
    argv = ["preprocess", "--input", str(clip_data["raw"]), "--out", str(tmp_path)]
    assert main([*argv, "--landmarks", str(tmp_path), "--set", "landmarks_format=dlib"]) == 2


def test_missing_or_mismatched_files_are_recorded_skips(
    clip_data: dict[str, Any], tmp_path: Path
) -> None:
    lm = tmp_path / "lm"
    shutil.copytree(clip_data["dir"] / "lm_avhubert", lm)
    solo = tmp_path / "solo" / "zzz.mp4"
    solo.parent.mkdir()
    shutil.copy(clip_data["video"].path, solo)
    missing = replace(clip_data["clip"], id="zzz", video=str(solo))
    short = _dump(lm / "short.pkl", clip_data["track68"][:-3], 4)
    mismatched = replace(clip_data["clip"], id="short")
    cfg = PreprocessConfig(landmarks_dir=str(lm), landmarks_format="avhubert")
    run([missing, mismatched], tmp_path / "out", cfg, show_progress=False)
    lines = (tmp_path / "out" / "report.jsonl").read_text().splitlines()
    recs = {r["id"]: r for r in map(json.loads, lines)}
    assert (recs["zzz"]["status"], recs["zzz"]["reason"]) == ("skipped", "no_landmarks")
    assert str(lm) in recs["zzz"]["detail"]
    assert (recs["short"]["status"], recs["short"]["reason"]) == ("skipped", "landmarks_mismatch")
    assert str(short) in recs["short"]["detail"] and f"{N - 3} frames" in recs["short"]["detail"]


def test_malicious_pickle_is_refused_without_running(
    clip_data: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    lm = tmp_path / "lm"
    bad = _dump(lm / f"{clip_data['clip'].id}.pkl", [_Exploit(marker)], 4)
    with pytest.raises(UserError, match="refused.*system") as exc:
        read_landmark_pickle(bad)
    assert str(bad) in str(exc.value)
    cfg = PreprocessConfig(landmarks_dir=str(lm))
    run([clip_data["clip"]], tmp_path / "out", cfg, show_progress=False)
    rec = json.loads((tmp_path / "out" / "report.jsonl").read_text())
    assert (rec["status"], rec["reason"]) == ("skipped", "bad_landmarks")
    assert str(bad) in rec["detail"] and not marker.exists()


def test_pickle_reader_accepts_arrays_and_refuses_other_globals(tmp_path: Path) -> None:
    frames = [np.arange(136, dtype=np.float32).reshape(68, 2), None]
    for protocol in (2, 3, 4, 5):
        obj = read_landmark_pickle(_dump(tmp_path / f"p{protocol}.pkl", frames, protocol))
        assert obj[1] is None and np.array_equal(obj[0], frames[0])
    obj_array = np.empty(2, dtype=object)
    obj_array[:] = frames
    arr, scheme = read_landmark_file(_dump(tmp_path / "obj.pkl", obj_array, 4), "avhubert")
    assert arr.shape == (2, 68, 2) and np.isnan(arr[1]).all() and scheme.name == "dlib_68"
    with pytest.raises(UserError, match="builtins.eval"):
        read_landmark_pickle(_dump(tmp_path / "eval.pkl", _EvalCall(), 4))
    with pytest.raises(UserError, match="4 points per frame; format avhubert"):
        read_landmark_file(_dump(tmp_path / "k4.pkl", [np.zeros((4, 2))], 4), "avhubert")
    with pytest.raises(UserError, match="expected a list"):
        read_landmark_file(_dump(tmp_path / "dict.pkl", {"frames": []}, 4))
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(UserError, match="cannot read landmarks"):
        read_landmark_pickle(tmp_path / "junk.pkl")


class _EvalCall:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return eval, ("1 + 1",)


def test_dlib68_mean_face_matches_the_face_mesh_reference() -> None:
    """Its eye corners are the face-mesh reference face's; the stored points are recomputable."""
    np.testing.assert_allclose(DLIB68_MEAN_FACE[[36, 39, 42, 45]], FACE_MESH_REFERENCE[:4], atol=0.01)
    np.testing.assert_allclose(derive_dlib68_mean_face(), DLIB68_MEAN_FACE, atol=0.05)
