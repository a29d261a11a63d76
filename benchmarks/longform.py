"""Long-form transcription benchmark: own videos of any length against per-clip decoding.

Generates (``benchmarks/longform_video.py``, into ``--work``, reused when present) long
videos of the demo corpus's English test utterances with 1 s pauses and measures
``tasks.transcriber.Transcriber`` on them through its public API only:

- per-clip WER: every source clip transcribed alone (``avsr.metrics`` normalisation);
- long-form WER: the long video (``--minutes``, default 6, and ``--long 30`` last),
  whole hypothesis against the concatenated references, and per utterance when the
  output has times (hypothesis words, or segments, assigned to the utterance they fall in);
- peak memory (``ru_maxrss`` of a fresh subprocess per transcription), wall time and
  speed (video seconds per wall second, model loading excluded), and the CPU time of the
  transcription (all threads of the process: less sensitive to other jobs' load);
- word timestamps (when the output has words with times): the share of correctly
  recognised words (``difflib`` alignment per utterance) whose start (and end) is within
  0.2 s of the ground truth, and the median signed errors;
- cutaway: a video with a face-less stretch; which seconds the output marks audio-only;
- A/V offset: videos with the audio shifted by +200 and -120 ms, run with
  ``av_offset_ms="auto"`` (or ``av_offset``) when the API takes it (a rejected "auto" is
  retried without): the estimate the transcript reports (``av_offset_ms``, positive = audio
  late) and the WER beside the unshifted 1-minute video.

Prints one table of the acceptance numbers with pass/fail ("n/a (not supported yet)"
where the transcriber lacks the feature) and writes all numbers to ``--json``.

Run: ``.venv/bin/python benchmarks/longform.py [--model DIR] [--long 30 --long-if-under 180]
[--json out.json]`` (each transcription in a fresh subprocess: peak memory is ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avsr.metrics import error_counts, wer_words

sys.path.insert(0, str(Path(__file__).resolve().parent))
from longform_video import DEFAULT_CORPUS, generate, load_clips  # noqa: E402

DEFAULT_MODEL = Path("/work/demo_full/finetune_av/model")
TOLERANCE_S = 0.2
CUTAWAY = (20.0, 8.0)
SHIFTS_MS = (200.0, -120.0)
NA = "n/a (not supported yet)"
OFFSET_KEYS = ("av_offset", "av_offset_ms")


# --------------------------------------------------------------- worker (subprocess)


def _plain(obj: Any) -> Any:
    """A JSON-able copy of a transcript, segment or word (dataclass, to_dict, or attrs)."""
    if hasattr(obj, "to_dict"):
        return _plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def _transcript_dict(tr: Any) -> dict[str, Any]:
    """The transcript as a dict, with its segments' own fields kept (words, modality, ...)."""
    d = _plain(tr)
    d = d if isinstance(d, dict) else {"value": d}
    segs = getattr(tr, "segments", None)
    if segs is not None:
        d["segments"] = [_plain(s) for s in segs]
    if "text" not in d and hasattr(tr, "text"):
        d["text"] = tr.text
    return d


def worker(model: str, videos: list[str], request: dict[str, Any], out: str) -> None:
    """Load the model, transcribe ``videos`` one by one, write transcripts and costs to ``out``."""
    from tasks.transcriber import Transcriber

    t0 = time.perf_counter()
    tr = Transcriber(model)
    load_s = time.perf_counter() - t0
    accepted = inspect.signature(tr.transcribe_detailed).parameters
    kwargs = {k: v for k, v in request.items() if k in accepted}
    results = [_transcribe_one(tr, video, kwargs) for video in videos]
    doc = {
        "load_s": load_s,
        "results": results,
        "kwargs": dict(kwargs),
        "ignored": sorted(set(request) - set(kwargs)),
        "accepts": sorted(accepted),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "vmhwm_mb": _vmhwm_mb(),
    }
    Path(out).write_text(json.dumps(doc, indent=1))


