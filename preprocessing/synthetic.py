"""Small synthetic talking-face videos (the astronaut photo, moving) for tests and benchmarks.

:func:`write_face_video` pastes the face of ``skimage.data.astronaut()`` onto a
canvas of any size, moving it slowly (a known per-frame shift), optionally with
an audio track (a tone), rotation metadata or a variable frame rate. The mouth
position of every frame is returned, so tests can check where the ROI lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# mouth centre (x, y) of the astronaut face in the 512x512 photo (mean of the face-mesh lip points)
ASTRONAUT_MOUTH = (223.5, 144.3)
# the head region pasted onto the canvas: rows, cols of the photo
_HEAD = (slice(10, 250), slice(110, 340))


@dataclass
class SyntheticVideo:
    path: Path
    n_frames: int
    fps: float
    duration: float
    mouth: np.ndarray  # (n_frames, 2) upright-frame pixel position of the mouth centre


def _head(scale: float) -> np.ndarray:
    import cv2
    from skimage import data

    head = np.ascontiguousarray(data.astronaut()[_HEAD])
    if scale != 1.0:
        head = cv2.resize(
            head,
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    return head


def face_frames(
    n_frames: int,
    width: int = 320,
    height: int = 240,
    face_scale: float | None = None,
    amplitude: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 frames with the astronaut head drifting and (T, 2) mouth positions."""
    if face_scale is None:
        face_scale = min(1.0, 0.8 * height / 240)
    head = _head(face_scale)
    hh, hw = head.shape[:2]
    if hh + 2 * amplitude >= height or hw + 2 * amplitude >= width:
        raise ValueError(f"canvas {width}x{height} too small for a head of {hw}x{hh}")
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    mouth = np.empty((n_frames, 2))
    y0 = (height - hh) // 2
    x0 = (width - hw) // 2
    mx = (ASTRONAUT_MOUTH[0] - _HEAD[1].start) * face_scale
    my = (ASTRONAUT_MOUTH[1] - _HEAD[0].start) * face_scale
    for t in range(n_frames):
        dx = int(round(amplitude * np.sin(2 * np.pi * t / 50)))
        dy = int(round(amplitude / 2 * np.sin(2 * np.pi * t / 37)))
        frames[t] = 90
        frames[t, y0 + dy : y0 + dy + hh, x0 + dx : x0 + dx + hw] = head
        mouth[t] = (x0 + dx + mx, y0 + dy + my)
    return frames, mouth


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float | Fraction = 25,
    *,
    audio_rate: int | None = 16000,
    rotation: int = 0,
    times: np.ndarray | None = None,
    codec: str = "libx264",
    container_format: str | None = None,
) -> float:
    """Encode (T, H, W, 3) frames (+ a 220 Hz tone when audio_rate is set); returns the duration in s.

    rotation: display rotation metadata (counter-clockwise degrees); the frames are
    stored rotated by -rotation so that a reader honouring the metadata sees ``frames``.
    times: per-frame presentation times in seconds (variable frame rate); default k / fps.
    """
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    coded = np.stack([np.rot90(f, k=-(rotation // 90)) for f in frames]) if rotation else frames
    t_count, h, w = coded.shape[:3]
    if times is not None:
        duration = float(times[-1] + (times[-1] - times[-2]))
    else:
        duration = t_count / float(rate)
    with av.open(str(path), mode="w", format=container_format) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        if times is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for i, img in enumerate(coded):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if times is not None:
                vf.pts = int(round(times[i] * 1000))
                vf.time_base = Fraction(1, 1000)
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if aus is not None and audio_rate:
            n = int(round(duration * audio_rate))
            tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / audio_rate)).astype(np.float32)
            for i in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(
                    tone[None, i : i + 1024], format="fltp", layout="mono"
                )
                af.sample_rate = audio_rate
                af.pts = i
                for pkt in aus.encode(af):
                    out.mux(pkt)
            for pkt in aus.encode():
                out.mux(pkt)
    return duration


def write_face_video(
    path: str | Path,
    n_frames: int = 30,
    fps: float = 25,
    width: int = 320,
    height: int = 240,
    *,
    audio_rate: int | None = 16000,
    rotation: int = 0,
    vfr: bool = False,
    face_scale: float | None = None,
) -> SyntheticVideo:
    """Write a moving-astronaut video; see module docstring."""
    frames, mouth = face_frames(n_frames, width, height, face_scale)
    times = None
    if vfr:
        rng = np.random.default_rng(0)
        steps = rng.uniform(0.5, 1.5, size=n_frames) / fps
        times = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    duration = write_video(path, frames, fps, audio_rate=audio_rate, rotation=rotation, times=times)
    return SyntheticVideo(
        path=Path(path), n_frames=n_frames, fps=fps, duration=duration, mouth=mouth
    )
