"""Talking faces from one photo: speaker looks and a cheap per-frame mouth renderer.

The base photo is ``skimage.data.astronaut()`` (512x512, frontal). Its mouth
is inpainted away once; each frame then gets a drawn mouth (lips, dark
cavity, teeth) of the wanted width / opening / rounding, with the jaw (lower
face) warped down by the opening. A speaker (:class:`Look`) is the photo with
a colour change, an optional mirror flip, a scale and position in the frame
and a background; its frame-size canvas is rendered once
(:class:`FaceRenderer`), so a frame costs a small remap + alpha blend on the
mouth patch and one affine warp of the frame for head motion and lighting.

Geometry of the photo (mediapipe face mesh, static mode): mouth corners
(201.8, 139.5) and (245.9, 142.2), face from forehead (y 72) to chin (y 175.5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SRC_CORNERS = np.array([[201.8, 139.5], [245.9, 142.2]])
SRC_MOUTH_CENTER = np.array([223.85, 143.0])
SRC_MOUTH_WIDTH = 44.2
SRC_FACE_CENTER = np.array([224.0, 124.0])
SRC_FACE_HEIGHT = 103.5  # forehead (mesh 10) to chin (mesh 152)
_CAVITY = np.array([52.0, 18.0, 24.0])
_TEETH = np.array([222.0, 216.0, 200.0])


@dataclass(frozen=True, kw_only=True)
class Look:
    """How one speaker looks. Colours are RGB gains; sizes in output pixels."""

    width: int
    height: int
    flip: bool
    face_frac: float  # face height / frame height
    offset_x: float  # face centre offset, fraction of width
    offset_y: float
    gains: tuple[float, float, float]
    gamma: float
    background: str  # "photo" | "gradient" | "texture"
    bg_colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    bg_seed: int


@functools.lru_cache(maxsize=1)
def _source() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo with mouth inpainted uint8 RGB, person mask float32 0..1, lip colour RGB)."""
    import cv2
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    lips = img[151:155, 214:234].reshape(-1, 3).astype(np.float64)
    lip_color = 0.5 * np.median(lips, axis=0) + 0.5 * np.array([172.0, 84.0, 92.0])
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, (224, 147), (27, 12), 0, 0, 360, 255, -1)
    clean = cv2.inpaint(img[:, :, ::-1].copy(), mask, 7, cv2.INPAINT_TELEA)[:, :, ::-1]
    clean = np.ascontiguousarray(cv2.GaussianBlur(clean, (0, 0), 1.0) * (mask[..., None] > 0) + clean * (mask[..., None] == 0)).astype(np.uint8)
    person = np.zeros(img.shape[:2], np.float32)
    cv2.ellipse(person, (226, 102), (80, 98), 0, 0, 360, 1.0, -1)
    cv2.ellipse(person, (232, 420), (215, 270), 0, 0, 360, 1.0, -1)
    person = cv2.GaussianBlur(person, (0, 0), 6.0)
    return clean, person, lip_color


