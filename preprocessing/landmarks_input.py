"""Precomputed landmark files for ``avsr preprocess --landmarks DIR``.

Formats read (one file per video, one entry per source video frame):

* ``avhubert``: a Python pickle holding a list with one entry per frame, a
  ``(68, 2)`` array of dlib's 68 points (x, y in pixels of the full frame) or
  ``None`` where no face was found. AV-HuBERT and MuAViC publish their
  landmarks this way; auto_avsr's RetinaFace + FAN tracker writes the same
  shape (FAN's 68 points follow dlib's numbering).
* ``auto_avsr``: the same kind of pickle, with either 68 points per frame
  (RetinaFace + FAN) or 4 points per frame (mediapipe face detection:
  subject's right eye, left eye, nose tip, mouth centre).
* ``npy``: ``.npy`` array ``(T, N, 2)`` or ``.npz`` with key ``landmarks``,
  NaN rows where no face was found; N is 68 (dlib), 468 (mediapipe face mesh)
  or 4 (the keypoints above). This is the safe, documented format.

Pickles are read with :class:`SafeUnpickler`, which rebuilds numpy arrays and
plain containers only: any other global (``os.system``, ``builtins.eval``,
...) refuses the file before anything is called.

Alignment of 68-point input: stable points 33 (bottom of the nose), 36 and 39
(subject's right eye outer and inner corners), 42 and 45 (left eye inner and
outer corners) are mapped by a similarity transform onto a 68-point mean face
on the 256x256 canvas (``dlib68_mean_face.json``, see
:func:`derive_dlib68_mean_face`); the 96x96 crop is centred on the mean of the
mouth points 48..67. Missing frames and smoothing are handled by the pipeline
as for face mesh (linear interpolation, centred moving average).
"""

from __future__ import annotations

import codecs
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avsr.errors import UserError
from preprocessing.align import apply, similarity_transform
from preprocessing.clip import Clip, PreprocessConfig
from preprocessing.landmarks import (
    FACE_MESH_SCHEME,
    LandmarkScheme,
    LandmarkSource,
    MediaPipeFaceMesh,
    read_landmark_array,
)
from preprocessing.video_io import MediaError

LANDMARK_FORMATS = ("auto", "avhubert", "auto_avsr", "npy")
PICKLE_EXTENSIONS = (".pkl", ".pickle")
ARRAY_EXTENSIONS = (".npz", ".npy")
# how many trailing components of the video path (without extension) name a landmark file
MAX_LOOKUP_DEPTH = 4

DLIB68_STABLE = (33, 36, 39, 42, 45)
DLIB68_MOUTH = tuple(range(48, 68))
# mediapipe face-mesh index of each dlib point 0..67 (jaw, brows, nose, eyes, outer lips, inner lips)
MESH_TO_DLIB68 = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip
_MEAN_FACE_FILE = Path(__file__).with_name("dlib68_mean_face.json")
# reference eye corners of the canvas (the same as the face-mesh reference face)
_EYE_CORNERS = np.array([[83.0, 112.0], [173.0, 112.0]])


def load_dlib68_mean_face(path: Path = _MEAN_FACE_FILE) -> np.ndarray:
    """(68, 2) dlib mean face on the 256x256 canvas, read from ``dlib68_mean_face.json``.

    Made by :func:`derive_dlib68_mean_face`: mediapipe face mesh (static mode) on
    ``skimage.data.astronaut()``, the similarity that puts the outer eye corners
    (mesh 33 and 263) at (83, 112) and (173, 112), then the mesh points that
    correspond to dlib's 68 (:data:`MESH_TO_DLIB68`). Its eye corners therefore
    coincide with the face-mesh reference face, and both paths crop alike.
    """
    doc = json.loads(path.read_text(encoding="utf-8"))
    return np.asarray(doc["points"], dtype=np.float64)


