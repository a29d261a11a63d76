"""Damaged media: corrupt packets are skipped and filled, A/V stay in sync, damage is reported;
the source rate and channels are recorded and resampling is noticed.

Clips are AVI (MPEG-4 video, AC3 audio) encoded here; damage overwrites the payload of
some packets in the file (byte offsets from demuxing with PyAV).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avsr.audio import SAMPLE_RATE, conversion_counts, read_audio
from preprocessing.audio import decode_audio
from preprocessing.clip import Clip, PreprocessConfig
from preprocessing.landmarks import LandmarkScheme, LandmarkSource
from preprocessing.pipeline import run
from tests.helpers.damaged_media import FPS, count_packets, damage, moving_gray, write_av

SECONDS = 2.0
W, H = 128, 96
FRAME_SAMPLES = SAMPLE_RATE // FPS  # 640: one video frame of 16 kHz audio

_SCHEME = LandmarkScheme(
    name="eyes_mouth",
    n_points=3,
    stable=(0, 1),
    reference=np.array([[83.0, 112.0], [173.0, 112.0]]),
    mouth=(2,),
)


class _FixedFace(LandmarkSource):
    """The same three points (eyes, mouth) in every frame."""

    scheme = _SCHEME
    needs_image = False

    def detect(self, rgb: np.ndarray, frame_index: int | None = None) -> np.ndarray | None:
        return np.array([[44.0, 40.0], [84.0, 40.0], [64.0, 70.0]])


def _fixed_face(clip: Clip, cfg: PreprocessConfig) -> LandmarkSource:
    return _FixedFace()


def _write_avi(path: Path, acodec: str = "ac3", rate: int = 48000, layout: str = "stereo") -> Path:
    """SECONDS of brightening gray video and a 440 Hz tone (AVI, or as the suffix says)."""
    return write_av(path, moving_gray(int(SECONDS * FPS), W, H), acodec, rate, layout)


def _run(videos: dict[str, Path], out: Path, cfg: PreprocessConfig) -> dict[str, dict]:
    clips = [Clip(id=k, video=str(v), split="test", lang="en") for k, v in videos.items()]
    run(clips, out, cfg, source_factory=_fixed_face, show_progress=False)
    lines = (out / "report.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    raw = tmp_path_factory.mktemp("raw")
    clean = _write_avi(raw / "clean.avi")
    n_packets = count_packets(clean)
    damage(clean, raw / "damaged.avi", [12, 40])
    damage(clean, raw / "wrecked.avi", list(range(2, n_packets - 2, 4)))
    damage(clean, raw / "frames.avi", [5, int(SECONDS * FPS) - 1], kind="video")
    videos = {k: raw / f"{k}.avi" for k in ("clean", "damaged", "wrecked", "frames")}
    out = tmp_path_factory.mktemp("out")
    records = _run(videos, out, PreprocessConfig(workers=1))
    return {"out": out, "records": records, "n_packets": n_packets, "raw": raw}


def test_decoder_rejects_the_damaged_packets(processed: dict) -> None:
    """The fixture really damages packets: PyAV's decoder raises on them."""
    errors = 0
    with av.open(str(processed["raw"] / "damaged.avi")) as c:
        for packet in c.demux(c.streams.audio[0]):
            try:
                packet.decode()
            except av.FFmpegError:
                errors += 1
    assert errors == 2


