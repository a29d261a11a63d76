"""Landmark track clean-up and the mouth-ROI geometry.

1. :func:`fill_missing`: frames without a face get landmarks linearly
   interpolated between the nearest detected frames; leading/trailing gaps copy
   the first/last detection.
2. :func:`smooth`: centred moving average (``window`` = 12: frames t-6 .. t+6),
   kept symmetric near the clip edges by shrinking it.
3. :func:`similarity_transform`: least-squares rotation + uniform scale +
   translation (Umeyama 1991, no reflection) of the scheme's stable points onto
   the reference face on the 256x256 canvas.
4. :func:`roi_matrices`: per frame, the mouth centre (mean of the mouth points
   mapped to the canvas) becomes the centre of a ``crop`` x ``crop`` window;
   one 2x3 matrix maps frame pixels straight to ROI pixels.
"""

from __future__ import annotations

import numpy as np

from preprocessing.landmarks import LandmarkScheme


def fill_missing(track: np.ndarray) -> tuple[np.ndarray, int]:
    """track: (T, N, 2) with NaN rows for missing frames -> (filled copy, number of filled frames).

    Raises ValueError when no frame has landmarks.
    """
    track = np.asarray(track, dtype=np.float64)
    present = ~np.isnan(track).any(axis=(1, 2))
    if not present.any():
        raise ValueError("no frame has landmarks")
    n_missing = int((~present).sum())
    if n_missing == 0:
        return track.copy(), 0
    t = np.arange(len(track))
    known = t[present]
    flat = track.reshape(len(track), -1)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        # np.interp copies the edge values outside [known[0], known[-1]]
        out[:, j] = np.interp(t, known, flat[present, j])
    return out.reshape(track.shape), n_missing


def smooth(track: np.ndarray, window: int = 12) -> np.ndarray:
    """Centred moving average along axis 0 of (T, ...): frames t-k .. t+k with k = window // 2.

    Near the clip edges k shrinks to the frames available on both sides, so the
    window stays symmetric (no lag at the ends for steady motion).
    """
    track = np.asarray(track, dtype=np.float64)
    n = len(track)
    if window <= 1 or n <= 2:
        return track.copy()
    t = np.arange(n)
    k = np.minimum(np.minimum(t, n - 1 - t), window // 2)
    lo, hi = t - k, t + k + 1
    csum = np.concatenate([np.zeros((1,) + track.shape[1:]), np.cumsum(track, axis=0)])
    counts = (hi - lo).reshape((-1,) + (1,) * (track.ndim - 1))
    return (csum[hi] - csum[lo]) / counts


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M (rotation, uniform scale, translation) minimising sum |M [src; 1] - dst|^2.

    src, dst: (K, 2) with K >= 2 (Umeyama's closed form, reflections excluded).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("degenerate source points (all equal)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points."""
    return pts @ m[:, :2].T + m[:, 2]


def roi_matrices(track: np.ndarray, scheme: LandmarkScheme, crop: int = 96) -> np.ndarray:
    """(T, N, 2) clean landmarks -> (T, 2, 3) matrices mapping frame pixels to crop pixels.

    For each frame: M = similarity(stable points -> scheme.reference); the mouth
    centre c = mean(M(mouth points)); the crop matrix is M shifted by
    ``crop / 2 - c``, so the mouth centre lands at the ROI centre.
    """
    stable = list(scheme.stable)
    mouth = list(scheme.mouth)
    out = np.empty((len(track), 2, 3))
    for t, pts in enumerate(track):
        m = similarity_transform(pts[stable], scheme.reference)
        centre = apply(m, pts[mouth]).mean(axis=0)
        m[:, 2] += crop / 2.0 - centre
        out[t] = m
    return out


def matrix_scale(m: np.ndarray) -> float:
    """Uniform scale factor of a similarity matrix."""
    return float(np.hypot(m[0, 0], m[1, 0]))


def warp_roi(gray: np.ndarray, m: np.ndarray, crop: int = 96) -> np.ndarray:
    """Cut the (crop, crop) ROI out of a (H, W) uint8 frame with matrix ``m`` (frame -> ROI pixels).

    Strong downscaling (scale < 0.6) first shrinks the frame with area averaging
    so the ROI is not aliased. Pixels outside the frame repeat the border.
    """
    import cv2

    s = matrix_scale(m)
    if s < 0.6:
        f = s / 0.8
        h, w = gray.shape
        small = cv2.resize(
            gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
        )
        fx, fy = small.shape[1] / w, small.shape[0] / h
        m = m.copy()
        m[:, 0] /= fx
        m[:, 1] /= fy
        gray = small
    return cv2.warpAffine(
        gray, m, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