def derive_dlib68_mean_face() -> np.ndarray:
    """Recompute the (68, 2) mean face stored in ``dlib68_mean_face.json`` (runs face mesh once)."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    with MediaPipeFaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        pts = mesh.detect(img)
    if pts is None:
        raise RuntimeError("face mesh found no face on the astronaut photo")
    m = similarity_transform(pts[[33, 263]], _EYE_CORNERS)
    return apply(m, pts[list(MESH_TO_DLIB68)])


def keypoints4_from_dlib68(pts: np.ndarray) -> np.ndarray:
    """(..., 68, 2) dlib points -> (..., 4, 2) right eye centre, left eye centre, nose tip, mouth centre."""
    return np.stack(
        [
            pts[..., 36:42, :].mean(axis=-2),
            pts[..., 42:48, :].mean(axis=-2),
            pts[..., 30, :],
            pts[..., 48:68, :].mean(axis=-2),
        ],
        axis=-2,
    )


DLIB68_MEAN_FACE = load_dlib68_mean_face()
DLIB68_SCHEME = LandmarkScheme(
    name="dlib_68",
    n_points=68,
    stable=DLIB68_STABLE,
    reference=DLIB68_MEAN_FACE[list(DLIB68_STABLE)],
    mouth=DLIB68_MOUTH,
)
KEYPOINTS4_SCHEME = LandmarkScheme(
    name="face_detection_4",
    n_points=4,
    stable=(0, 1, 2),
    reference=keypoints4_from_dlib68(DLIB68_MEAN_FACE)[:3],
    mouth=(3,),
)
SCHEMES = {s.n_points: s for s in (DLIB68_SCHEME, KEYPOINTS4_SCHEME, FACE_MESH_SCHEME)}
# point counts each format accepts
_FORMAT_POINTS = {"avhubert": (68,), "auto_avsr": (68, 4), "npy": (68, 468, 4), "auto": (68, 468, 4)}


# ----------------------------------------------------------------------------- safe pickles


def _numpy_callables() -> dict[tuple[str, str], Any]:
    """The globals an array pickle names (numpy's under their 1.x and 2.x module paths)."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol 2 writes array bytes through it
    }
    for module in ("numpy.core", "numpy._core"):
        found[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            found[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return found


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, dtypes and scalars, and plain containers only.

    Lists, tuples, dicts, numbers, strings and None need no global; any other
    global a pickle names raises :class:`UserError` naming the file, before
    anything is called.
    """

    _allowed = _numpy_callables()

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"{self.path}: refused: the pickle calls {module}.{name} (landmark pickles may "
                "hold numpy arrays and lists only)"
            ) from None


def read_landmark_pickle(path: Path) -> Any:
    """The object in a landmark pickle, read with :class:`SafeUnpickler` (never plain pickle.load)."""
    try:
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, path).load()
    except UserError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways; none of them runs code
        raise UserError(f"{path}: cannot read landmarks ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- reading files


def _frame_entries(obj: Any, path: Path) -> list[Any]:
    """The per-frame entries of an unpickled landmark object (list, tuple or array, along axis 0)."""
    if isinstance(obj, list | tuple) or (isinstance(obj, np.ndarray) and obj.ndim > 0):
        return list(obj)
    raise UserError(f"{path}: expected a list with one entry per frame, got {type(obj).__name__}")


def frames_to_array(obj: Any, path: Path) -> np.ndarray:
    """Per-frame entries ((N, 2) points or None) -> (T, N, 2) float64, NaN rows for None."""
    entries = _frame_entries(obj, path)
    arrays: list[np.ndarray | None] = []
    for t, entry in enumerate(entries):
        if entry is None:
            arrays.append(None)
            continue
        try:
            pts = np.asarray(entry, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: frame {t} is not an array of points ({exc})") from exc
        while pts.ndim > 2 and pts.shape[0] == 1:  # a face axis of length one
            pts = pts[0]
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise UserError(f"{path}: frame {t} has shape {pts.shape}, expected (N, 2)")
        arrays.append(pts)
    sizes = {a.shape[0] for a in arrays if a is not None}
    if len(sizes) > 1:
        raise UserError(f"{path}: frames have different point counts {sorted(sizes)}")
    n = sizes.pop() if sizes else 68
    nan = np.full((n, 2), np.nan)
    return np.stack([nan if a is None else a for a in arrays]) if arrays else np.zeros((0, n, 2))


def read_landmark_file(path: Path, fmt: str = "auto") -> tuple[np.ndarray, LandmarkScheme]:
    """(T, N, 2) landmarks (NaN rows: no face) of one file and the scheme for its point count."""
    if path.suffix in PICKLE_EXTENSIONS:
        arr = frames_to_array(read_landmark_pickle(path), path)
    else:
        arr = read_landmark_array(path)
    allowed = _FORMAT_POINTS[fmt]
    if arr.shape[1] not in allowed:
        raise UserError(
            f"{path}: {arr.shape[1]} points per frame; format {fmt} takes "
            f"{' or '.join(map(str, allowed))}"
        )
    return arr, SCHEMES[arr.shape[1]]


# ----------------------------------------------------------------------------- lookup


def _candidate_stems(clip: Clip) -> Iterator[str]:
    """``<id>``, then the video's path without extension, longest trailing part first."""
    yield clip.id
    parts = Path(clip.video).with_suffix("").parts
    for depth in range(min(MAX_LOOKUP_DEPTH, len(parts) - 1), 0, -1):
        yield "/".join(parts[-depth:])


def find_landmark_file(base: Path, clip: Clip, fmt: str = "auto") -> Path | None:
    """The landmark file of a clip under ``base`` (see :func:`landmark_source` for the order)."""
    exts = {"avhubert": PICKLE_EXTENSIONS, "auto_avsr": PICKLE_EXTENSIONS, "npy": ARRAY_EXTENSIONS}
    for stem in _candidate_stems(clip):
        for ext in exts.get(fmt, ARRAY_EXTENSIONS + PICKLE_EXTENSIONS):
            path = base / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


# ----------------------------------------------------------------------------- the source


class FileLandmarks(LandmarkSource):
    """Landmarks of one clip read from a file: row t belongs to source frame t (decode order).

    ``detect`` ignores the image and returns row ``frame_index`` (the next row
    when no index is given), or None for a NaN row or a frame past the end.
    """

    needs_image = False

    def __init__(self, track: np.ndarray, scheme: LandmarkScheme, path: Path) -> None:
        self.track = track
        self.scheme = scheme
        self.path = path
        self._next = 0

    @classmethod
    def open(cls, path: Path, fmt: str = "auto") -> FileLandmarks:
        """Read ``path`` (pickle or npy/npz) as ``fmt``; raises UserError for a bad file."""
        track, scheme = read_landmark_file(path, fmt)
        return cls(track, scheme, path)

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        i = self._next if frame_index is None else frame_index
        self._next = i + 1
        pts = self.track[i] if 0 <= i < len(self.track) else None
        return None if pts is None or np.isnan(pts).any() else pts.copy()

    def report_fields(self) -> dict[str, Any]:
        """Fields for the clip's report record: where its landmarks came from."""
        return {
            "landmarks_source": "file",
            "landmarks_file": str(self.path),
            "landmarks_scheme": self.scheme.name,
        }

    def check_frame_count(self, n_source_frames: int, video: str) -> None:
        """Skip the clip (``landmarks_mismatch``) unless the file has one entry per decoded frame."""
        if len(self.track) != n_source_frames:
            raise MediaError(
                "landmarks_mismatch",
                f"{self.path}: {len(self.track)} frames of landmarks, but {video} has "
                f"{n_source_frames} frames",
            )


def landmark_source(clip: Clip, cfg: PreprocessConfig) -> FileLandmarks:
    """The landmarks of ``clip`` under ``cfg.landmarks_dir``, as ``cfg.landmarks_format``.

    Looked up as ``DIR/<id><ext>``, then ``DIR/<a/b/stem><ext>`` for the last 4, 3,
    2, 1 components of the video's path without extension (AV-HuBERT's layout:
    ``video/trainval/SPK/00001.mp4`` -> ``DIR/trainval/SPK/00001.pkl``); ext is
    ``.npz``, ``.npy``, ``.pkl``, ``.pickle`` (pickles only for ``avhubert`` and
    ``auto_avsr``, arrays only for ``npy``). A missing file skips the clip
    (``no_landmarks``), an unreadable or refused one too (``bad_landmarks``).
    """
    base = Path(cfg.landmarks_dir)
    path = find_landmark_file(base, clip, cfg.landmarks_format)
    if path is None:
        raise MediaError(
            "no_landmarks",
            f"{base}: no landmark file for {clip.id} ({cfg.landmarks_format} format; "
            f"looked for {clip.id} and the video's path {Path(clip.video).stem} below it)",
        )
    try:
        return FileLandmarks.open(path, cfg.landmarks_format)
    except UserError as exc:
        raise MediaError("bad_landmarks", str(exc)) from exc
