"""`avsr transcribe` on a video whose audio has a corrupt packet: decoded, with a warning."""

from __future__ import annotations

from pathlib import Path

from avsr.audio import SAMPLE_RATE
from preprocessing.synthetic import face_frames
from tasks.transcriber import preprocess_video
from tests.helpers.damaged_media import FPS, damage, write_av


def test_damaged_audio_is_decoded_with_a_warning(tmp_path: Path) -> None:
    frames, _ = face_frames(30)
    clean = write_av(tmp_path / "clean.avi", frames)
    talk = damage(clean, tmp_path / "talk.avi", [15])
    media = preprocess_video(talk)
    assert media.video is not None and len(media.video) == 30
    assert media.audio is not None and abs(len(media.audio) - 30 * SAMPLE_RATE // FPS) <= 640
    (warning,) = [w for w in media.warnings if "damaged" in w]
    assert warning.startswith(f"{talk}: 1 of ") and "audio packets are damaged" in warning
