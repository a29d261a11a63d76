"""One talking-face clip: mouth trajectory + head motion + lighting -> H.264/AAC mp4 (PyAV).

Frame ``i`` shows time ``i / fps``. The video has ``ceil(duration * fps)``
frames; the AAC track carries the same 16 kHz mono samples as the exact wav
written beside the mp4. libx264 runs single-threaded (``ultrafast``, CRF 18)
so the same inputs always give the same decoded frames.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from avsr.audio import SAMPLE_RATE
from avsr.corpus.face import FaceRenderer
from avsr.corpus.speech import WordTiming, envelope
from avsr.corpus.visemes import mouth_trajectory, word_visemes

FRAME_RATES: tuple[Fraction, ...] = (Fraction(25), Fraction(30000, 1001), Fraction(30))


def n_frames_for(n_samples: int, fps: Fraction) -> int:
    return int(math.ceil(n_samples * fps / SAMPLE_RATE))


def head_motion(n: int, fps: Fraction, face_height: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 5) per-frame (dx, dy, angle deg, scale, gain): smooth sums of slow sinusoids."""
    t = np.arange(n, dtype=np.float64) / float(fps)

    def wobble(amp: float) -> np.ndarray:
        out = np.zeros(n)
        for _ in range(2):
            f = rng.uniform(0.15, 0.6)
            out += amp / 2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        return out

    dx = wobble(0.035 * face_height)
    dy = wobble(0.025 * face_height)
    ang = wobble(3.0)
    scale = 1.0 + wobble(0.03)
    drift = rng.uniform(-0.08, 0.08) * t / max(t[-1], 1.0) if n else t
    gain = rng.uniform(0.92, 1.06) + drift + wobble(0.04)
    return np.stack([dx, dy, ang, scale, gain], axis=1)


def render_clip(
    renderer: FaceRenderer,
    audio: np.ndarray,
    words: list[WordTiming],
    fps: Fraction,
    rng: np.random.Generator,
    out_path: Path,
) -> dict[str, np.ndarray]:
    """Write the mp4 (video + AAC audio) to ``out_path``; returns the per-frame mouth parameters
    (``w``, ``h`` = driving signal, ``r``, ``bite``) and ``motion`` (n, 5)."""
    import av
    import cv2

    cv2.setNumThreads(1)
    n = n_frames_for(len(audio), fps)
    times = np.arange(n, dtype=np.float64) / float(fps)
    env = envelope(audio, times)
    traj = mouth_trajectory([(w.start, w.end, word_visemes(w.word)) for w in words], times, env)
    motion = head_motion(n, fps, renderer.face_height, rng)
    look = renderer.look
    with av.open(str(out_path), "w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = look.width, look.height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18", "threads": "1"}
        vs.codec_context.thread_count = 1
        as_ = container.add_stream("aac", rate=SAMPLE_RATE)
        as_.layout = "mono"
        for i in range(n):
            img = renderer.frame(traj["w"][i], traj["h"][i], traj["r"][i], traj["bite"][i], tuple(motion[i]))
            yuv = cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)  # BT.601 limited range, like swscale
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            container.mux(vs.encode(frame))
        container.mux(vs.encode())
        pcm = np.clip(audio, -1.0, 1.0).astype(np.float32)[None, :]
        block = 1024
        for k in range(0, pcm.shape[1], block * 16):
            chunk = np.ascontiguousarray(pcm[:, k : k + block * 16])
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = k
            container.mux(as_.encode(af))
        container.mux(as_.encode())
    traj["motion"] = motion
    return traj
