"""A long-form test video: synthesised utterances (espeak-ng, the corpus voice) separated by
pauses, over the moving astronaut face, with an optional stretch without a face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avsr.audio import SAMPLE_RATE
from avsr.corpus.speech import make_voice, utterance
from preprocessing.synthetic import face_frames

FPS = 25
SENTENCES = (
    ("red", "house", "near", "river"),
    ("small", "dog", "runs", "fast"),
    ("green", "tree", "under", "sky"),
    ("old", "man", "reads", "book"),
)


@dataclass
class LongformAudio:
    audio: np.ndarray
    """(S,) float32 16 kHz speech with pauses."""
    utterances: list[tuple[float, float]]
    """(start, end) of each utterance (s)."""


def speech_with_pauses(
    n_utterances: int = 4, pause_s: float = 1.2, lead_s: float = 0.5, seed: int = 0
) -> LongformAudio:
    """``n_utterances`` synthesised sentences, ``pause_s`` of silence between them."""
    rng = np.random.default_rng(seed)
    voice = make_voice("en", 0, rng)
    parts = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)]
    spans = []
    t = lead_s
    for words in SENTENCES[:n_utterances]:
        audio, _ = utterance(voice, list(words), rng)
        audio = np.asarray(audio, np.float32)
        spans.append((t, t + len(audio) / SAMPLE_RATE))
        t += len(audio) / SAMPLE_RATE + pause_s
        parts += [audio, np.zeros(int(pause_s * SAMPLE_RATE), np.float32)]
    return LongformAudio(audio=np.concatenate(parts), utterances=spans)


def write_talking_video(
    path: Path, audio: np.ndarray | None, n_frames: int, no_face: tuple[float, float] | None = None
) -> Path:
    """An mp4 (320x240, 25 fps) of the astronaut face with ``audio`` (AAC, 16 kHz mono; None:
    no audio stream); frames in ``no_face`` (start, end) seconds show an empty canvas."""
    frames, _ = face_frames(n_frames)
    if no_face is not None:
        frames[int(no_face[0] * FPS) : int(no_face[1] * FPS)] = 90
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.thread_count = 1
        aus = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio is not None else None
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode())
        if aus is not None and audio is not None:
            for i in range(0, len(audio), 1024):
                af = av.AudioFrame.from_ndarray(audio[None, i : i + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = SAMPLE_RATE, i
                out.mux(aus.encode(af))
            out.mux(aus.encode())
    return path


def write_empty_video(path: Path) -> Path:
    """An mp4 written with a video stream but no frames (zero length)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
        out.mux(vs.encode())
    return path
