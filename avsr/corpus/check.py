"""Check generated clips with mediapipe face mesh: is the face found, does the lip opening follow the driver?

Lip opening = distance between mesh points 13 and 14 (inner lips, centre),
lip width = distance between 61 and 291 (mouth corners), both divided by the
face height (10 forehead to 152 chin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.logging_utils import quiet_native_stderr


@dataclass
class MouthTrack:
    found: np.ndarray  # (T,) bool
    opening: np.ndarray  # (T,) float, NaN where no face
    width: np.ndarray  # (T,) float, NaN where no face


def decode_frames(path: str | Path, max_frames: int | None = None) -> list[np.ndarray]:
    """RGB uint8 frames of a video (PyAV)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames


def track_mouth(frames: list[np.ndarray], static: bool = False) -> MouthTrack:
    """Face mesh on every frame (tracking mode unless ``static``; its native logs hidden unless ``-v``)."""
    import mediapipe as mp

    n = len(frames)
    found = np.zeros(n, bool)
    opening = np.full(n, np.nan)
    width = np.full(n, np.nan)
    with quiet_native_stderr(), mp.solutions.face_mesh.FaceMesh(
        static_image_mode=static, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.5
    ) as mesh:
        for i, img in enumerate(frames):
            res = mesh.process(np.ascontiguousarray(img))
            if not res.multi_face_landmarks:
                continue
            h, w = img.shape[:2]
            lm = res.multi_face_landmarks[0].landmark
            p = np.array([[lm[k].x * w, lm[k].y * h] for k in (13, 14, 61, 291, 10, 152)])
            face = float(np.linalg.norm(p[4] - p[5]))
            found[i] = True
            opening[i] = float(np.linalg.norm(p[0] - p[1])) / face
            width[i] = float(np.linalg.norm(p[2] - p[3])) / face
    return MouthTrack(found, opening, width)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over positions where both are finite."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