def _background(look: Look) -> np.ndarray:
    import cv2

    h, w = look.height, look.width
    c0 = np.array(look.bg_colors[0], np.float32)
    c1 = np.array(look.bg_colors[1], np.float32)
    if look.background == "gradient":
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        return np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3)).copy()
    rng = np.random.default_rng(look.bg_seed)
    noise = rng.random((h // 16 + 2, w // 16 + 2)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(noise, (0, 0), 6.0)
    t = np.clip(noise, 0, 1)[..., None]
    return c0 * (1 - t) + c1 * t


class FaceRenderer:
    """Renders frames of one speaker: ``frame(w, h, r, bite, motion)``.

    All mouth parameters follow :mod:`avsr.corpus.visemes` (``h`` in units of
    the rest mouth width). ``motion`` = (dx px, dy px, angle deg, scale, gain).
    """

    def __init__(self, look: Look) -> None:
        import cv2

        clean, person, lip_color = _source()
        self.look = look
        src = clean.astype(np.float32) / 255.0
        src = np.power(np.clip(src * np.array(look.gains, np.float32), 0, 1), look.gamma)
        lip = np.power(np.clip(lip_color / 255.0 * np.array(look.gains), 0, 1), look.gamma)
        self.lip_color = (lip * 255.0).astype(np.float32)
        s = look.face_frac * look.height / SRC_FACE_HEIGHT
        sx = -s if look.flip else s
        cx = look.width * (0.5 + look.offset_x)
        cy = look.height * (0.5 + look.offset_y)
        m = np.array(
            [[sx, 0.0, cx - sx * SRC_FACE_CENTER[0]], [0.0, s, cy - s * SRC_FACE_CENTER[1]]],
            np.float64,
        )
        size = (look.width, look.height)
        face = cv2.warpAffine(src * 255.0, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(person, m, size, flags=cv2.INTER_LINEAR)[..., None]
        if look.background == "photo":
            canvas = face
        else:
            canvas = face * alpha + _background(look) * (1 - alpha)
        self.canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        # mouth frame on the canvas
        corners = (m[:, :2] @ SRC_CORNERS.T).T + m[:, 2]
        if look.flip:
            corners = corners[::-1]
        d = corners[1] - corners[0]
        self.theta = float(np.arctan2(d[1], d[0]))
        self.center = m[:, :2] @ SRC_MOUTH_CENTER + m[:, 2]
        self.w0 = SRC_MOUTH_WIDTH * s
        self.face_height = SRC_FACE_HEIGHT * s
        w0 = self.w0
        x0, x1 = self._span(self.center[0], -1.45 * w0, 1.45 * w0, look.width)
        y0, y1 = self._span(self.center[1], -0.45 * w0, 1.5 * w0, look.height)
        self.box = (x0, y0, x1, y1)
        u, v = self._local(x0, y0, x1, y1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self.map_x = xs - x0
        self.map_y = ys - y0
        vn, un = v / w0, np.abs(u) / w0
        ramp = np.clip(vn / 0.22, 0, 1)
        fade = np.clip((1.45 - vn) / 0.6, 0, 1)
        win = np.clip((1.35 - un) / 0.6, 0, 1)
        self.jaw = (ramp * fade * (0.5 - 0.5 * np.cos(np.pi * win))).astype(np.float32)
        self.patch = np.ascontiguousarray(self.canvas[y0:y1, x0:x1])
        # the lips are drawn in a smaller box inside the patch
        lx0, lx1 = self._span(self.center[0], -0.72 * w0, 0.72 * w0, look.width)
        ly0, ly1 = self._span(self.center[1], -0.32 * w0, 0.9 * w0, look.height)
        self.lip_box = (lx0 - x0, ly0 - y0, lx1 - x0, ly1 - y0)
        self.u, self.v = self._local(lx0, ly0, lx1, ly1)

    @staticmethod
    def _span(c: float, lo: float, hi: float, limit: int) -> tuple[int, int]:
        return max(int(np.floor(c + lo)), 0), min(int(np.ceil(c + hi)), limit)

    def _local(self, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """Mouth-frame coordinates (u along the lips, v down) of the pixels of a box."""
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        c, sn = np.float32(np.cos(self.theta)), np.float32(np.sin(self.theta))
        dx, dy = xs - np.float32(self.center[0]), ys - np.float32(self.center[1])
        return dx * c + dy * sn, -dx * sn + dy * c

    def mouth_patch(self, w: float, h: float, r: float, bite: float) -> np.ndarray:
        """The mouth patch (uint8 RGB, ``box``) with the given shape drawn in."""
        import cv2

        w0 = self.w0
        d = max(float(h), 0.0) * w0
        d_low = 0.78 * d
        patch = cv2.remap(self.patch, self.map_x, self.map_y - np.float32(d_low) * self.jaw,
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bx0, by0, bx1, by1 = self.lip_box
        region = patch[by0:by1, bx0:bx1].astype(np.float32)
        u, v = self.u, self.v
        f32 = np.float32
        half = f32(0.5 * w * w0)
        q = np.clip(f32(1.0) - (u / half) ** 2, f32(0.0), f32(1.0))
        k = f32(0.5 + 0.5 * (1.0 - r))
        s_in = q**k
        y_ui = f32(-0.22 * d) * s_in
        y_li = f32(d_low) * s_in
        taper = q ** f32(0.35)
        y_uo = y_ui - f32(w0 * (0.105 + 0.04 * r)) * taper
        y_lo = y_li + f32(w0 * (0.14 + 0.05 * r)) * taper

        def sm(x: np.ndarray) -> np.ndarray:
            return np.clip(x * f32(0.8) + f32(0.5), f32(0.0), f32(1.0))

        side = sm(half - np.abs(u))
        a_lip = (sm(v - y_uo) * sm(y_lo - v) * side)[..., None]
        a_cav = (sm(v - y_ui) * sm(y_li - v) * side)[..., None]
        th = f32(min(0.09 * w0, 0.45 * d) * (1.0 - 0.7 * r))
        a_teeth = a_cav * sm(y_ui + th - v)[..., None]
        shade = (f32(0.82) + f32(0.18) * np.clip((v - y_uo) / np.maximum(y_lo - y_uo, f32(1e-3)), f32(0), f32(1)))[..., None]
        out = region * (1 - a_lip) + (self.lip_color * shade) * a_lip
        out = out * (1 - a_cav) + _CAVITY.astype(np.float32) * a_cav
        out = out * (1 - a_teeth) + _TEETH.astype(np.float32) * a_teeth
        if bite > 0.01:
            band = (sm(v - y_ui) * sm(y_ui + f32(0.1 * w0) - v) * sm(f32(0.42 * w * w0) - np.abs(u)))[..., None] * f32(bite)
            out = out * (1 - band) + _TEETH.astype(np.float32) * band
        patch[by0:by1, bx0:bx1] = np.clip(out + f32(0.5), 0, 255).astype(np.uint8)
        return patch

    def frame(self, w: float, h: float, r: float, bite: float,
              motion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 1.0, 1.0)) -> np.ndarray:
        """One uint8 RGB frame (height, width, 3)."""
        import cv2

        x0, y0, x1, y1 = self.box
        img = self.canvas.copy()
        img[y0:y1, x0:x1] = self.mouth_patch(w, h, r, bite)
        dx, dy, ang, scale, gain = motion
        m = cv2.getRotationMatrix2D((float(self.center[0]), float(self.center[1]) - 0.5 * self.face_height), ang, scale)
        m[0, 2] += dx
        m[1, 2] += dy
        out = cv2.warpAffine(img, m, (self.look.width, self.look.height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return cv2.convertScaleAbs(out, alpha=gain)
