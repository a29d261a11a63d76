"""Kill `avsr preprocess` midway, rerun: same outputs as an uninterrupted run, no partial files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avsr.io import read_manifest
from preprocessing.clip import PreprocessConfig, read_input
from preprocessing.pipeline import run
from preprocessing.synthetic import write_face_video
from preprocessing.video_io import read_gray_video
from tests.helpers import REPO


def _cli(inp: Path, out: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, AVSR_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "avsr.cli", "preprocess", "--input", str(inp), "--out", str(out)]
    cmd += ["--workers", str(workers), "--no-progress", "--lang", "en"]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _report_lines(out: Path) -> int:
    p = out / "report.jsonl"
    return len(p.read_text().splitlines()) if p.is_file() else 0


@pytest.mark.slow
def test_kill_midway_and_rerun(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(5):
        write_face_video(raw / f"clip{i}.mp4", 40, (25, 29.97, 30, 25, 30)[i])
    ref = tmp_path / "ref"
    run(read_input(raw, lang="en"), ref, PreprocessConfig(), show_progress=False)

    out = tmp_path / "out"
    proc = _cli(raw, out, workers=2)
    deadline = time.time() + 120
    while _report_lines(out) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes
    proc.wait()
    done_before = _report_lines(out)
    assert 1 <= done_before < 5
    # whatever was renamed into place is complete (temporary names are the only partial files)
    for p in (out / "video").glob("*.mp4"):
        frames, _ = read_gray_video(p)
        assert len(frames) > 0
    assert not (out / "test.tsv").exists()  # manifests come at the end

    proc = _cli(raw, out, workers=2)
    assert proc.wait(timeout=300) == 0
    assert not list(out.rglob("*.tmp"))
    for sub in ("video", "audio"):
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(
            p.name for p in (ref / sub).iterdir()
        )
    for p in (ref / "video").iterdir():
        a, _ = read_gray_video(p)
        b, _ = read_gray_video(out / "video" / p.name)
        np.testing.assert_array_equal(a, b)
    for p in (ref / "audio").iterdir():
        assert p.read_bytes() == (out / "audio" / p.name).read_bytes()
    for name in ("test.wrd", "test.lang", "test.en", "muavic/en/test.en"):
        assert (ref / name).read_text() == (out / name).read_text()
    m_ref, m_out = read_manifest(ref / "test.tsv"), read_manifest(out / "test.tsv")
    assert m_ref.rows == m_out.rows and len(m_out) == 5
    assert m_out.root == out.resolve()
    # the report has one final record per clip
    ids = [
        line.split('"id": "')[1].split('"')[0]
        for line in (out / "report.jsonl").read_text().splitlines()
    ]
    assert sorted(set(ids)) == [f"clip{i}" for i in range(5)]