def test_damaged_clip_keeps_frames_and_sync(processed: dict) -> None:
    recs, out = processed["records"], processed["out"]
    clean, damaged = recs["clean"], recs["damaged"]
    assert clean["status"] == "ok" and damaged["status"] == "ok", damaged
    assert damaged["n_video_frames"] == clean["n_video_frames"] == int(SECONDS * FPS)
    assert abs(damaged["n_audio_samples"] - clean["n_audio_samples"]) <= FRAME_SAMPLES
    assert abs(damaged["audio_raw_duration_s"] - clean["audio_raw_duration_s"]) <= 1 / FPS
    a = read_audio(out / clean["audio"])
    b = read_audio(out / damaged["audio"])
    n = min(len(a), len(b))
    # after the last gap the audio lines up with the clean clip's (same samples at the same times)
    tail = slice(n - SAMPLE_RATE // 4, n - FRAME_SAMPLES)
    assert np.abs(a[tail] - b[tail]).max() < 1e-3


def test_damage_is_counted_in_the_report(processed: dict) -> None:
    clean, damaged = processed["records"]["clean"], processed["records"]["damaged"]
    assert clean["damaged_audio_packets"] == 0 and clean["audio_filled_s"] == 0
    assert clean["damage_share"] == 0
    assert damaged["damaged_audio_packets"] == 2
    assert damaged["damaged_video_packets"] == 0
    # each garbage packet also breaks the one after it (the AC3 parser loses sync): 32-64 ms each
    assert 2 * 0.032 - 1e-6 <= damaged["audio_filled_s"] <= 4 * 0.032 + 1e-6
    assert 0 < damaged["damage_share"] <= 0.05
    assert damaged["source_sample_rate"] == 48000 and damaged["source_channels"] == 2


def test_damaged_video_packets_hold_the_previous_frame(processed: dict) -> None:
    """A lost frame in the middle and the last one: the clip keeps its length, audio included."""
    clean, frames = processed["records"]["clean"], processed["records"]["frames"]
    assert frames["status"] == "ok", frames
    assert frames["damaged_video_packets"] == 2 and frames["damaged_audio_packets"] == 0
    assert frames["src_frames"] == clean["src_frames"] - 2
    assert frames["n_video_frames"] == clean["n_video_frames"]
    assert frames["n_audio_samples"] == clean["n_audio_samples"]
    assert frames["video_filled_s"] == pytest.approx(2 / FPS)


def test_heavily_damaged_clip_is_skipped_naming_the_setting(processed: dict) -> None:
    wrecked = processed["records"]["wrecked"]
    assert wrecked["status"] == "skipped"
    assert wrecked["reason"] == "damaged"
    assert "max_damage_share=0.05" in wrecked["detail"]
    assert wrecked["damaged_audio_packets"] > 0.05 * wrecked["audio_packets"]


def test_damage_at_the_start_and_end_is_filled(tmp_path: Path) -> None:
    clean = _write_avi(tmp_path / "clean.avi")
    n_packets = count_packets(clean)
    damage(clean, tmp_path / "ends.avi", [0, n_packets - 1])
    a, b = decode_audio(clean), decode_audio(tmp_path / "ends.avi")
    assert b.damage.damaged == 2
    assert abs(len(a.samples) - len(b.samples)) <= FRAME_SAMPLES
    assert abs(a.start - b.start) <= 1 / FPS


def test_source_rate_is_recorded_and_the_resampling_noticed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = _write_avi(tmp_path / "cd.mkv", acodec="mp2", rate=44100, layout="stereo")
    with caplog.at_level(logging.INFO, logger="avsr.audio"):
        rec = _run({"cd": video}, tmp_path / "out", PreprocessConfig())["cd"]
        decode_audio(video)  # the same file again: no second notice
    assert rec["status"] == "ok", rec
    assert rec["source_sample_rate"] == 44100 and rec["source_channels"] == 2
    notices = [r for r in caplog.records if "44100 Hz" in r.getMessage()]
    assert len(notices) == 1
    assert (
        str(video) in notices[0].getMessage() and "resampled to 16000 Hz" in notices[0].getMessage()
    )


def test_core_reader_notices_resampling_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The wav reader of the data loader, the noise bank and transcription says what it resamples."""
    sf.write(tmp_path / "n.wav", np.zeros((2205, 2), np.float32), 22050)
    sf.write(tmp_path / "ok.wav", np.zeros(1600, np.float32), SAMPLE_RATE)
    before = conversion_counts().get((22050, 2), 0)
    with caplog.at_level(logging.INFO, logger="avsr.audio"):
        for _ in range(3):
            assert len(read_audio(tmp_path / "n.wav")) == 1600
        read_audio(tmp_path / "ok.wav")
    notices = [r.getMessage() for r in caplog.records]
    assert notices == [f"{tmp_path / 'n.wav'}: 22050 Hz, 2 channel(s): resampled to 16000 Hz mono"]
    assert conversion_counts()[(22050, 2)] == before + 1
