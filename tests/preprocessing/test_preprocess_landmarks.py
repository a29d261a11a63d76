"""Landmark sources: mediapipe face mesh (largest face), precomputed files, the reference face."""

from __future__ import annotations

import os

import numpy as np
import pytest
from skimage import data

from avsr.errors import UserError
from avsr.logging_utils import NATIVE_LOGS_ENV, quiet_native_stderr
from preprocessing.landmarks import (
    FACE_MESH_REFERENCE,
    FACE_MESH_SCHEME,
    CallableLandmarks,
    MediaPipeFaceMesh,
    PrecomputedLandmarks,
    derive_reference_from_astronaut,
    largest_face,
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


def test_face_mesh_finds_astronaut(astronaut: np.ndarray) -> None:
    with MediaPipeFaceMesh(static_image_mode=True) as mesh:
        pts = mesh.detect(astronaut)
    assert pts is not None and pts.shape == (468, 2)
    # face of the astronaut photo lies in the upper middle of the 512x512 image
    mouth = pts[list(FACE_MESH_SCHEME.mouth)].mean(axis=0)
    assert 180 < mouth[0] < 270 and 110 < mouth[1] < 180


def test_face_mesh_native_logs_hidden_unless_verbose(
    astronaut: np.ndarray, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NATIVE_LOGS_ENV, raising=False)
    with MediaPipeFaceMesh(static_image_mode=False) as mesh:
        for _ in range(3):
            assert mesh.detect(astronaut) is not None
    assert "W0000" not in capfd.readouterr().err
    with quiet_native_stderr():
        os.write(2, b"hidden\n")
    monkeypatch.setenv(NATIVE_LOGS_ENV, "1")
    with quiet_native_stderr():
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_face_mesh_no_face_on_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    with MediaPipeFaceMesh(static_image_mode=True) as mesh:
        assert mesh.detect(noise) is None


def test_face_mesh_picks_largest_face(astronaut: np.ndarray) -> None:
    import cv2

    face = astronaut[20:260, 110:350]  # the head region
    small = cv2.resize(face, (120, 120), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 127, np.uint8)
    canvas[40:280, 360:600] = face  # large face on the right
    canvas[300:420, 40:160] = small  # small face on the left, below
    with MediaPipeFaceMesh(static_image_mode=True) as mesh:
        pts = mesh.detect(canvas)
    assert pts is not None
    assert pts[:, 0].mean() > 360, "returned the small face instead of the largest"


def test_face_mesh_downscales_large_frames(astronaut: np.ndarray) -> None:
    import cv2

    big = cv2.resize(astronaut, (2000, 2000), interpolation=cv2.INTER_LINEAR)
    with MediaPipeFaceMesh(static_image_mode=True, detect_max_side=512) as mesh:
        pts_big = mesh.detect(big)
        pts = mesh.detect(astronaut)
    assert pts_big is not None and pts is not None
    # coordinates come back in the large frame's pixels
    np.testing.assert_allclose(pts_big / (2000 / 512), pts, atol=4.0)


def test_largest_face() -> None:
    a = np.array([[0, 0], [10, 10]], float)
    b = np.array([[0, 0], [30, 5]], float)
    assert largest_face([a, b]) is b
    assert largest_face([]) is None


def test_precomputed_landmarks(tmp_path) -> None:
    arr = np.random.default_rng(1).random((4, 468, 2)) * 100
    arr[2] = np.nan
    np.save(tmp_path / "c.npy", arr)
    np.savez(tmp_path / "c.npz", landmarks=arr)
    for name in ("c.npy", "c.npz"):
        with PrecomputedLandmarks(tmp_path / name) as src:
            img = np.zeros((8, 8, 3), np.uint8)
            np.testing.assert_allclose(src.detect(img), arr[0])
            np.testing.assert_allclose(src.detect(img), arr[1])
            assert src.detect(img) is None
            np.testing.assert_allclose(src.detect(img, frame_index=0), arr[0])
            assert src.detect(img, frame_index=10) is None
    np.save(tmp_path / "bad.npy", np.zeros((3, 68, 2)))
    with pytest.raises(UserError, match="shape"):
        PrecomputedLandmarks(tmp_path / "bad.npy")


def test_callable_landmarks() -> None:
    pts = np.ones((468, 2))
    with CallableLandmarks(lambda img: pts if img.mean() > 0 else None) as src:
        assert src.detect(np.ones((4, 4, 3), np.uint8)) is not None
        assert src.detect(np.zeros((4, 4, 3), np.uint8)) is None


def test_reference_face_matches_derivation() -> None:
    np.testing.assert_allclose(derive_reference_from_astronaut(), FACE_MESH_REFERENCE, atol=1.0)


def _two_faces(astronaut: np.ndarray, small_only: bool) -> np.ndarray:
    """A 200 px face bottom-left and (unless small_only) a 310 px face top-right."""
    import cv2

    face = astronaut[20:260, 110:350]
    canvas = np.full((480, 640, 3), 127, np.uint8)
    canvas[250:450, 10:210] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)
    if not small_only:
        canvas[20:330, 300:610] = cv2.resize(face, (310, 310), interpolation=cv2.INTER_LINEAR)
    return canvas


def test_tracking_follows_the_largest_face(astronaut: np.ndarray) -> None:
    both = _two_faces(astronaut, small_only=False)
    with MediaPipeFaceMesh(static_image_mode=False, recheck_every=5) as mesh:
        for _ in range(12):
            pts = mesh.detect(both)
            assert pts is not None and pts[:, 0].mean() > 300
        # tracking: full detection only on the first frame and every 5th after it
        assert mesh.full_detections == 3


def test_tracking_picks_up_a_larger_face_that_enters_later(astronaut: np.ndarray) -> None:
    small = _two_faces(astronaut, small_only=True)
    both = _two_faces(astronaut, small_only=False)
    with MediaPipeFaceMesh(static_image_mode=False, recheck_every=4) as mesh:
        for _ in range(4):
            pts = mesh.detect(small)
            assert pts is not None and pts[:, 0].mean() < 210
        seen = [mesh.detect(both) for _ in range(6)]
    # within one recheck interval the tracker also follows the larger face
    assert all(p is not None for p in seen)
    assert seen[-1][:, 0].mean() > 300
