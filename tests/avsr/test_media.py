"""The real test media (fetched by scripts/setup.sh) decode and carry what they should."""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr import media


def test_carphone_decodes() -> None:
    import av

    for name in ("carphone_pristine.mp4", "carphone_distorted.mp4"):
        path = media.media_path(name)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert not container.streams.audio
            rate = Fraction(stream.average_rate)
            assert abs(float(rate) - 30000 / 1001) < 0.05, rate
            frames = []
            for i, frame in enumerate(container.decode(stream)):
                frames.append(frame.to_ndarray(format="rgb24"))
                if i >= 9:
                    break
        assert len(frames) == 10
        assert frames[0].shape == (144, 176, 3)
        # a real video: consecutive frames differ, and frames are not flat
        assert float(np.std(frames[0])) > 10
        assert any(not np.array_equal(frames[0], f) for f in frames[1:])


def test_librivox_clip_and_transcript() -> None:
    clips = media.librivox_clips()
    assert len(clips) >= 5
    wav, text = next(c for c in clips if c[0].stem.endswith("0880"))
    audio, sr = sf.read(wav)
    assert sr == 16000 and audio.ndim == 1
    assert 2.0 < len(audio) / sr < 6.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert text == "he was not an ill disposed young man"


def test_sonic_pi_samples() -> None:
    loops = media.sonic_pi_samples("loop_", fetch=True)
    ambi = media.sonic_pi_samples("ambi_")
    assert len(loops) >= 5 and len(ambi) >= 5
    audio, sr = sf.read(media.media_path("sonic-pi/loop_amen.flac"))
    assert sr in (44100, 48000) and len(audio) > sr
    assert float(np.abs(audio).max()) > 0.1


def test_unknown_item_is_a_clear_error() -> None:
    with pytest.raises(media.MediaError, match="unknown media item"):
        media.media_path("nope.mp4")


def test_find_media_in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLAVSR_MEDIA_DIR", str(tmp_path))
    assert media.find_media("carphone_pristine.mp4") is None
    assert media.sonic_pi_samples("loop_") == []


def test_fetch_failure_exits_nonzero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XLAVSR_MEDIA_DIR", str(tmp_path))

    def broken(root: Path) -> None:
        raise media.MediaError("fetching carphone videos: simulated failure")

    monkeypatch.setattr(media, "_fetch_carphone", broken)
    rc = media.main(argparse.Namespace(verb="fetch", quiet=True))
    assert rc == 1
    assert "simulated failure" in capsys.readouterr().err


def test_module_cli_fetch_is_fast_when_cached() -> None:
    res = subprocess.run([sys.executable, "-m", "avsr.media", "fetch", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    res = subprocess.run([sys.executable, "-m", "avsr.media", "list"], capture_output=True, text=True)
    assert res.returncode == 0 and "missing" not in res.stdout
