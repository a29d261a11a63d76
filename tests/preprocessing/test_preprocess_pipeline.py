"""`avsr preprocess` end to end on small synthetic videos: good clips, bad input, manifests, resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avsr.io import read_labels, read_manifest
from preprocessing.align import apply
from preprocessing.audio import write_wav
from preprocessing.clip import Clip, PreprocessConfig, read_input
from preprocessing.landmarks import LandmarkSource
from preprocessing.pipeline import run
from preprocessing.synthetic import face_frames, write_face_video, write_video
from preprocessing.video_io import read_gray_video

N = 30  # frames per synthetic clip (kept small: 2 shared CPU cores)


def _faststart_truncated(path: Path) -> None:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(40):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero_frames(path: Path) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        out.start_encoding()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("raw")
    info: dict[str, object] = {}
    info["good25"] = write_face_video(d / "good25.mp4", N, 25)
    info["good2997"] = write_face_video(d / "good2997.mkv", N, 29.97)
    info["good30"] = write_face_video(d / "good30.mov", N, 30)
    info["vfr"] = write_face_video(d / "vfr.mp4", N, 25, vfr=True)
    info["rotated"] = write_face_video(d / "rotated.mp4", N, 25, rotation=90)
    # webm (VP8) without an audio stream but with a same-named wav beside it
    frames, mouth = face_frames(N)
    dur = write_video(d / "webm_wav.webm", frames, 25, audio_rate=None, codec="libvpx")
    t = np.arange(int(dur * 44100)) / 44100
    sf.write(d / "webm_wav.wav", 0.3 * np.sin(2 * np.pi * 300 * t), 44100)
    info["webm_wav"] = mouth
    info["large"] = write_face_video(d / "large.mp4", 4, 25, 3000, 2000, face_scale=4.0)
    info["noaudio"] = write_face_video(d / "noaudio.mp4", N, 25, audio_rate=None)
    rng = np.random.default_rng(0)
    write_video(d / "noise.mp4", rng.integers(0, 256, (N, 240, 320, 3), dtype=np.uint8), 25)
    write_face_video(d / "short.mp4", 2, 25)
    _zero_frames(d / "zero.avi")
    write_face_video(d / "cut.mp4", N, 25)
    data = (d / "cut.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom lost
    _faststart_truncated(d / "cut_faststart.mp4")
    for name in (
        "zero",
        "cut_faststart",
    ):  # give them audio, so the video problem is what is reported
        write_wav(d / f"{name}.wav", np.zeros(16000, np.int16))
    (d / "notes.mp4").write_text("not a video, just text with a video extension\n" * 50)
    info["dir"] = d
    return info


EXPECTED = {
    "good25": ("ok", None),
    "good2997": ("ok", None),
    "good30": ("ok", None),
    "vfr": ("ok", None),
    "rotated": ("ok", None),
    "webm_wav": ("ok", None),
    "large": ("ok", None),
    "noaudio": ("skipped", "no_audio"),
    "noise": ("skipped", "no_face"),
    "short": ("skipped", "too_short"),
    "zero": ("skipped", "no_frames"),
    "cut": ("skipped", "unreadable"),
    "cut_faststart": ("skipped", "truncated"),
    "notes": ("skipped", "unreadable"),
}


@pytest.fixture(scope="module")
def result(
    inputs: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    out = tmp_path_factory.mktemp("data")
    d = inputs["dir"]
    assert isinstance(d, Path)
    transcripts = out.parent / "transcripts.tsv"
    transcripts.write_text(
        "id\ttext\ttranslation\ngood25\thola mundo\thello world\ngood30\tadios\t\n"
    )
    clips = read_input(d, split="valid", lang="es", transcripts=transcripts)
    cfg = PreprocessConfig(save_landmarks=True)
    summary = run(clips, out, cfg, show_progress=False)
    records = {
        json.loads(x)["id"]: json.loads(x) for x in (out / "report.jsonl").read_text().splitlines()
    }
    return {"out": out, "summary": summary, "records": records, "clips": clips, "cfg": cfg}


def test_every_clip_has_a_clear_status(result: dict) -> None:
    records = result["records"]
    assert set(records) == set(EXPECTED)
    for cid, (status, reason) in EXPECTED.items():
        rec = records[cid]
        assert (rec["status"], rec["reason"]) == (status, reason), rec
        if status == "skipped":
            assert rec["detail"], rec
    assert result["summary"]["statuses"] == {"ok": 7, "skipped": 7}
    # skipped clips leave no media behind
    out = result["out"]
    for cid, (status, _) in EXPECTED.items():
        assert (out / "video" / f"{cid}.mp4").exists() == (status == "ok")
    assert not list(out.rglob("*.tmp"))


def test_frame_counts_and_av_sync(result: dict, inputs: dict) -> None:
    out = result["out"]
    for cid in ("good25", "good2997", "good30", "vfr", "rotated", "webm_wav", "large"):
        rec = result["records"][cid]
        frames, rate = read_gray_video(out / rec["video"])
        assert rate == 25 and frames.shape[1:] == (96, 96)
        assert len(frames) == rec["n_video_frames"] == round(rec["duration_s"] * 25)
        assert rec["face_share"] == 1.0
        wav, sr = sf.read(out / rec["audio"], dtype="int16")
        info = sf.info(str(out / rec["audio"]))
        assert (sr, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert len(wav) == rec["n_audio_samples"]
        assert abs(len(wav) / 16000 - len(frames) / 25) <= 0.04, cid
    assert result["records"]["good2997"]["n_video_frames"] == round(N / 29.97 * 25)
    assert result["records"]["good30"]["n_video_frames"] == round(N / 30 * 25)
    assert result["records"]["rotated"]["rotation"] == 90
    assert result["records"]["webm_wav"]["audio_source"] == "file"


def test_mouth_is_at_roi_centre(result: dict, inputs: dict) -> None:
    """The known mouth position of the synthetic face, mapped by the frame->ROI matrices."""
    out = result["out"]
    for cid in ("good25", "good2997", "good30", "rotated", "large"):
        z = np.load(out / "landmarks" / f"{cid}.npz")
        mouth = inputs[cid].mouth[z["src_index"]]
        pos = np.array([apply(m, p) for m, p in zip(z["matrices"], mouth)])
        err = np.hypot(*(pos - 48.0).T)
        # tolerance in ROI pixels (of 96): face-mesh jitter plus the 13-frame smoothing on moving faces
        assert err.mean() < 2.5 and err.max() < 6.0, (cid, err.mean(), err.max())


def test_rotated_clip_gives_the_upright_roi(result: dict) -> None:
    out = result["out"]
    a, _ = read_gray_video(out / "video" / "good25.mp4")
    b, _ = read_gray_video(out / "video" / "rotated.mp4")
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 6


def test_manifests(result: dict) -> None:
    out = result["out"]
    m = read_manifest(out / "valid.tsv")
    assert m.root == out.resolve()
    ids = [r.id for r in m.rows]
    assert ids == sorted(["good25", "good2997", "good30", "vfr", "rotated", "webm_wav", "large"])
    for r in m.rows:
        assert m.resolve(r.video).is_file() and m.resolve(r.audio).is_file()
        assert r.n_video_frames == result["records"][r.id]["n_video_frames"]
    wrd = read_labels(out / "valid.wrd", expected=len(m))
    assert wrd[ids.index("good25")] == "hola mundo" and wrd[ids.index("vfr")] == ""
    assert read_labels(out / "valid.lang", expected=len(m)) == ["es"] * len(m)
    en = read_labels(out / "valid.en", expected=len(m))
    assert en[ids.index("good25")] == "hello world"
    es = read_manifest(out / "muavic" / "es" / "valid.tsv")
    assert [r.id for r in es.rows] == ids
    assert read_labels(out / "muavic" / "es" / "valid.es", expected=len(es)) == wrd
    tr = read_manifest(out / "muavic" / "es" / "en" / "valid.tsv")
    assert [r.id for r in tr.rows] == ["good25"]
    assert read_labels(out / "muavic" / "es" / "en" / "valid.en") == ["hello world"]
    assert read_labels(out / "muavic" / "es" / "en" / "valid.es") == ["hola mundo"]


def test_rerun_skips_finished_clips(result: dict) -> None:
    out = result["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "video").iterdir()}
    manifest = (out / "valid.tsv").read_text()
    summary = run(result["clips"], out, result["cfg"], show_progress=False)
    assert summary["processed_now"] == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "video").iterdir()} == before
    assert (out / "valid.tsv").read_text() == manifest


def test_keep_video_only(result: dict, inputs: dict, tmp_path: Path) -> None:
    d = inputs["dir"]
    clips = [c for c in result["clips"] if c.id in ("noaudio", "good25")]
    cfg = PreprocessConfig(keep_video_only=True)
    run(clips, tmp_path, cfg, show_progress=False)
    rec = json.loads((tmp_path / "report.jsonl").read_text().splitlines()[-1])
    recs = {
        json.loads(x)["id"]: json.loads(x)
        for x in (tmp_path / "report.jsonl").read_text().splitlines()
    }
    assert recs["noaudio"]["status"] == "ok" and recs["noaudio"]["video_only"] and rec
    assert not (tmp_path / "audio" / "noaudio.wav").exists()
    assert [r.id for r in read_manifest(tmp_path / "valid.tsv").rows] == ["good25"]
    vo = read_manifest(tmp_path / "valid.video_only.tsv")
    assert [(r.id, r.audio, r.n_audio_samples) for r in vo.rows] == [("noaudio", "", 0)]
    assert d.is_dir()


def test_second_decoding_and_precomputed_landmarks_match(result: dict, tmp_path: Path) -> None:
    """Over the memory budget the frames are decoded again; precomputed landmarks give the same ROI."""
    out = result["out"]
    clip = next(c for c in result["clips"] if c.id == "good25")
    ref, _ = read_gray_video(out / "video" / "good25.mp4")
    run([clip], tmp_path / "a", PreprocessConfig(memory_budget_mb=0), show_progress=False)
    again, _ = read_gray_video(tmp_path / "a" / "video" / "good25.mp4")
    np.testing.assert_array_equal(again, ref)
    lm = tmp_path / "lm"
    lm.mkdir()
    z = np.load(out / "landmarks" / "good25.npz")
    assert (
        z["src_index"] == np.arange(len(z["src_index"]))
    ).all()  # 25 fps: one row per source frame
    np.save(lm / "good25.npy", z["landmarks"].astype(np.float64))
    run([clip], tmp_path / "b", PreprocessConfig(landmarks_dir=str(lm)), show_progress=False)
    pre, _ = read_gray_video(tmp_path / "b" / "video" / "good25.mp4")
    assert np.abs(pre.astype(int) - ref.astype(int)).mean() < 1.0
    # a clip without a landmarks file (by id or by video name) is skipped with its reason
    shutil.copy(clip.video, tmp_path / "other.mp4")
    other = dataclasses.replace(clip, id="other", video=str(tmp_path / "other.mp4"))
    run([other], tmp_path / "c", PreprocessConfig(landmarks_dir=str(lm)), show_progress=False)
    rec = json.loads((tmp_path / "c" / "report.jsonl").read_text())
    assert (rec["status"], rec["reason"]) == ("skipped", "no_landmarks")


def test_cli_with_clips_tsv(inputs: dict, tmp_path: Path) -> None:
    from avsr.cli import main

    d = inputs["dir"]
    corpus = tmp_path / "corpus"
    (corpus / "raw" / "test").mkdir(parents=True)
    shutil.copy(d / "good25.mp4", corpus / "raw" / "test" / "a1.mp4")
    shutil.copy(d / "notes.mp4", corpus / "raw" / "test" / "b2.mp4")
    write_wav(corpus / "raw" / "test" / "a1.wav", np.zeros(int(N / 25 * 16000), np.int16))
    write_wav(corpus / "raw" / "test" / "b2.wav", np.zeros(16000, np.int16))
    (corpus / "clips.tsv").write_text(
        "id\tvideo\taudio\tsplit\tlang\tspeaker\ttext\ttranslation\n"
        "a1\traw/test/a1.mp4\traw/test/a1.wav\ttest\tfr\tspk1\tbonjour\thello\n"
        "b2\traw/test/b2.mp4\traw/test/b2.wav\ttest\tfr\tspk2\tsalut\thi\n"
    )
    rc = main(
        [
            "preprocess",
            "--input",
            str(corpus / "clips.tsv"),
            "--out",
            str(tmp_path / "data"),
            "--no-progress",
        ]
    )
    assert rc == 0
    m = read_manifest(tmp_path / "data" / "test.tsv")
    assert [r.id for r in m.rows] == ["a1"] and m.rows[0].n_audio_samples == int(N / 25 * 16000)
    assert read_labels(tmp_path / "data" / "muavic" / "fr" / "en" / "test.en") == ["hello"]
    assert (tmp_path / "data" / "preprocess.yaml").is_file()
    assert (
        main(["preprocess", "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    )


def test_read_input_variants(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.mp4", "sub/a.MOV", "c.txt", ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"x")
    clips = read_input(tmp_path, split="train", lang="en")
    assert [c.id for c in clips] == ["b", "sub_a"] and all(c.split == "train" for c in clips)
    lst = tmp_path / "list.txt"
    lst.write_text("# videos\nb.mp4\nsub/a.MOV\n")
    assert [Path(c.video).name for c in read_input(lst)] == ["b.mp4", "a.MOV"]
    lst.write_text("b.mp4\nsub/b.mp4\n")
    from avsr.errors import UserError

    with pytest.raises(UserError, match="duplicate"):
        read_input(lst)
    assert isinstance(read_input(tmp_path / "b.mp4")[0], Clip)


def test_landmark_stride(result: dict, tmp_path: Path) -> None:
    """Default: face mesh on every 2nd frame, the rest interpolated; the ROI barely differs
    from face mesh on every frame (stride 1)."""
    out = result["out"]
    clip = next(c for c in result["clips"] if c.id == "good2997")
    ref, _ = read_gray_video(out / "video" / "good2997.mp4")
    default = next(json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()
                   if json.loads(line)["id"] == "good2997")
    assert default["landmark_frames"] == (default["n_video_frames"] + 1) // 2
    run([clip], tmp_path, PreprocessConfig(landmark_stride=1), show_progress=False)
    rec = json.loads((tmp_path / "report.jsonl").read_text())
    n = rec["n_video_frames"]
    assert rec["status"] == "ok" and rec["landmark_frames"] == n == default["n_video_frames"]
    assert rec["face_share"] == 1.0 and rec["interpolated_frames"] == 0
    got, _ = read_gray_video(tmp_path / "video" / "good2997.mp4")
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 4


def _broken_source(clip: Clip, cfg: PreprocessConfig) -> LandmarkSource:
    raise RuntimeError("detector crashed")


def test_unexpected_errors_are_recorded_and_retried(result: dict, tmp_path: Path) -> None:
    clip = next(c for c in result["clips"] if c.id == "good25")
    summary = run(
        [clip], tmp_path, PreprocessConfig(), source_factory=_broken_source, show_progress=False
    )
    assert summary["statuses"] == {"failed": 1}
    rec = json.loads((tmp_path / "report.jsonl").read_text())
    assert rec["reason"] == "error" and "detector crashed" in rec["detail"]
    assert not (tmp_path / "valid.tsv").exists() and not list(tmp_path.rglob("*.tmp"))
    summary = run([clip], tmp_path, PreprocessConfig(), show_progress=False)
    assert summary["processed_now"] == 1 and summary["statuses"] == {"ok": 1}
    assert [r.id for r in read_manifest(tmp_path / "valid.tsv").rows] == ["good25"]
    # a torn last line (killed while writing the report) is dropped, the clip stays done
    with open(tmp_path / "report.jsonl", "a") as fh:
        fh.write('{"id": "good25", "sta')
    summary = run([clip], tmp_path, PreprocessConfig(), show_progress=False)
    assert summary["processed_now"] == 0
    assert all(json.loads(x) for x in (tmp_path / "report.jsonl").read_text().splitlines())
