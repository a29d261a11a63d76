"""Damaged media: packets the decoder rejects are skipped and counted, as ffmpeg does.

A stream is demuxed and each packet decoded on its own; a packet whose decoding
fails (corrupt payload, lost sync) is dropped and its duration recorded, so that
the caller can fill the gap (silence for audio, the previous frame held for video)
and keep audio and video in sync. A clean stream gives the same frames as decoding it
whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avsr.logging_utils import get_logger

log = get_logger(__name__)


@dataclass
class DamageStats:
    """Packets of one stream and those its decoder rejected."""

    packets: int = 0
    """Packets with data demuxed."""
    damaged: int = 0
    """Packets the decoder rejected (skipped)."""
    filled_s: float = 0.0
    """Duration filled in for the skipped packets (s)."""
    end: float | None = None
    """End time of the stream's last packet (s; video only), None when unknown."""

    @property
    def share(self) -> float:
        """Damaged packets / packets (0 when there are none)."""
        return self.damaged / self.packets if self.packets else 0.0


def packet_span(packet: Any) -> tuple[float | None, float | None]:
    """(start, duration) of a packet in seconds, None where the container does not say."""
    tb = packet.time_base
    if tb is None:
        return None, None
    start = float(packet.pts * tb) if packet.pts is not None else None
    dur = float(packet.duration * tb) if packet.duration else None
    return start, dur


def decode_packet(packet: Any, stats: DamageStats, what: str) -> list[Any] | None:
    """The frames of one packet, or None when the decoder rejects it (then counted in ``stats``).

    A flush packet (no data) is not counted, but a failure while flushing is (with
    frame threads a packet's error shows up later, possibly only at the flush).
    """
    import av

    if packet.size:
        stats.packets += 1
    try:
        return list(packet.decode())
    except av.FFmpegError as exc:
        stats.damaged += 1
        log.debug("damaged %s packet at %s s skipped: %s", what, packet_span(packet)[0], exc)
        return None


def damage_record(audio: DamageStats | None, video: DamageStats | None) -> dict[str, Any]:
    """Report fields of a clip's damage (zeros for a clean clip or a missing stream)."""
    a, v = audio or DamageStats(), video or DamageStats()
    return {
        "damaged_audio_packets": a.damaged,
        "audio_packets": a.packets,
        "audio_filled_s": round(a.filled_s, 4),
        "damaged_video_packets": v.damaged,
        "video_packets": v.packets,
        "video_filled_s": round(v.filled_s, 4),
        "damage_share": round(max(a.share, v.share), 4),
    }
