"""Media files with corrupt packets: encode an AVI (MPEG-4 video, AC3 audio), then overwrite packets."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

FPS = 25
"""Frame rate of the videos written here."""


def moving_gray(n_frames: int, width: int = 128, height: int = 96) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a uniform gray that brightens a little every frame."""
    levels = (40 + 3 * np.arange(n_frames)) % 256
    return np.broadcast_to(levels[:, None, None, None], (n_frames, height, width, 3)).astype(
        np.uint8
    )


def write_av(
    path: Path,
    frames: np.ndarray,
    acodec: str = "ac3",
    rate: int = 48000,
    layout: str = "stereo",
) -> Path:
    """``frames`` (T, H, W, 3) at 25 fps (MPEG-4) and a 440 Hz tone as long, muxed by suffix."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        aus = out.add_stream(acodec, rate=rate, layout=layout)  # every stream before muxing
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode())
        size = aus.codec_context.frame_size or 1024
        n = len(frames) * rate // FPS
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n + size) / rate)).astype(np.float32)
        channels = len(aus.codec_context.layout.channels)
        for start in range(0, n, size):
            block = np.tile(tone[None, start : start + size], (channels, 1))
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            af.sample_rate, af.pts = rate, start
            out.mux(aus.encode(af))
        out.mux(aus.encode())
    return path


def count_packets(path: Path, kind: str = "audio") -> int:
    """Packets with data of the first ``kind`` ('audio' or 'video') stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return sum(1 for p in c.demux(stream) if p.size)


def damage(src: Path, dst: Path, packets: list[int], kind: str = "audio") -> Path:
    """Copy ``src`` with the payload of its ``kind`` packets ``packets`` (demux order) overwritten
    by random bytes (found by their byte offset ``packet.pos``)."""
    with av.open(str(src)) as c:
        stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        spans = [(p.pos, p.size) for p in c.demux(stream) if p.size]
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for i in packets:
        pos, size = spans[i]
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst
