"""Generate a long test video from the demo corpus's English test utterances.

The utterances of ``--corpus`` (``clips.tsv``, ``split=test``, ``lang=en``; raw media
``raw/test/<id>.mp4`` + ``.wav``) are laid end to end with ``--pause`` seconds between
them (video: the utterance's last frame held; audio: silence; the raw clips, about
30 fps, resampled to 25 fps by time so lips and audio stay in sync), cycling through the
clips until ``--minutes`` is reached. Output: a 640x480 25 fps MP4 (H.264, or mpeg4
when libx264 is missing) with 16 kHz mono PCM audio in a QuickTime/MP4 container
(``.mov``; PCM has no encoder delay, so the audio starts exactly with the video), and
beside it ``<out>.json``, the ground truth: per utterance its start/end in the long
video, its text, and its words with start/end (the corpus's alignments, offset by the
utterance start). Times are those of the *video* (the lips); with ``--audio-shift-ms``
the audio is shifted against them.

Options:

- ``--cutaway START:DUR``: those seconds' frames are replaced by a face-less image
  (``skimage.data`` landscape, or gray), the audio kept (repeatable);
- ``--audio-shift-ms X``: the audio is delayed by X ms (negative: early) against the
  video; the length stays that of the video.

Frames are decoded, edited and encoded one at a time (memory does not grow with length).

Run: ``.venv/bin/python benchmarks/longform_video.py --minutes 6 --out /work/longform/6min.mov``
"""

from __future__ import annotations

import argparse
import csv
import json
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
WIDTH, HEIGHT = 640, 480
DEFAULT_CORPUS = Path("/work/demo_full/corpus")


@dataclass(frozen=True)
class SourceClip:
    """One corpus utterance: its media, text and word timings (seconds, clip time)."""

    id: str
    video: Path
    audio: Path
    text: str
    words: list[dict]  # type: ignore[type-arg]


def load_clips(corpus: Path, split: str = "test", lang: str = "en") -> list[SourceClip]:
    """The clips of ``split``/``lang`` in ``clips.tsv`` order, with their word alignments."""
    clips = []
    with open(corpus / "clips.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["split"] != split or row["lang"] != lang:
                continue
            align = json.loads((corpus / "alignments" / f"{row['id']}.json").read_text())
            clips.append(
                SourceClip(
                    id=row["id"],
                    video=corpus / row["video"],
                    audio=corpus / row["audio"],
                    text=row["text"],
                    words=[{k: w[k] for k in ("word", "start", "end")} for w in align["words"]],
                )
            )
    return clips


def read_wav(path: Path) -> np.ndarray:
    """16 kHz mono int16 samples of a wav file."""
    with wave.open(str(path)) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def clip_frames(path: Path) -> Iterator[np.ndarray]:
    """The RGB frames (H, W, 3) uint8 of a clip at 25 fps (resampled by time: the latest
    source frame at each output frame's time; the raw clips are about 30 fps), 640x480."""
    with av.open(str(path)) as container:
        k, prev = 0, None
        for frame in container.decode(video=0):
            if frame.width != WIDTH or frame.height != HEIGHT:
                frame = frame.reformat(width=WIDTH, height=HEIGHT)
            t = float(frame.time or 0.0)
            while prev is not None and k / FPS < t - 1e-6:
                yield prev
                k += 1
            prev = frame.to_ndarray(format="rgb24")
        end = float(container.streams.video[0].duration * container.streams.video[0].time_base) \
            if container.streams.video[0].duration else (k + 1) / FPS
        while prev is not None and k / FPS < end - 1e-6:
            yield prev
            k += 1


def cutaway_image() -> np.ndarray:
    """A face-less 640x480 RGB image: skimage's coffee/landscape scene, else mid gray."""
    try:
        from skimage import data, transform

        img = transform.resize(data.coffee(), (HEIGHT, WIDTH), anti_aliasing=True)
        return (img * 255).astype(np.uint8)
    except Exception:  # noqa: BLE001 - skimage missing or its data not shipped
        return np.full((HEIGHT, WIDTH, 3), 128, np.uint8)


def parse_cutaway(text: str) -> tuple[float, float]:
    """``START:DUR`` in seconds -> (start, end)."""
    start, dur = (float(x) for x in text.split(":"))
    return start, start + dur


class Writer:
    """Streams frames and audio into the output container."""

    def __init__(self, out: Path, cutaways: list[tuple[float, float]]) -> None:
        self.container = av.open(str(out), "w")
        codec = "libx264"
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - ffmpeg build without x264
            codec = "mpeg4"
        self.vstream = self.container.add_stream(codec, rate=FPS)
        self.vstream.width, self.vstream.height, self.vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "libx264":
            self.vstream.options = {"preset": "veryfast", "crf": "20"}
        else:
            self.vstream.bit_rate = 2_000_000
        self.astream = self.container.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono")
        self.cutaways = cutaways
        self.cut_img = cutaway_image() if cutaways else None
        self.n_frames = 0
        self.n_samples = 0

    def frame(self, rgb: np.ndarray) -> None:
        t = self.n_frames / FPS
        if self.cut_img is not None and any(a <= t < b for a, b in self.cutaways):
            rgb = self.cut_img
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        vf.pts = self.n_frames
        self.container.mux(self.vstream.encode(vf))
        self.n_frames += 1

    def audio(self, samples: np.ndarray) -> None:
        for i in range(0, len(samples), 4000):
            chunk = np.ascontiguousarray(samples[i : i + 4000], dtype=np.int16).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = self.n_samples
            self.container.mux(self.astream.encode(af))
            self.n_samples += chunk.shape[1]

    def close(self) -> None:
        self.container.mux(self.vstream.encode(None))
        self.container.mux(self.astream.encode(None))
        self.container.close()


class ShiftedAudio:
    """A delay line feeding a :class:`Writer`: audio ``shift`` samples late (negative: early)."""

    def __init__(self, writer: Writer, shift: int) -> None:
        self.writer = writer
        self.skip = max(0, -shift)
        self.hold = max(0, shift)
        self.pending = np.zeros(self.hold, np.int16)
        self.written = 0

    def add(self, samples: np.ndarray) -> None:
        """Queue samples of the video timeline; write all but the last ``shift`` queued."""
        if self.skip:
            drop = min(self.skip, len(samples))
            samples, self.skip = samples[drop:], self.skip - drop
        buf = np.concatenate([self.pending, samples])
        cut = len(buf) - self.hold
        self.writer.audio(buf[:cut])
        self.written += cut
        self.pending = buf[cut:]

    def finish(self, total: int) -> None:
        """Pad with silence to ``total`` samples (the video's length); the held tail is dropped."""
        if self.written < total:
            self.writer.audio(np.zeros(total - self.written, np.int16))


def write_utterance(writer: Writer, audio: ShiftedAudio, clip: SourceClip, pause_frames: int) -> int:
    """Append one utterance and its pause; return the frames it took (speech + pause)."""
    samples = read_wav(clip.audio)
    n = 0
    last = None
    for rgb in clip_frames(clip.video):
        writer.frame(rgb)
        last, n = rgb, n + 1
    if last is None:
        raise ValueError(f"{clip.video}: no frames")
    need = max(n, -(-len(samples) // SAMPLES_PER_FRAME))
    for _ in range(need - n + pause_frames):  # hold the last frame (tail and pause)
        writer.frame(last)
    total = (need + pause_frames) * SAMPLES_PER_FRAME
    audio.add(np.concatenate([samples, np.zeros(total - len(samples), np.int16)]))
    return need + pause_frames


def generate(
    out: Path,
    clips: list[SourceClip],
    *,
    minutes: float,
    pause_s: float = 1.0,
    cutaways: list[tuple[float, float]] | None = None,
    audio_shift_ms: float = 0.0,
) -> dict:  # type: ignore[type-arg]
    """Write the long video and return (and write as ``<out>.json``) its ground truth."""
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(out, cutaways or [])
    audio = ShiftedAudio(writer, round(audio_shift_ms * SAMPLE_RATE / 1000))
    pause_frames = round(pause_s * FPS)
    utterances = []
    target = minutes * 60 * FPS
    i = 0
    while writer.n_frames < target:
        clip = clips[i % len(clips)]
        start = writer.n_frames / FPS
        used = write_utterance(writer, audio, clip, pause_frames)
        utterances.append(
            {
                "index": i,
                "clip": clip.id,
                "start": start,
                "end": start + (used - pause_frames) / FPS,
                "text": clip.text,
                "words": [
                    {"word": w["word"], "start": start + w["start"], "end": start + w["end"]}
                    for w in clip.words
                ],
            }
        )
        i += 1
    audio.finish(writer.n_frames * SAMPLES_PER_FRAME)
    writer.close()
    truth = {
        "video": str(out),
        "duration": writer.n_frames / FPS,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "pause_s": pause_s,
        "audio_shift_ms": audio_shift_ms,
        "cutaways": [list(c) for c in cutaways or []],
        "utterances": utterances,
    }
    Path(str(out) + ".json").write_text(json.dumps(truth, indent=1))
    return truth


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output video (.mov or .mp4)")
    p.add_argument("--minutes", type=float, default=6.0, help="target length (default 6)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between utterances")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="demo corpus folder")
    p.add_argument("--cutaway", action="append", default=[], metavar="START:DUR",
                   help="replace those seconds' frames by a face-less image (repeatable)")
    p.add_argument("--audio-shift-ms", type=float, default=0.0,
                   help="shift the audio against the video (positive: audio late)")
    args = p.parse_args(argv)
    truth = generate(
        args.out,
        load_clips(args.corpus),
        minutes=args.minutes,
        pause_s=args.pause,
        cutaways=[parse_cutaway(c) for c in args.cutaway],
        audio_shift_ms=args.audio_shift_ms,
    )
    print(f"{args.out}: {truth['duration']:.1f} s, {len(truth['utterances'])} utterances")


if __name__ == "__main__":
    main()
