"""Landmark clean-up and ROI geometry (pure numpy; fast)."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.align import (
    apply,
    fill_missing,
    matrix_scale,
    roi_matrices,
    similarity_transform,
    smooth,
    warp_roi,
)
from preprocessing.landmarks import FACE_MESH_SCHEME, LandmarkScheme


def test_fill_missing_interpolates_and_copies_edges() -> None:
    track = np.full((6, 2, 2), np.nan)
    track[1] = 1.0
    track[4] = 4.0
    filled, n = fill_missing(track)
    assert n == 4
    np.testing.assert_allclose(filled[:, 0, 0], [1, 1, 2, 3, 4, 4])
    assert not np.isnan(filled).any()
    with pytest.raises(ValueError):
        fill_missing(np.full((3, 2, 2), np.nan))


def test_fill_missing_partial_nan_row_counts_as_missing() -> None:
    track = np.zeros((3, 2, 2))
    track[1, 0, 0] = np.nan
    filled, n = fill_missing(track)
    assert n == 1 and not np.isnan(filled).any()


def test_smooth_centred_window() -> None:
    x = np.zeros((30, 1, 2))
    x[15] = 13.0
    y = smooth(x, window=12)
    # an impulse spreads symmetrically over t-6 .. t+6 with weight 1/13
    nz = np.nonzero(y[:, 0, 0])[0]
    assert nz.tolist() == list(range(9, 22))
    np.testing.assert_allclose(y[nz, 0, 0], 1.0)
    const = np.ones((5, 3, 2)) * 7
    np.testing.assert_allclose(smooth(const, 12), const)
    # steady motion is not delayed, not even at the clip edges
    ramp = np.arange(40.0).reshape(40, 1, 1)
    np.testing.assert_allclose(smooth(ramp, 12)[:, 0, 0], np.arange(40.0))


def test_similarity_transform_recovers_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.random((5, 2)) * 100
    ang, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(apply(m, src), dst, atol=1e-9)
    assert matrix_scale(m) == pytest.approx(s)
    # a mirrored target is fitted without reflection (det > 0)
    m2 = similarity_transform(src, src * np.array([-1.0, 1.0]))
    assert np.linalg.det(m2[:, :2]) > 0


def test_roi_matrices_put_mouth_at_centre() -> None:
    rng = np.random.default_rng(1)
    pts = rng.random((468, 2)) * 50 + 100
    pts[list(FACE_MESH_SCHEME.stable)] = FACE_MESH_SCHEME.reference * 0.5 + 30  # a half-size face
    track = np.stack([pts, pts + 3.0])
    mats = roi_matrices(track, FACE_MESH_SCHEME, crop=96)
    for t in range(2):
        centre = apply(mats[t], track[t][list(FACE_MESH_SCHEME.mouth)]).mean(axis=0)
        np.testing.assert_allclose(centre, [48, 48], atol=1e-9)
        assert matrix_scale(mats[t]) == pytest.approx(2.0)


def test_warp_roi_shapes_and_downscaling() -> None:
    img = np.zeros((400, 400), np.uint8)
    img[180:220, 180:220] = 255
    # identity-like scale: cut the square centred
    m = np.array([[1.0, 0, -152], [0, 1.0, -152]])
    roi = warp_roi(img, m)
    assert roi.shape == (96, 96) and roi[48, 48] == 255 and roi[0, 0] == 0
    # strong downscale (0.25): brightness is preserved (40x40 square -> 10x10)
    m = np.array([[0.25, 0, -2], [0, 0.25, -2]])
    roi = warp_roi(img, m)
    assert roi.mean() == pytest.approx(40 * 40 * 255 / 16 / 96**2, rel=0.1)
    # and 1-pixel stripes average out instead of aliasing
    stripes = np.zeros((400, 400), np.uint8)
    stripes[:, ::2] = 255
    roi = warp_roi(stripes, m)
    assert abs(roi.mean() - 127.5) < 8 and roi.std() < 20


def test_scheme_validation() -> None:
    with pytest.raises(ValueError):
        LandmarkScheme(name="x", n_points=5, stable=(0, 1), reference=np.zeros((3, 2)), mouth=(2,))
    with pytest.raises(ValueError):
        LandmarkScheme(name="x", n_points=3, stable=(0, 5), reference=np.zeros((2, 2)), mouth=(2,))
