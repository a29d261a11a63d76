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

from avsr.logging_utils import quiet_native_stderr

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


# protobuf wire layout of one NormalizedLandmark inside a NormalizedLandmarkList when it has
# exactly x, y, z set (as face mesh writes them): 0x0a len=15, 0x0d x, 0x15 y, 0x1d z
_LANDMARK_WIRE = np.dtype(
    [
        ("tag", "u1"),
        ("len", "u1"),
        ("tx", "u1"),
        ("x", "<f4"),
        ("ty", "u1"),
        ("y", "<f4"),
        ("tz", "u1"),
        ("z", "<f4"),
    ]
)


def _landmark_xy(face: Any) -> np.ndarray:
    """(N, 2) float64 normalised x, y of a NormalizedLandmarkList.

    Reads the serialised message with numpy (about 8x faster than a Python loop
    over 468 landmark objects); falls back to the loop for any other layout.
    """
    data = face.SerializeToString()
    if len(data) % _LANDMARK_WIRE.itemsize == 0:
        rec = np.frombuffer(data, _LANDMARK_WIRE)
        if (
            (rec["tag"] == 0x0A).all()
            and (rec["len"] == 15).all()
            and (rec["tx"] == 0x0D).all()
            and (rec["ty"] == 0x15).all()
            and (rec["tz"] == 0x1D).all()
        ):
            return np.stack([rec["x"], rec["y"]], axis=1).astype(np.float64)
    return np.array([(lm.x, lm.y) for lm in face.landmark], dtype=np.float64)


class MediaPipeFaceMesh(LandmarkSource):
    """mediapipe face mesh (468 points) returning the largest face.

    static_image_mode=True: full face detection + mesh on every frame, up to
    ``max_num_faces`` faces.

    static_image_mode=False (tracking / video mode; one instance per clip): the
    mesh follows faces from frame to frame and the face detector runs only when
    a tracked face is lost. mediapipe's tracker keeps detecting on every frame
    while it tracks fewer faces than its capacity, so the capacity is set to the
    number of faces a full detection finds (at least 1, at most
    ``max_num_faces``): on the first frame and again every ``recheck_every``
    frames, where a higher count rebuilds the tracker so that a face that
    entered later (and may be the largest) is tracked too.

    detect_max_side: frames whose longer side exceeds this are downscaled (area
    interpolation) before detection; returned coordinates are in the pixels of
    the image passed in. None disables downscaling.

    mediapipe's own C++ log lines (``W0000 ...``) are hidden unless ``avsr -v``
    (see :func:`avsr.logging_utils.quiet_native_stderr`).
    """

    def __init__(
        self,
        static_image_mode: bool = False,
        max_num_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        refine_landmarks: bool = False,
        detect_max_side: int | None = 640,
        recheck_every: int = 25,
    ) -> None:
        import mediapipe as mp

        self.static_image_mode = static_image_mode
        self.max_num_faces = max_num_faces
        self.detect_max_side = detect_max_side
        self.max_side = detect_max_side
        self.recheck_every = recheck_every
        self._kwargs = dict(
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._mp_face_mesh = mp.solutions.face_mesh
        self._full: Any = self._new_mesh(static_image_mode=True, max_num_faces=max_num_faces)
        self._tracker: Any = None
        self._capacity = 0
        self._since_check = 0
        self._closed = False
        self.full_detections = 0  # how many frames ran a full detection (for tests/benchmarks)

    def _new_mesh(self, static_image_mode: bool, max_num_faces: int) -> Any:
        """A started face-mesh graph; returns once its calculators are open (and have logged)."""
        with quiet_native_stderr():
            mesh = self._mp_face_mesh.FaceMesh(
                static_image_mode=static_image_mode, max_num_faces=max_num_faces, **self._kwargs
            )
            graph = getattr(mesh, "_graph", None)  # mediapipe's SolutionBase keeps it private
            if graph is not None:
                graph.wait_until_idle()  # calculators open on the graph's own threads
        return mesh

    @staticmethod
    def _run(mesh: Any, img: np.ndarray) -> Any:
        """One face-mesh graph run on an RGB image (its result object)."""
        with quiet_native_stderr():
            return mesh.process(img)

    def _faces(self, result: Any, w: int, h: int) -> list[np.ndarray]:
        faces = []
        for face in result.multi_face_landmarks or ():
            pts = _landmark_xy(face)
            pts[:, 0] *= w  # normalised coordinates -> pixels
            pts[:, 1] *= h
            faces.append(pts)
        return faces

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        if self._closed:
            raise RuntimeError("MediaPipeFaceMesh is closed")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        img = rgb
        if self.detect_max_side and max(h, w) > self.detect_max_side:
            import cv2

            f = self.detect_max_side / max(h, w)
            size = (max(1, round(w * f)), max(1, round(h * f)))
            img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        img = np.ascontiguousarray(img)
        if self.static_image_mode:
            self.full_detections += 1
            return largest_face(self._faces(self._run(self._full, img), w, h))
        if self._tracker is None or self._since_check >= self.recheck_every:
            self.full_detections += 1
            n = len(self._run(self._full, img).multi_face_landmarks or ())
            self._since_check = 0
            if self._tracker is None or n > self._capacity:
                if self._tracker is not None:
                    with quiet_native_stderr():
                        self._tracker.close()
                self._capacity = max(1, min(n, self.max_num_faces))
                self._tracker = self._new_mesh(
                    static_image_mode=False, max_num_faces=self._capacity
                )
        self._since_check += 1
        return largest_face(self._faces(self._run(self._tracker, img), w, h))

    def close(self) -> None:
        if not self._closed:
            with quiet_native_stderr():
                self._full.close()
                if self._tracker is not None:
                    self._tracker.close()
            self._tracker = None
            self._closed = True


def read_landmark_array(path: Path) -> np.ndarray:
    """(T, N, 2) float64 landmarks of a ``.npy`` file or of a ``.npz`` with key ``landmarks``.

    Never unpickles; raises UserError naming the file when it cannot be read or
    has another shape.
    """
    from avsr.errors import UserError

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "landmarks" not in z:
                    raise UserError(f"{path}: no 'landmarks' array in the .npz")
                arr = z["landmarks"]
        else:
            arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read landmarks ({exc})") from exc
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise UserError(f"{path}: landmarks must have shape (T, N, 2), got {arr.shape}")
    return arr


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
        arr = read_landmark_array(path)
        if arr.shape[1] != scheme.n_points:
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