def _transcribe_one(tr: Any, video: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One transcript, its wall time and this process's CPU time (all threads); a rejected
    ``av_offset*="auto"`` is retried without."""
    t, cpu = time.perf_counter(), time.process_time()
    res: dict[str, Any] = {}
    try:
        res["transcript"] = _transcript_dict(tr.transcribe_detailed(video, **kwargs))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        rest = {k: v for k, v in kwargs.items() if k not in OFFSET_KEYS}
        if rest == kwargs:
            res["error"] = f"{type(exc).__name__}: {exc}"
        else:
            res = _transcribe_one(tr, video, rest)
            res["offset_rejected"] = f"{type(exc).__name__}: {exc}"
            return res
    res.update(video=video, wall_s=time.perf_counter() - t, cpu_s=time.process_time() - cpu,
               kwargs=kwargs)
    return res


def _vmhwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_worker(
    model: Path, videos: list[Path], request: dict[str, Any], timeout: float | None = None
) -> dict[str, Any]:
    """:func:`worker` in a fresh Python process (so its peak memory is this run's alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "_worker", str(model), str(out), json.dumps(request)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [*cmd, *map(str, videos)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:g} s", "results": []}
        if proc.returncode or not out.exists():
            return {"error": (proc.stderr or proc.stdout)[-2000:], "results": []}
        doc = json.loads(out.read_text())
        doc["process_s"] = time.perf_counter() - t0
        return doc


# --------------------------------------------------------------- reading transcripts


def _field(d: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return None


def hyp_text(tr: dict[str, Any]) -> str:
    segs = tr.get("segments") or []
    if segs:
        return " ".join(str(_field(s, "text") or "") for s in segs)
    return str(tr.get("text") or "")


def hyp_words(tr: dict[str, Any]) -> list[dict[str, float | str]] | None:
    """Words with times (``word``/``text``, ``start``) of all segments, None if there are none."""
    words = []
    for s in tr.get("segments") or []:
        for w in _field(s, "words") or []:
            if isinstance(w, dict):
                text, start, end = _field(w, "word", "text"), _field(w, "start"), _field(w, "end")
            elif isinstance(w, list | tuple) and len(w) >= 2:
                text, start, end = w[0], w[1], w[2] if len(w) > 2 else w[1]
            else:
                continue
            if text is not None and start is not None:
                words.append({"word": str(text), "start": float(start), "end": float(end or start)})
    return words or None


def is_audio_only(seg: dict[str, Any]) -> bool:
    if seg.get("audio_only") is True:
        return True
    mod = str(_field(seg, "modality", "input") or "").lower()
    return mod in {"a", "audio", "audio-only", "audio_only"}


def segments_have_flag(tr: dict[str, Any]) -> bool:
    segs = tr.get("segments") or []
    return any("audio_only" in s or "modality" in s or "input" in s for s in segs)


def offset_estimate_ms(tr: dict[str, Any]) -> float | None:
    """The A/V offset the transcript reports (ms), looked for under common names (an
    ``*offset*estimate*`` field first, then the applied ``av_offset_ms``)."""
    for key, v in tr.items():
        if "offset" in key and "estimate" in key and isinstance(v, int | float | dict):
            found = offset_estimate_ms({"av_offset" + ("_ms" if key.endswith("_ms") else ""): v})
            if found is not None:
                return found
    for key in ("av_offset_ms", "offset_ms", "estimated_offset_ms"):
        if isinstance(tr.get(key), int | float):
            return float(tr[key])
    for key in ("av_offset", "offset", "av_offset_s"):
        v = tr.get(key)
        if isinstance(v, dict):
            inner = offset_estimate_ms(v)
            if inner is not None:
                return inner
            v = _field(v, "ms", "value", "estimate")
        if isinstance(v, int | float):
            return float(v) * 1000.0 if key.endswith("_s") or abs(v) < 2 else float(v)
    return None


# --------------------------------------------------------------- scoring


def assign(words: list[dict[str, Any]], utts: list[dict[str, Any]]) -> list[list[str]]:
    """Hypothesis words (or segments) grouped by the utterance their midpoint falls nearest."""
    groups: list[list[str]] = [[] for _ in utts]
    for w in words:
        mid = 0.5 * (float(w["start"]) + float(w["end"]))
        best = min(range(len(utts)), key=lambda i: _distance(mid, utts[i]))
        groups[best].append(str(w["word"]))
    return groups


def _distance(t: float, u: dict[str, Any]) -> float:
    return 0.0 if u["start"] <= t <= u["end"] else min(abs(t - u["start"]), abs(t - u["end"]))


def _spans(seg: dict[str, Any], utts: list[dict[str, Any]]) -> int:
    """How many utterances a segment overlaps."""
    return sum(min(seg["end"], u["end"]) > max(seg["start"], u["start"]) for u in utts)


def per_utterance_wer(tr: dict[str, Any], utts: list[dict[str, Any]]) -> float | None:
    """WER with hypothesis words (or segments) assigned to utterances by time."""
    words = hyp_words(tr)
    if words is None:  # segments alone: only when none spans two utterances
        segs = tr.get("segments") or []
        if not segs or any(_field(s, "start") is None or _spans(s, utts) > 1 for s in segs):
            return None
        words = [{"word": _field(s, "text") or "", "start": s["start"], "end": s["end"]} for s in segs]
    groups = assign(words, utts)
    return error_counts([u["text"] for u in utts], [" ".join(g) for g in groups]).wer


def timestamp_share(tr: dict[str, Any], utts: list[dict[str, Any]]) -> dict[str, float] | None:
    """Of the correctly recognised words (``difflib`` matches per utterance): their count, the
    shares (%) whose start and whose end are within 0.2 s of the ground truth, and the median
    signed start and end errors (s; positive: the output is late). None without word times."""
    words = hyp_words(tr)
    if words is None:
        return None
    by_utt: list[list[dict[str, Any]]] = [[] for _ in utts]
    for w in words:
        mid = 0.5 * (w["start"] + w["end"])  # type: ignore[operator]
        by_utt[min(range(len(utts)), key=lambda i: _distance(mid, utts[i]))].append(w)
    d_start, d_end = [], []
    for u, hyp in zip(utts, by_utt):
        ref = [(wer_words(w["word"]) or [""])[0] for w in u["words"]]
        hw = [(wer_words(str(w["word"])) or [""])[0] for w in hyp]
        for block in difflib.SequenceMatcher(None, ref, hw, autojunk=False).get_matching_blocks():
            for k in range(block.size):
                r, h = u["words"][block.a + k], hyp[block.b + k]
                d_start.append(float(h["start"]) - r["start"])
                d_end.append(float(h["end"]) - r["end"])
    if not d_start:
        return {"words": 0, "start_share": float("nan"), "end_share": float("nan"),
                "start_median_s": float("nan"), "end_median_s": float("nan")}
    return {
        "words": len(d_start),
        "start_share": 100.0 * sum(abs(x) <= TOLERANCE_S for x in d_start) / len(d_start),
        "end_share": 100.0 * sum(abs(x) <= TOLERANCE_S for x in d_end) / len(d_end),
        "start_median_s": statistics.median(d_start),
        "end_median_s": statistics.median(d_end),
    }


def long_scores(doc: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """WER/CER, per-utterance WER, timestamps and costs of one long-video run."""
    if doc.get("error") or not doc["results"] or "error" in doc["results"][0]:
        return {"error": doc.get("error") or (doc["results"][0].get("error") if doc["results"] else "?")}
    res = doc["results"][0]
    tr, utts = res["transcript"], truth["utterances"]
    counts = error_counts([" ".join(u["text"] for u in utts)], [hyp_text(tr)])
    ts = timestamp_share(tr, utts)
    return {
        "duration_s": truth["duration"],
        "wer": counts.wer,
        "cer": counts.cer,
        "wer_per_utt": per_utterance_wer(tr, utts),
        "ts_share": ts["start_share"] if ts else None,
        "ts_words": ts["words"] if ts else None,
        "timestamps": ts,
        "wall_s": res["wall_s"],
        "load_s": doc["load_s"],
        "speed_x": truth["duration"] / res["wall_s"],
        "cpu_s": res.get("cpu_s"),
        "peak_mb": max(doc["maxrss_mb"], doc.get("children_maxrss_mb") or 0.0),
        "segments": len(tr.get("segments") or []),
        "transcript": tr,
        "kwargs": res.get("kwargs", doc.get("kwargs")),
        "offset_rejected": res.get("offset_rejected"),
        "accepts": doc.get("accepts"),
    }


def per_clip(model: Path, corpus: Path) -> dict[str, Any]:
    clips = load_clips(corpus)
    doc = run_worker(model, [c.video for c in clips], {})
    if doc.get("error"):
        return {"error": doc["error"]}
    hyps = [hyp_text(r.get("transcript", {})) for r in doc["results"]]
    counts = error_counts([c.text for c in clips], hyps)
    return {"wer": counts.wer, "cer": counts.cer, "clips": len(clips)}


def cutaway_scores(doc: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Seconds of the cutaway (and outside it) that the output marks audio-only."""
    scores = long_scores(doc, truth)
    if "error" in scores:
        return scores
    tr = scores.pop("transcript")
    a, b = truth["cutaways"][0]
    if not segments_have_flag(tr):
        return {**scores, "flagged": None, "warnings": tr.get("warnings")}
    marked = [(float(s["start"]), float(s["end"])) for s in tr["segments"] if is_audio_only(s)]
    inside = sum(max(0.0, min(e, b) - max(s, a)) for s, e in marked)
    total = sum(e - s for s, e in marked)
    # reference words spoken (midpoint) inside the cutaway, and those an audio-only segment covers
    mids = [0.5 * (w["start"] + w["end"]) for u in truth["utterances"] for w in u["words"]]
    in_cut = [m for m in mids if a <= m < b]
    covered = sum(any(s <= m <= e for s, e in marked) for m in in_cut)
    return {**scores, "flagged": marked, "inside_s": inside, "outside_s": total - inside,
            "words_in_cut": len(in_cut), "words_covered": covered, "warnings": tr.get("warnings")}


# --------------------------------------------------------------- driver and table


def make_video(work: Path, name: str, corpus: Path, **opts: Any) -> tuple[Path, dict[str, Any]]:
    """The generated video ``work/name.mov`` and its ground truth (generated when missing)."""
    path = work / f"{name}.mov"
    truth_path = Path(str(path) + ".json")
    if path.exists() and truth_path.exists():
        return path, json.loads(truth_path.read_text())
    return path, generate(path, load_clips(corpus), **opts)


def verdict(ok: bool | None) -> str:
    return NA if ok is None else ("pass" if ok else "FAIL")


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(criterion, measured, goal, verdict) rows."""
    rows = []
    clip, short, long_ = r["per_clip"], r["long"].get("short", {}), r["long"].get("long")
    cw = clip.get("wer")
    if "error" in short or cw is None:
        rows.append(("long-form run", short.get("error", clip.get("error", "?"))[-200:], "", "FAIL"))
        return rows
    for name, s in [(f"{short['duration_s'] / 60:.0f} min", short)] + (
        [(f"{long_['duration_s'] / 60:.0f} min", long_)] if long_ and "error" not in long_ else []
    ):
        rows.append((f"WER long-form {name} vs per-clip", f"{s['wer']:.1f} vs {cw:.1f} "
                     f"(CER {s['cer']:.1f} vs {clip['cer']:.1f}; per-utt {fmt(s['wer_per_utt'])})",
                     "<= per-clip + 3", verdict(s["wer"] <= cw + 3)))
        rows.append((f"speed {name}", f"{s['speed_x']:.1f}x real time ({s['wall_s']:.0f} s wall, "
                     f"+{s['load_s']:.0f} s load){_cpu_detail(s)}", ">= 15x",
                     verdict(s["speed_x"] >= 15)))
        rows.append((f"peak memory {name}", f"{s['peak_mb']:.0f} MB", "", ""))
    if long_ and "error" not in long_:
        ratio = long_["peak_mb"] / short["peak_mb"]
        rows.append((f"peak memory {long_['duration_s'] / 60:.0f} min / {short['duration_s'] / 60:.0f} min",
                     f"{ratio:.2f}x", "<= 1.3x", verdict(ratio <= 1.3)))
    elif long_:
        rows.append(("30 min run", long_["error"][-200:], "", "FAIL"))
    else:
        rows.append(("peak memory 30 min / 6 min", "not run", "<= 1.3x", "not run"))
    for name, s in [("", short)] + ([(f", {long_['duration_s'] / 60:.0f} min", long_)]
                                     if long_ and "error" not in long_ else []):
        ts = s.get("ts_share")
        rows.append((f"word starts within 0.2 s{name}", NA if ts is None else
                     f"{ts:.1f}% of {s['ts_words']} correct words{_ts_detail(s)}", ">= 90%",
                     verdict(None if ts is None else ts >= 90)))
    rows += cutaway_rows(r.get("cutaway"))
    rows += offset_rows(r.get("offsets"), r.get("offset_base"))
    return rows


def _cpu_detail(s: dict[str, Any]) -> str:
    """``; S s CPU = Xx per CPU second`` when the CPU time was measured."""
    cpu = s.get("cpu_s")
    return f"; {cpu:.0f} s CPU = {s['duration_s'] / cpu:.1f}x per CPU second" if cpu else ""


def _ts_detail(s: dict[str, Any]) -> str:
    """`` (ends within 0.2 s: E%; median error start S s, end E s)`` when measured."""
    ts = s.get("timestamps")
    if not isinstance(ts, dict) or not ts.get("words"):
        return ""
    return (f" (ends within 0.2 s: {ts['end_share']:.1f}%; median error start "
            f"{ts['start_median_s']:+.3f} s, end {ts['end_median_s']:+.3f} s)")


def cutaway_rows(c: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if c is None:
        return [("cutaway marked audio-only", "not run", "", "not run")]
    if "error" in c:
        return [("cutaway video transcribed", c["error"][-200:], "no crash", "FAIL")]
    goal = f"{CUTAWAY[0]:g}-{CUTAWAY[0] + CUTAWAY[1]:g} s audio-only"
    if c["flagged"] is None:
        return [("cutaway video transcribed", f"WER {c['wer']:.1f}", "no crash", "pass"),
                ("cutaway marked audio-only", NA, goal, NA)]
    spans = ", ".join(f"{s:.1f}-{e:.1f}" for s, e in c["flagged"]) or "none"
    ok = c["words_covered"] >= 0.9 * c["words_in_cut"] and c["outside_s"] <= 1.0
    return [("cutaway video transcribed", f"WER {c['wer']:.1f}", "no crash", "pass"),
            ("cutaway marked audio-only", f"{spans} s: {c['words_covered']} of {c['words_in_cut']} "
             f"words in the cut covered, {c['outside_s']:.1f} s marked outside it",
             goal, verdict(ok))]


def offset_rows(offs: dict[str, Any] | None, base: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if offs is None or base is None:
        return [("A/V offset estimate", "not run", "", "not run")]
    if "error" in base:
        return [("A/V offset base video", base["error"][-200:], "", "FAIL")]
    rows = []
    if base.get("corrected"):
        rows.append(("offset estimate, audio in sync", f"{base['offset_ms']:+.0f} ms{_applied(base)}",
                     "within 40 ms", verdict(abs(base["offset_ms"]) <= 40)))
    for shift, s in offs.items():
        if "error" in s:
            rows.append((f"offset {shift} ms", s["error"][-200:], "", "FAIL"))
            continue
        est = s.get("offset_ms")
        ok = None if est is None else abs(est - float(shift)) <= 40
        rows.append((f"offset estimate, audio {float(shift):+g} ms",
                     NA if est is None else f"{est:+.0f} ms{_applied(s)}", "within 40 ms", verdict(ok)))
        corrected = s.get("corrected")
        rows.append((f"WER audio {float(shift):+g} ms vs unshifted",
                     f"{s['wer']:.1f} vs {base['wer']:.1f}" + ("" if corrected else " (uncorrected)"),
                     "<= unshifted + 2", verdict(s["wer"] <= base["wer"] + 2 if corrected else None)))
    return rows


def _applied(s: dict[str, Any]) -> str:
    """`` (applied X ms, confidence C)`` when the transcript says so."""
    parts = []
    if isinstance(s.get("applied_ms"), int | float):
        parts.append(f"applied {s['applied_ms']:+.0f} ms")
    if isinstance(s.get("confidence"), int | float):
        parts.append(f"confidence {s['confidence']:.2f}")
    return f" ({', '.join(parts)})" if parts else ""


def print_table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| criterion | measured | goal | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines)
    print(text)
    return text


def run_offsets(args: argparse.Namespace, request: dict[str, Any]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """The unshifted 1-minute video and the shifted ones, transcribed with the offset on auto."""
    req = {**request, **{k: "auto" for k in OFFSET_KEYS}}
    offs = {}
    for shift in (0.0, *SHIFTS_MS):
        name = "offset_0" if shift == 0 else f"offset_{shift:+.0f}"
        v, t = make_video(args.work, name, args.corpus,
                          minutes=args.offset_minutes, audio_shift_ms=shift)
        s = long_scores(run_worker(args.model, [v], req), t)
        if "error" not in s:
            tr = s.pop("transcript")
            corrected = not s["offset_rejected"] and any(k in (s["kwargs"] or {}) for k in OFFSET_KEYS)
            s["offset_ms"] = offset_estimate_ms(tr) if corrected else None
            s["applied_ms"] = tr.get("av_offset_ms")
            est = tr.get("av_offset_estimate")
            s["confidence"] = est.get("confidence") if isinstance(est, dict) else None
            s["corrected"] = corrected
        offs[f"{shift:+.0f}"] = s
    base = offs.pop("+0")
    return base, offs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--work", type=Path, default=Path("/work/longform"), help="generated videos")
    p.add_argument("--minutes", type=float, default=6.0, help="the short long-form video")
    p.add_argument("--long", type=float, default=0.0, help="also a video of this many minutes (30), last")
    p.add_argument("--long-if-under", type=float, default=float("inf"), metavar="S",
                   help="run --long only if the short video took less than S seconds of wall time")
    p.add_argument("--long-timeout", type=float, default=None, metavar="S",
                   help="give up the --long transcription after S seconds")
    p.add_argument("--offset-minutes", type=float, default=1.0, help="length of the offset/cutaway videos")
    p.add_argument("--skip", nargs="*", default=[], choices=["cutaway", "offsets"])
    p.add_argument("--json", type=Path, help="write all numbers here (rewritten after each part)")
    return p.parse_args(argv)


def report(r: dict[str, Any], path: Path | None) -> None:
    """Print the table; write the numbers (without transcripts) to ``path``."""
    r["table"] = print_table(table(r))
    if path:
        slim = {**r, "long": {k: {n: v for n, v in s.items() if n != "transcript"}
                              for k, s in r["long"].items()}}
        path.write_text(json.dumps(slim, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    request: dict[str, Any] = {}
    r: dict[str, Any] = {"model": str(args.model), "long": {}}
    t0 = time.perf_counter()
    r["per_clip"] = per_clip(args.model, args.corpus)
    print(f"per-clip done ({time.perf_counter() - t0:.0f} s): {r['per_clip']}", flush=True)
    v, t = make_video(args.work, f"long_{args.minutes:g}min", args.corpus, minutes=args.minutes)
    r["long"]["short"] = long_scores(run_worker(args.model, [v], request), t)
    print(f"{args.minutes:g} min done ({time.perf_counter() - t0:.0f} s)", flush=True)
    if "cutaway" not in args.skip:
        v, t = make_video(args.work, "cutaway", args.corpus, minutes=args.offset_minutes,
                          cutaways=[(CUTAWAY[0], CUTAWAY[0] + CUTAWAY[1])])
        r["cutaway"] = cutaway_scores(run_worker(args.model, [v], request), t)
        print(f"cutaway done ({time.perf_counter() - t0:.0f} s)", flush=True)
    if "offsets" not in args.skip:
        r["offset_base"], r["offsets"] = run_offsets(args, request)
        print(f"offsets done ({time.perf_counter() - t0:.0f} s)", flush=True)
    report(r, args.json)
    if not args.long:
        return
    if r["long"]["short"].get("wall_s", float("inf")) >= args.long_if_under:
        print(f"{args.long:g} min skipped: the short video took >= {args.long_if_under:g} s")
        return
    v, t = make_video(args.work, f"long_{args.long:g}min", args.corpus, minutes=args.long)
    r["long"]["long"] = long_scores(run_worker(args.model, [v], request, args.long_timeout), t)
    print(f"{args.long:g} min done ({time.perf_counter() - t0:.0f} s)", flush=True)
    report(r, args.json)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        worker(sys.argv[2], sys.argv[5:], json.loads(sys.argv[4]), sys.argv[3])
    else:
        main()
