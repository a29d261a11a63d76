"""A/V offset estimation accuracy: shift a split's audio against its mouth ROI and estimate it back.

For each shift (default +200, -120 and 0 ms; positive = audio made late) the audio of every
test item is shifted with ``shift_audio`` (same length, silence padded) and
``estimate_av_offset`` is asked for the offset. Items are single clips (``--concat 1``) or
concatenations of ``N`` clips drawn at random without repetition (``--groups`` of them, seeded),
closer to a real video's length. Prints per item length and shift: items, share within one
frame (40 ms), median and 90th-percentile absolute error, mean confidence.

``--model MODEL`` instead measures what the correction buys in WER: the split's clips are
joined into one stream (one video), its audio shifted, the offset estimated once and
corrected, and every clip decoded on its own (``WindowDecoder.decode_media``, one fixed
window, AV) with in-sync, shifted and corrected audio.

``--calibrate`` instead estimates with no calibration on the unshifted clips and prints the
raw lag to store as ``avsr.av_offset.NATURAL_LAG_MS``.

Run: ``.venv/bin/python benchmarks/av_offset.py --data /work/demo_full/data --split test``
(``--data``: a preprocessed DATA folder with ``SPLIT.tsv``, ROI .mp4 and 16 kHz .wav).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avsr import metrics
from avsr.audio import read_audio
from avsr.av_offset import FRAME_MS, SAMPLES_PER_FRAME, estimate_av_offset, shift_audio
from avsr.data.media import read_video_gray
from avsr.inference import MediaInput, WindowDecoder

Clip = tuple[np.ndarray, np.ndarray]


def load_clips(data: Path, split: str) -> list[Clip]:
    """(audio, roi) per clip of ``data/split.tsv``, audio cut/padded to the ROI's length."""
    lines = (data / f"{split}.tsv").read_text().splitlines()
    root = Path(lines[0])
    clips: list[Clip] = []
    for line in lines[1:]:
        _, video, audio_path = line.split("\t")[:3]
        roi = read_video_gray(root / video)
        audio = read_audio(root / audio_path)
        n = len(roi) * SAMPLES_PER_FRAME
        clips.append((np.pad(audio, (0, max(0, n - len(audio))))[:n], roi))
    return clips


def make_items(clips: list[Clip], concat: int, groups: int, seed: int) -> list[Clip]:
    """The clips themselves (``concat`` 1), else ``groups`` random joins of ``concat`` clips."""
    if concat == 1:
        return clips
    rng = np.random.default_rng(seed)
    items: list[Clip] = []
    for _ in range(groups):
        pick = rng.choice(len(clips), size=concat, replace=False)
        audio = np.concatenate([clips[i][0] for i in pick])
        items.append((audio, np.concatenate([clips[i][1] for i in pick])))
    return items


def score(items: list[Clip], shift_ms: float, max_offset_ms: float) -> dict[str, float]:
    """Error statistics of the estimates when every item's audio is made ``shift_ms`` late."""
    errors, confs = [], []
    for audio, roi in items:
        est = estimate_av_offset(shift_audio(audio, -shift_ms), roi, max_offset_ms=max_offset_ms)
        errors.append(abs(est.offset_ms - shift_ms))
        confs.append(est.confidence)
    err = np.array(errors)
    return {
        "n": len(err),
        "within": float(np.mean(err <= FRAME_MS) * 100),
        "median": float(np.median(err)),
        "p90": float(np.percentile(err, 90)),
        "conf": float(np.mean(confs)),
    }


