"""read_video_gray: the luma fast path gives exactly libswscale's gray conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsr import media
from avsr.data.media import read_video_gray, write_video_gray
from avsr.errors import UserError


def _reference(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(container.streams.video[0])])


def _write(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, **options: str) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.options = options
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _frames(t: int = 6, h: int = 30, w: int = 42) -> np.ndarray:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, None, :]
    noise = rng.normal(0, 30, size=(t, h, w))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)  # every luma value, odd width


def test_limited_range_h264_matches_swscale(tmp_path: Path) -> None:
    path = tmp_path / "roi.mp4"
    frames = _frames()
    write_video_gray(path, frames)  # what preprocessing writes: H.264 yuv420p, limited range
    got = read_video_gray(path)
    ref = _reference(path)
    assert got.shape == (6, 30, 42) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)
    assert got.min() == 0 and got.max() == 255  # limited-range luma stretched to full range
    assert np.abs(got.astype(int) - frames.astype(int)).max() <= 2  # crf 0 round trip


def test_full_range_and_other_formats(tmp_path: Path) -> None:
    frames = _frames(t=4, h=32, w=48)
    jpeg = tmp_path / "roi_mjpeg.avi"
    _write(jpeg, frames, "mjpeg", "yuvj420p")
    np.testing.assert_array_equal(read_video_gray(jpeg), _reference(jpeg))
    rgb = tmp_path / "roi_rgb.mkv"  # not planar YUV: converted frame by frame
    _write(rgb, frames, "ffv1", "bgr0")
    np.testing.assert_array_equal(read_video_gray(rgb), _reference(rgb))


def test_real_video_matches_swscale() -> None:
    path = media.media_path("carphone_pristine.mp4")
    np.testing.assert_array_equal(read_video_gray(path), _reference(path))


def test_unreadable_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="broken.mp4"):
        read_video_gray(bad)
