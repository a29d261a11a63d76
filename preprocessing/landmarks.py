"""Face landmark sources: mediapipe face mesh, precomputed landmarks, or your own detector.

A *landmark source* turns one RGB frame into an ``(N, 2)`` array of pixel
coordinates (x, y) of ONE face, or ``None`` when no face is found. Sources are
context managers and are opened once per clip, so a tracking detector keeps its
state across the frames of that clip only.

The mouth-ROI alignment needs, for the point set a source produces, a
:class:`LandmarkScheme`: which points are stable (used for the similarity
transform), where those stable points sit on the 256x256 reference canvas, and
which points outline the mouth. :data:`FACE_MESH_SCHEME` covers the 468-point
mediapipe face mesh; a source for another point set (e.g. dlib's 68 points)
brings its own scheme through its ``scheme`` attribute.

Face-mesh indices used (mediapipe canonical face mesh, 468 points; "right" and
"left" are the subject's):

* stable points: 33 right-eye outer corner, 133 right-eye inner corner,
  362 left-eye inner corner, 263 left-eye outer corner, 1 nose tip;
* mouth points: the 40 lip-contour points of ``mediapipe.solutions.face_mesh.FACEMESH_LIPS``
  (outer and inner lip lines); the ROI is centred on their mean.

Reference face: face mesh (static mode) on the frontal portrait
``skimage.data.astronaut()``, mapped by the similarity transform that puts the
two outer eye corners level at (83, 112) and (173, 112) on the 256x256 canvas
(90 px apart). On that canvas the nose tip lands at (127.8, 153.6) and the
mouth centre at (127.9, 172.7), so the 96x96 mouth crop spans rows ~125..221.
:func:`derive_reference_from_astronaut` recomputes these numbers (a test checks
them against the constants below).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

CANVAS_SIZE = 256

FACE_MESH_STABLE = (33, 133, 362, 263, 1)
FACE_MESH_REFERENCE = np.array(
    [[83.0, 112.0], [110.93, 114.52], [145.18, 114.42], [173.0, 112.0], [127.81, 153.59]],
    dtype=np.float64,
)
FACE_MESH_MOUTH = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402,
    405, 409, 415,
)  # fmt: skip
FACE_MESH_N_POINTS = 468

# Outer eye corners of the reference and their canvas positions (see module docstring).
_REF_EYES = (33, 263)
_REF_EYE_POS = np.array([[83.0, 112.0], [173.0, 112.0]])


@dataclass(frozen=True)
class LandmarkScheme:
    """Which points of a landmark set drive the alignment.

    n_points: number of points a source returns per face.
    stable: indices of the points mapped onto ``reference`` by a similarity transform.
    reference: (len(stable), 2) canvas coordinates (x, y) on a ``canvas`` x ``canvas`` face.
    mouth: indices whose mean is the centre of the mouth crop.
    """

    name: str
    n_points: int
    stable: tuple[int, ...]
    reference: np.ndarray
    mouth: tuple[int, ...]
    canvas: int = CANVAS_SIZE

    def __post_init__(self) -> None:
        ref = np.asarray(self.reference, dtype=np.float64)
        if ref.shape != (len(self.stable), 2):
            raise ValueError(
                f"scheme {self.name}: reference must be ({len(self.stable)}, 2), got {ref.shape}"
            )
        if len(self.stable) < 2:
            raise ValueError(f"scheme {self.name}: need at least 2 stable points")
        if max(self.stable + self.mouth) >= self.n_points:
            raise ValueError(f"scheme {self.name}: an index is >= n_points={self.n_points}")


FACE_MESH_SCHEME = LandmarkScheme(
    name="mediapipe_face_mesh_468",
    n_points=FACE_MESH_N_POINTS,
    stable=FACE_MESH_STABLE,
    reference=FACE_MESH_REFERENCE,
    mouth=FACE_MESH_MOUTH,
)


class LandmarkSource(abc.ABC):
    """One clip's landmark source (open it with ``with``; one instance per clip).

    ``detect`` is called once per frame, in presentation order, with the frame's
    index in the decoded source video (``frame_index``); it returns an ``(N, 2)``
    float array of pixel coordinates (x, y) of one face -- the largest when there
    are several -- or ``None`` when no face is found.

    The pipeline hands the source an upright RGB frame downscaled so that its
    longer side is at most ``max_side`` (None: full resolution); coordinates are
    in the pixels of the image passed in. A source with ``needs_image = False``
    (e.g. precomputed landmarks) gets a zero-cost placeholder of the full
    frame's shape and returns coordinates in full-resolution upright pixels.
    """

    scheme: LandmarkScheme = FACE_MESH_SCHEME
    max_side: int | None = None
    needs_image: bool = True

    @abc.abstractmethod
    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        """rgb: (H, W, 3) uint8 -> (N, 2) float64 pixel coordinates, or None."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (no-op by default)."""

    def __enter__(self) -> LandmarkSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def largest_face(faces: Sequence[np.ndarray]) -> np.ndarray | None:
    """The face whose landmark bounding box has the largest area (None for no faces)."""
    best, best_area = None, -1.0
    for pts in faces:
        w = float(pts[:, 0].max() - pts[:, 0].min())
        h = float(pts[:, 1].max() - pts[:, 1].min())
        if w * h > best_area:
            best, best_area = pts, w * h
    return best