def calibrate(clips: list[Clip], max_offset_ms: float) -> None:
    """Print the raw (uncalibrated) lag on in-sync clips: per-clip median and mean curve's peak."""
    ests = [
        estimate_av_offset(a, r, max_offset_ms=max_offset_ms, calibration_ms=0.0) for a, r in clips
    ]
    lags = np.array([e.offset_ms for e in ests])
    mean_curve = np.nanmean(np.stack([e.curve for e in ests]), axis=0)
    peak = (int(np.nanargmax(mean_curve)) - len(mean_curve) // 2) * FRAME_MS
    print(f"clips {len(lags)}  raw lag median {np.median(lags):.1f} ms  mean {lags.mean():.1f} ms")
    print(f"mean curve peak at {peak:+.0f} ms; curve {np.round(mean_curve, 2).tolist()}")


def decode_clips(decoder: WindowDecoder, audios: list[np.ndarray], clips: list[Clip]) -> list[str]:
    """Text of each clip's ROI decoded with the matching audio (AV, one window per clip)."""
    media = [MediaInput(roi, audio, []) for audio, (_, roi) in zip(audios, clips)]
    return [decoder.decode_media(m, "clip", segment="fixed", window_s=60.0).text for m in media]


def shifted_audios(clips: list[Clip], shift_ms: float) -> tuple[list, list, float]:
    """(shifted, corrected) audio per clip, and the estimate's error (ms).

    The clips are joined into one stream (one video), its audio made ``shift_ms`` late,
    the offset estimated once over the whole stream and corrected, and the stream cut back
    at the clips' boundaries.
    """
    roi = np.concatenate([r for _, r in clips])
    late = shift_audio(np.concatenate([a for a, _ in clips]), -shift_ms)
    est = estimate_av_offset(late, roi)
    fixed = shift_audio(late, est.offset_ms)
    cuts = np.cumsum([len(a) for a, _ in clips])[:-1]
    return np.split(late, cuts), np.split(fixed, cuts), est.offset_ms - shift_ms


def wer_table(clips: list[Clip], refs: list[str], model: Path, shifts: list[float]) -> None:
    """Print the WER of in-sync, shifted and corrected audio for each shift."""
    decoder = WindowDecoder(model, device="cpu")
    base = metrics.wer(refs, decode_clips(decoder, [a for a, _ in clips], clips))
    seconds = sum(len(r) for _, r in clips) / 25
    print(f"in sync: WER {base:.1f}  ({len(clips)} clips, one stream of {seconds:.0f} s)")
    for shift in shifts:
        shifted, corrected, error = shifted_audios(clips, shift)
        w_shift = metrics.wer(refs, decode_clips(decoder, shifted, clips))
        w_fixed = metrics.wer(refs, decode_clips(decoder, corrected, clips))
        print(f"shift {shift:+.0f} ms: estimate error {error:+.1f} ms; "
              f"WER shifted {w_shift:.1f}, corrected {w_fixed:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--concat", default="1,3,6", help="clips per item, comma-separated")
    parser.add_argument("--groups", type=int, default=40, help="random concatenations per size")
    parser.add_argument("--shifts", default="200,-120,0", help="ms, positive = audio late")
    parser.add_argument("--max-offset-ms", type=float, default=400.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--model", type=Path, help="also measure WER with this model")
    args = parser.parse_args()
    clips = load_clips(args.data, args.split)
    if args.calibrate:
        calibrate(clips, args.max_offset_ms)
        return
    if args.model is not None:
        refs = (args.data / f"{args.split}.wrd").read_text().splitlines()
        shifts = [float(s) for s in args.shifts.split(",") if float(s) != 0.0]
        wer_table(clips, refs, args.model, shifts)
        return
    heads = ("clips/item", "len s", "shift", "items", "<=40ms", "med ms", "p90 ms", "conf")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (10, 6, 6, 5, 7, 7, 7, 5))))
    for concat in (int(c) for c in args.concat.split(",")):
        items = make_items(clips, concat, args.groups, args.seed)
        seconds = np.mean([len(r) for _, r in items]) / 25
        for shift in (float(s) for s in args.shifts.split(",")):
            s = score(items, shift, args.max_offset_ms)
            print(
                f"{concat:>10} {seconds:>6.1f} {shift:>+6.0f} {s['n']:>5} {s['within']:>6.0f}% "
                f"{s['median']:>7.1f} {s['p90']:>7.1f} {s['conf']:>5.2f}"
            )


if __name__ == "__main__":
    main()
