"""Long-form transcription: speech segments at pauses (silero-vad), a maximum segment length,
word times from the CTC best path, audio-only segments where the face is missing, subtitle
and JSON formats, and clear errors for unusable files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsr.audio import SAMPLE_RATE
from avsr.av_offset import shift_audio
from avsr.cli import main
from avsr.errors import UserError
from avsr.segmenting import (
    SegmentingConfig,
    frame_ranges,
    pad_and_merge,
    segment_modalities,
    speech_segments,
)
from avsr.timestamps import Word, collapse_path, ctc_words
from avsr.transcript import Segment, Transcript, to_srt, to_vtt
from preprocessing.synthetic import write_video
from tasks.longform import ChunkFrames, chunk_media, plan_chunks
from tasks.transcriber import Transcriber
from tests.helpers.longform_media import (
    LongformAudio,
    speech_with_pauses,
    write_empty_video,
    write_talking_video,
)

# ------------------------------------------------------------------ segmenting (no model)


def _fixed_detector(regions: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    return lambda audio, cfg: list(regions)


def test_pad_merge_and_max_length_split_at_the_quietest_point() -> None:
    sr = SAMPLE_RATE
    assert pad_and_merge([(sr, 2 * sr), (int(2.3 * sr), 3 * sr)], int(0.2 * sr), 4 * sr) == [
        (int(0.8 * sr), int(3.2 * sr))
    ]  # padded regions that overlap are merged
    assert pad_and_merge([(100, 200)], 500, 1000) == [(0, 700)]  # clipped to the audio
    audio = np.random.default_rng(0).normal(0, 0.3, 30 * sr).astype(np.float32)
    audio[int(9.5 * sr) : int(9.7 * sr)] = 0.0  # the only quiet spot
    cfg = SegmentingConfig(max_s=12.0, pad_s=0.0)
    segs = speech_segments(audio, cfg, detector=_fixed_detector([(0, 30 * sr)]))
    assert segs[0] == (0, segs[1][0]) and 9.5 * sr <= segs[0][1] <= 9.7 * sr
    assert all(e - s <= 12 * sr for s, e in segs) and segs[-1][1] == 30 * sr
    assert all(a[1] == b[0] for a, b in zip(segs, segs[1:]))  # nothing lost at the cuts
    with pytest.raises(UserError, match="maximum segment length"):
        speech_segments(audio, SegmentingConfig(max_s=0.0), detector=_fixed_detector([]))


def test_frames_modalities_and_audio_shift() -> None:
    assert frame_ranges([(0, 640), (1000, 2000), (5000, 99999)], 10) == [(0, 1), (1, 4), (7, 10)]
    face = np.array([True] * 10 + [False] * 10)
    assert segment_modalities([(0, 10), (5, 15), (8, 20)], face, "av") == ["av", "av", "a"]
    assert segment_modalities([(8, 20)], face, "v") == ["v"]
    assert segment_modalities([(8, 20)], None, "av") == ["av"]
    audio = np.arange(1, 33, dtype=np.float32)
    late = shift_audio(audio, 1000 / SAMPLE_RATE * 2)  # the audio lags by 2 samples: move earlier
    assert late[:3].tolist() == [3, 4, 5] and late[-2:].tolist() == [0, 0] and len(late) == 32
    early = shift_audio(audio, -1000 / SAMPLE_RATE * 3)
    assert early[:4].tolist() == [0, 0, 0, 1] and len(early) == 32


@pytest.fixture(scope="module")
def speech() -> LongformAudio:
    return speech_with_pauses()


def test_vad_cuts_at_pauses_and_keeps_the_max_length(speech: LongformAudio) -> None:
    segs = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in speech_segments(speech.audio)]
    assert len(segs) == len(speech.utterances)
    for (s, e), (u0, u1) in zip(segs, speech.utterances):
        assert s <= u0 + 0.4 and e >= u1 - 0.2  # the utterance is inside its padded segment
    assert all(a[1] <= b[0] for a, b in zip(segs, segs[1:]))
    short = speech_segments(speech.audio, SegmentingConfig(max_s=1.0))
    assert len(short) > len(segs) and all(e - s <= SAMPLE_RATE for s, e in short)
    assert speech_segments(np.zeros(3 * SAMPLE_RATE, np.float32)) == []


# ------------------------------------------------------------------ word times, formats


def test_ctc_words_from_a_best_path() -> None:
    pieces = {4: "\u2581he", 5: "llo", 6: "\u2581world", 7: "\u2581", 8: "x", 3: "<unk>"}
    path = [1, 4, 4, 1, 5, 1, 1, 6, 6, 6, 1, 7, 8, 3, 1]
    assert [t for t, _, _ in collapse_path(path, 1)] == [4, 5, 6, 7, 8, 3]
    words = ctc_words(
        path, blank_id=1, piece=pieces.__getitem__, frame_s=0.04, offset_s=10.0, skip=frozenset({3})
    )
    assert [w.word for w in words] == ["hello", "world", "x"]
    assert words[0].start == pytest.approx(10.04) and words[0].end == pytest.approx(10.2)
    assert words[1].start == pytest.approx(10.28) and words[2].end == pytest.approx(10.52)
    assert words[2].start == pytest.approx(10.48)  # at "x", not at the lone marker before it
    # a lone marker emitted on a segment's first frame does not pull the word's start there
    early = ctc_words([7, 1, 1, 1, 8, 8], blank_id=1, piece=pieces.__getitem__, frame_s=0.02)
    assert [(w.word, w.start, w.end) for w in early] == [("x", 0.08, pytest.approx(0.12))]
    assert ctc_words([7, 1, 7], blank_id=1, piece=pieces.__getitem__, frame_s=0.02) == []


def test_vtt_srt_and_json_are_well_formed() -> None:
    segs = [
        Segment(0.5, 2.25, "hello world", [Word("hello", 0.6, 1.0), Word("world", 1.2, 2.0)]),
        Segment(3.0, 4.0, ""),
        Segment(3661.0, 3662.5, "bye", modality="a", note="no face"),
    ]
    vtt = to_vtt(segs)
    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:02.250\nhello world\n")
    assert "01:01:01.000 --> 01:01:02.500\nbye [audio only: no face]\n" in vtt
    srt = to_srt(segs)
    assert srt.startswith("1\n00:00:00,500 --> 00:00:02,250\nhello world\n\n2\n01:01:01,000")
    tr = Transcript(video="v.mp4", segments=segs, modality="av", task="avsr", duration=3700.0)
    d = json.loads(json.dumps(tr.to_dict()))
    assert d["segments"][0]["words"][1] == {"word": "world", "start": 1.2, "end": 2.0}
    assert d["segments"][2]["modality"] == "a" and d["segments"][2]["note"] == "no face"
    assert d["segments"][0]["modality"] == "av" and d["face"] == "largest"


# ------------------------------------------------------------------ with a tiny model


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, speech: LongformAudio) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("longform")
    n = int(len(speech.audio) / SAMPLE_RATE * 25)
    u0, u1 = speech.utterances[2]
    talk = write_talking_video(root / "talk.mp4", speech.audio, n, no_face=(u0 - 0.4, u1 + 0.4))
    blank = np.full((20, 120, 160, 3), 110, np.uint8)
    write_video(root / "noface_noaudio.mp4", blank, 25, audio_rate=None)
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "zero_bytes.mp4").write_bytes(b"")
    return {
        "talk": talk,
        "empty": write_empty_video(root / "empty.mp4"),
        "noface_noaudio": root / "noface_noaudio.mp4",
        "garbage": root / "garbage.mp4",
        "zero_bytes": root / "zero_bytes.mp4",
    }


@pytest.fixture(scope="module")
def transcriber(tiny_finetuned_dir: Path) -> Transcriber:
    return Transcriber(tiny_finetuned_dir, device="cpu", batch_size=2)


def test_segments_words_and_a_no_face_stretch(
    transcriber: Transcriber, media: dict[str, Path], speech: LongformAudio
) -> None:
    tr = transcriber.transcribe_detailed(media["talk"])
    assert tr.segmentation == "vad" and tr.modality == "av" and tr.face == "largest"
    assert tr.word_timing is not None and "ms" in tr.word_timing
    assert len(tr.segments) == len(speech.utterances)
    assert [s.modality for s in tr.segments] == ["av", "av", "a", "av"]
    assert tr.segments[2].note == "no face" and not tr.segments[0].note
    for seg in tr.segments:
        assert seg.end - seg.start <= 20.0
        assert seg.words, "the tiny CTC model emits tokens"
        starts = [w.start for w in seg.words]
        assert starts == sorted(starts)
        assert all(seg.start - 1e-6 <= w.start < w.end <= seg.end + 1e-6 for w in seg.words)
    fixed = transcriber.transcribe_detailed(media["talk"], segment="fixed", window_s=5.0)
    assert fixed.segmentation == "fixed" and [s.start for s in fixed.segments] == [0.0, 5.0, 10.0]
    with pytest.raises(UserError, match="segment must be"):
        transcriber.transcribe_detailed(media["talk"], segment="words")


def test_chunks_are_cut_between_segments() -> None:
    bounds = [(0, 10), (20, 30), (40, 50), (100, 110)]
    assert plan_chunks(bounds, 35) == [(0, 2), (2, 3), (3, 4)]
    assert plan_chunks(bounds, 1000) == [(0, 4)]
    assert plan_chunks(bounds, 5) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # one segment at least
    assert plan_chunks([], 10) == []


def test_a_chunk_whose_video_ends_early_holds_its_last_roi_without_a_face() -> None:
    pts = np.zeros((2, 2))
    frames = ChunkFrames(start=2, end=6, track=[pts, pts, pts], evaluated=[True] * 3)
    rois = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)])
    audio = np.arange(8 * 640, dtype=np.float32)
    m = chunk_media(frames, rois, audio)
    assert m.video is not None and m.video.shape == (4, 4, 4)
    assert m.video[:, 0, 0].tolist() == [10, 20, 30, 30]  # held, not black
    assert m.face is not None and m.face.tolist() == [True, True, True, False]
    assert m.audio is not None and m.audio[0] == 2 * 640 and len(m.audio) == 4 * 640


def test_streaming_in_small_chunks_matches_the_whole_video_in_memory(
    tiny_finetuned_dir: Path, media: dict[str, Path]
) -> None:
    whole = Transcriber(tiny_finetuned_dir, device="cpu", stream=False)
    chunked = Transcriber(tiny_finetuned_dir, device="cpu", chunk_s=3.0)
    a, b = whole.transcribe_detailed(media["talk"]), chunked.transcribe_detailed(media["talk"])
    assert [(s.start, s.end, s.modality, s.note) for s in a.segments] == [
        (s.start, s.end, s.modality, s.note) for s in b.segments
    ]
    assert a.modality == b.modality == "av" and a.duration == pytest.approx(b.duration)
    late = chunked.transcribe_detailed(media["talk"], av_offset_ms=200.0)
    assert late.av_offset_ms == 200.0
    assert late.segments[0].start == pytest.approx(b.segments[0].start - 0.2, abs=0.1)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("noface_noaudio", "no face found .* no audio"),
        ("empty", "no video stream"),
        ("zero_bytes", "empty file"),
        ("garbage", "not a readable media file"),
    ],
)
def test_unusable_videos_are_errors_naming_the_file(
    transcriber: Transcriber, media: dict[str, Path], name: str, match: str
) -> None:
    with pytest.raises(UserError, match=match) as exc:
        transcriber.transcribe_detailed(media[name])
    assert str(media[name]) in str(exc.value)


def test_cli_many_videos_in_every_format(
    tiny_finetuned_dir: Path,
    media: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["transcribe", str(media["talk"]), "--model", str(tiny_finetuned_dir), "--device", "cpu"]
    assert main([*argv, "--format", "vtt"]) == 0
    assert capsys.readouterr().out.startswith("WEBVTT\n\n00:00:0")
    assert main([*argv, "--format", "json", "--out", str(tmp_path / "t.json")]) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["segmentation"] == "vad" and data["segments"][2]["note"] == "no face"
    assert all("words" in s for s in data["segments"])
    two = [*argv[:2], str(media["talk"]), *argv[2:]]
    assert main([*two, "--format", "srt", "--out", str(tmp_path / "subs")]) == 0
    assert (tmp_path / "subs" / "talk.srt").read_text().startswith("1\n00:00:0")
    assert main([*argv, "--format", "txt", "--no-timestamps", "--av-offset", "40"]) == 0
    assert capsys.readouterr().out.strip()
    assert main([*argv[:1], str(media["garbage"]), *argv[2:]]) == 2
    assert "garbage.mp4" in capsys.readouterr().err