class MediaPipeFaceMesh(LandmarkSource):
    """mediapipe face mesh (468 points) returning the largest face.

    static_image_mode=False is tracking (video) mode: the face detector runs only
    until a face is found, then the mesh follows it from frame to frame; use one
    instance per clip. static_image_mode=True runs full detection on every frame.
    detect_max_side: frames whose longer side exceeds this are downscaled (area
    interpolation) before detection; returned coordinates are in the original
    frame's pixels. None disables downscaling.
    """

    def __init__(
        self,
        static_image_mode: bool = False,
        max_num_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        refine_landmarks: bool = False,
        detect_max_side: int | None = 640,
    ) -> None:
        import mediapipe as mp

        self.static_image_mode = static_image_mode
        self.detect_max_side = detect_max_side
        self.max_side = detect_max_side
        self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=max_num_faces,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        if self._mesh is None:
            raise RuntimeError("MediaPipeFaceMesh is closed")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        img = rgb
        if self.detect_max_side and max(h, w) > self.detect_max_side:
            import cv2

            f = self.detect_max_side / max(h, w)
            img = cv2.resize(
                rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
            )
        img = np.ascontiguousarray(img)
        res = self._mesh.process(img)
        if not res.multi_face_landmarks:
            return None
        faces = []
        for face in res.multi_face_landmarks:
            pts = np.array([(lm.x, lm.y) for lm in face.landmark], dtype=np.float64)
            pts[:, 0] *= w  # normalised coordinates -> original-frame pixels
            pts[:, 1] *= h
            faces.append(pts)
        return largest_face(faces)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None


class PrecomputedLandmarks(LandmarkSource):
    """Landmarks read from a file: ``.npy`` array (T, N, 2) or ``.npz`` with key ``landmarks``.

    Row t holds the pixel coordinates for source frame t; rows that are all NaN
    mean "no face". Coordinates are pixels of the upright (rotation applied)
    full-resolution frame. ``detect`` ignores the image and returns row
    ``frame_index`` (the source frame's index in decode order; the next row when
    no index is given); frames past the end have no face.
    """

    needs_image = False

    def __init__(self, path: str | Path, scheme: LandmarkScheme = FACE_MESH_SCHEME) -> None:
        from avsr.errors import UserError

        path = Path(path)
        try:
            if path.suffix == ".npz":
                with np.load(path) as z:
                    if "landmarks" not in z:
                        raise UserError(f"{path}: no 'landmarks' array in the .npz")
                    arr = z["landmarks"]
            else:
                arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read landmarks ({exc})") from exc
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[1] != scheme.n_points:
            raise UserError(
                f"{path}: landmarks must have shape (T, {scheme.n_points}, 2), got {arr.shape}"
            )
        self.path = path
        self.scheme = scheme
        self._arr = arr
        self._next = 0

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        i = self._next if frame_index is None else frame_index
        self._next = i + 1
        if i < 0 or i >= len(self._arr):
            return None
        pts = self._arr[i]
        if np.isnan(pts).any():
            return None
        return pts.copy()


class CallableLandmarks(LandmarkSource):
    """Wrap any per-frame detector ``fn(rgb) -> (N, 2) array | None`` as a source."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray | None],
        scheme: LandmarkScheme = FACE_MESH_SCHEME,
    ) -> None:
        self.fn = fn
        self.scheme = scheme

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        pts = self.fn(rgb)
        return None if pts is None else np.asarray(pts, dtype=np.float64)


def derive_reference_from_astronaut() -> np.ndarray:
    """Recompute FACE_MESH_REFERENCE: face mesh on the astronaut photo, eyes levelled.

    Returns the (5, 2) canvas coordinates of FACE_MESH_STABLE.
    """
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    with MediaPipeFaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        pts = mesh.detect(img)
    if pts is None:
        raise RuntimeError("face mesh found no face on the astronaut photo")
    a, b = pts[_REF_EYES[0]], pts[_REF_EYES[1]]
    src_d = b - a
    dst_d = _REF_EYE_POS[1] - _REF_EYE_POS[0]
    scale = np.hypot(*dst_d) / np.hypot(*src_d)
    ang = np.arctan2(dst_d[1], dst_d[0]) - np.arctan2(src_d[1], src_d[0])
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    mapped = (pts - (a + b) / 2) @ rot.T + _REF_EYE_POS.mean(axis=0)
    return mapped[list(FACE_MESH_STABLE)]
