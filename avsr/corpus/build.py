"""Build the embedded corpus: plan speakers and clips, render them in parallel, add the noise set.

Layout (the shared data contract)::

    CORPUS/clips.tsv                   id video audio split lang speaker text translation
    CORPUS/raw/{split}/{id}.mp4        H.264 + AAC talking face
    CORPUS/raw/{split}/{id}.wav        exact 16 kHz mono 16-bit audio
    CORPUS/alignments/{id}.json        word timings + visemes + per-frame mouth signal
    CORPUS/noise/{category}/*.wav      MUSAN layout + babble; {category}/{split}.tsv lists
    CORPUS/corpus.json                 metadata
    CORPUS/config.yaml                 the resolved build config

Everything is a function of (seed, size, hours, languages): each clip draws
its randomness from a generator seeded by (seed, clip id), so the worker
count and the order of work do not change any byte of wav or any decoded
frame. Finished clips are skipped on a rerun.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from avsr.audio import SAMPLE_RATE
from avsr.config import save_config
from avsr.corpus import grammar, noise_set
from avsr.corpus.face import FaceRenderer, Look
from avsr.corpus.noise_set import CATEGORIES, COLOURS, SPLITS
from avsr.corpus.speech import VARIANTS, VOICES, Voice, make_voice, utterance
from avsr.corpus.video import render_clip
from avsr.corpus.visemes import word_visemes
from avsr.errors import UserError
from avsr.io import atomic_path, atomic_write_json, atomic_write_text
from avsr.logging_utils import get_logger
from avsr.media import sonic_pi_samples
from avsr.noise import stable_hash

log = get_logger(__name__)

FORMAT_VERSION = 1
GENERATOR_VERSION = 3  # bump when the same settings would give different files
CLIPS_HEADER = ("id", "video", "audio", "split", "lang", "speaker", "text", "translation")
MEAN_CLIP_SECONDS = 2.3  # measured mean utterance length (for --hours -> clip counts)
SIZES_PX = ((640, 480), (480, 360))


@dataclass(kw_only=True)
class CorpusConfig:
    """What to build. ``hours`` (total speech over all languages) overrides the size's clip counts."""

    size: Literal["tiny", "small"] = "tiny"
    """``tiny``: 8 clips per language (CI); ``small``: 0.58 h of speech over all languages (demo)."""
    seed: int = 0
    """Seed of every random choice (speakers, sentences, rendering, noise)."""
    hours: float | None = None
    """Total hours of speech over all languages; None: the size's clip counts."""
    langs: list[str] = field(default_factory=lambda: list(grammar.LANGUAGES))
    """Languages, a subset of the grammar's."""
    workers: int = 2
    """Worker processes rendering clips and noise (1: in this process)."""


@dataclass(frozen=True)
class SizeSpec:
    """What a corpus size means."""

    speakers: tuple[int, int, int]
    """Train, valid, test speakers per language."""
    clips: tuple[int, int, int] | None
    """Clips per language and split (None: from ``hours``)."""
    hours: float | None
    """Total hours of speech when ``clips`` is None."""
    noise_per_split: int
    """Synthesised noise files per category and split."""


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec((1, 1, 1), (4, 2, 2), None, 1),
    "small": SizeSpec((12, 2, 2), None, 0.58, 3),
}


@dataclass(frozen=True, kw_only=True)
class SpeakerPlan:
    """One corpus speaker: a voice and a look, in one language and split."""

    id: str
    """``{lang}-spk{NN}``."""
    lang: str
    """Language code."""
    split: str
    """train, valid or test."""
    voice: Voice
    """espeak-ng voice and prosody."""
    look: Look
    """Face rendering settings."""


@dataclass(frozen=True, kw_only=True)
class ClipPlan:
    """One clip to render: who says which sentence at which frame rate."""

    id: str
    """``{speaker}-{NNNN}``."""
    split: str
    """train, valid or test."""
    lang: str
    """Language code."""
    speaker: str
    """Speaker id."""
    words: tuple[str, ...]
    """The sentence in ``lang``."""
    english: tuple[str, ...]
    """Its English translation."""
    fps: str
    """Frame rate: "25", "30000/1001" or "30"."""
    seed: int
    """Seed of the clip's synthesis and rendering."""

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def translation(self) -> str:
        return " ".join(self.english) if self.lang in grammar.X_TO_EN else ""


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, stable_hash(*parts) & 0xFFFFFFFFFFFF])


def clips_per_split(cfg: CorpusConfig) -> tuple[int, int, int]:
    spec = SIZES[cfg.size]
    hours = cfg.hours if cfg.hours is not None else spec.hours
    if hours is None:
        assert spec.clips is not None
        return spec.clips
    per_lang = max(3, int(math.ceil(hours * 3600 / len(cfg.langs) / MEAN_CLIP_SECONDS)))
    n_valid = max(1, int(round(0.1 * per_lang)))
    n_test = max(1, int(round(0.1 * per_lang)))
    return per_lang - n_valid - n_test, n_valid, n_test


def make_look(index: int, rng: np.random.Generator) -> Look:
    width, height = SIZES_PX[index % len(SIZES_PX)]
    bg_kind = ("photo", "gradient", "texture")[int(rng.integers(3))]
    colours = tuple(tuple(int(c) for c in rng.integers(20, 236, 3)) for _ in range(2))
    return Look(
        width=width,
        height=height,
        flip=bool(rng.integers(2)),
        face_frac=float(rng.uniform(0.36, 0.48)),
        offset_x=float(rng.uniform(-0.07, 0.07)),
        offset_y=float(rng.uniform(-0.08, 0.0)),
        gains=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)),  # type: ignore[arg-type]
        gamma=float(rng.uniform(0.85, 1.2)),
        background=bg_kind,
        bg_colors=colours,  # type: ignore[arg-type]
        bg_seed=int(rng.integers(2**31)),
    )


def plan(cfg: CorpusConfig) -> tuple[list[SpeakerPlan], list[ClipPlan]]:
    """Speakers and clips of the corpus (pure function of the config)."""
    spec = SIZES[cfg.size]
    counts = clips_per_split(cfg)
    speakers: list[SpeakerPlan] = []
    clips: list[ClipPlan] = []
    look_index = 0
    for lang in cfg.langs:
        idx = 0
        for split, n_spk, n_clips in zip(SPLITS, spec.speakers, counts):
            spk_here = []
            for _ in range(n_spk):
                rng = _rng(cfg.seed, "speaker", lang, idx)
                sp = SpeakerPlan(
                    id=f"{lang}-spk{idx:02d}",
                    lang=lang,
                    split=split,
                    voice=make_voice(lang, idx, rng),
                    look=make_look(look_index, rng),
                )
                speakers.append(sp)
                spk_here.append(sp)
                idx += 1
                look_index += 1
            for k in range(n_clips):
                sp = spk_here[k % len(spk_here)]
                cid = f"{sp.id}-{k // len(spk_here):04d}"
                rng = _rng(cfg.seed, "clip", cid)
                sent = grammar.sample_sentence(lang, rng)
                fps = ("25", "30000/1001", "30")[int(rng.integers(3))]
                clips.append(ClipPlan(id=cid, split=split, lang=lang, speaker=sp.id, words=sent.words,
                                      english=sent.english, fps=fps, seed=int(rng.integers(2**31))))
    return speakers, clips


# ---------------------------------------------------------------------------
# worker side


def _clip_paths(out: Path, clip: ClipPlan) -> tuple[Path, Path, Path]:
    return (out / "raw" / clip.split / f"{clip.id}.mp4", out / "raw" / clip.split / f"{clip.id}.wav",
            out / "alignments" / f"{clip.id}.json")


_RENDERERS: dict[Look, Any] = {}


def _renderer(look: Look) -> Any:
    if look not in _RENDERERS:
        if len(_RENDERERS) >= 4:
            _RENDERERS.pop(next(iter(_RENDERERS)))
        _RENDERERS[look] = FaceRenderer(look)
    return _RENDERERS[look]


def render_one(out: Path, speaker: SpeakerPlan, clip: ClipPlan) -> dict[str, Any]:
    """Synthesise, render and write one clip (skipped if complete); returns its alignment record."""
    mp4, wav, ali = _clip_paths(out, clip)
    if mp4.is_file() and wav.is_file() and ali.is_file():
        return json.loads(ali.read_text(encoding="utf-8"))
    rng = np.random.default_rng(clip.seed)
    audio, timings = utterance(speaker.voice, clip.words, rng)
    audio = np.round(np.clip(audio, -1.0, 1.0) * 32767.0) / 32767.0  # what the 16-bit wav holds
    audio = audio.astype(np.float32)
    fps = Fraction(clip.fps)
    mp4.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(mp4) as tmp:
        traj = render_clip(_renderer(speaker.look), audio, timings, fps, rng, tmp)
    noise_set.write_wav(wav, audio)
    n_frames = len(traj["h"])
    record = {
        "id": clip.id,
        "split": clip.split,
        "lang": clip.lang,
        "speaker": clip.speaker,
        "text": clip.text,
        "translation": clip.translation,
        "fps": clip.fps,
        "n_frames": n_frames,
        "n_samples": len(audio),
        "duration": round(len(audio) / SAMPLE_RATE, 6),
        "width": speaker.look.width,
        "height": speaker.look.height,
        "words": [
            {"word": t.word, "start": round(t.start, 6), "end": round(t.end, 6), "visemes": word_visemes(t.word)}
            for t in timings
        ],
        "mouth": {
            "opening": [round(float(x), 4) for x in traj["h"]],
            "width": [round(float(x), 4) for x in traj["w"]],
            "rounding": [round(float(x), 4) for x in traj["r"]],
        },
    }
    atomic_write_json(ali, record)
    return record


def _clip_task(out: str, speaker: SpeakerPlan, clips: list[ClipPlan]) -> list[dict[str, Any]]:
    return [render_one(Path(out), speaker, c) for c in clips]


def _noise_task(out: str, cfg_seed: int, kind: str, name: str, params: dict[str, Any]) -> str:
    """Write one synthesised / converted noise file; returns its path."""
    path = Path(out) / "noise" / params["category"] / f"{name}.wav"
    if path.is_file():
        return str(path)
    rng = _rng(cfg_seed, "noise", name)
    if kind == "colour":
        audio = noise_set.coloured_noise(params["colour"], 10.0, rng)
    elif kind == "music":
        audio = noise_set.synth_music(10.0, rng)
    elif kind == "sample":
        audio = noise_set.load_sample(Path(params["source"]))
    elif kind == "speech":
        lang = params["lang"]
        voice = make_voice(lang, params["voice_index"], rng)
        parts: list[np.ndarray] = []
        while sum(len(p) for p in parts) < 10 * SAMPLE_RATE:
            sent = grammar.sample_sentence(lang, rng)
            parts.append(utterance(voice, sent.words, rng)[0])
        audio = np.concatenate(parts)
    else:
        raise ValueError(kind)
    noise_set.write_wav(path, audio)
    return str(path)


def _noise_jobs(cfg: CorpusConfig, n_speakers_per_lang: int) -> list[tuple[str, str, dict[str, Any]]]:
    spec = SIZES[cfg.size]
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    for split in SPLITS:
        for k in range(spec.noise_per_split):
            jobs.append(("music", f"music-{split}-{k:02d}", {"category": "music", "split": split}))
            for colour in COLOURS:
                jobs.append(("colour", f"{colour}-{split}-{k:02d}", {"category": "noise", "split": split, "colour": colour}))
        n_speech = spec.noise_per_split * 2
        for k in range(n_speech):
            lang = cfg.langs[(SPLITS.index(split) * n_speech + k) % len(cfg.langs)]
            # voice indices beyond the corpus speakers: held out by construction
            jobs.append(("speech", f"speech-{split}-{k:02d}", {
                "category": "speech", "split": split, "lang": lang,
                "voice_index": n_speakers_per_lang + 1 + k + SPLITS.index(split) * n_speech,
            }))
    for i, p in enumerate(sonic_pi_samples("loop_")):
        jobs.append(("sample", f"sonicpi-{p.stem}", {"category": "music", "split": noise_set.split_of(i), "source": str(p)}))
    for i, p in enumerate(sonic_pi_samples("ambi_")):
        jobs.append(("sample", f"sonicpi-{p.stem}", {"category": "noise", "split": noise_set.split_of(i), "source": str(p)}))
    return jobs


# ---------------------------------------------------------------------------
# driver


def _check_out(out: Path, stamp: dict[str, Any]) -> None:
    path = out / ".build-plan.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != stamp:
            raise UserError(f"{out}: holds a corpus built with other settings ({old}); use a new --out folder")
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty and is not a corpus folder; use a new --out folder")
    atomic_write_json(path, stamp)


def _validate(cfg: CorpusConfig) -> None:
    """Reject unknown sizes/languages and bad hours; put ``cfg.langs`` in the grammar's order."""
    if cfg.size not in SIZES:
        raise UserError(f"unknown size {cfg.size!r} (choose from {sorted(SIZES)})")
    bad = [lang for lang in cfg.langs if lang not in grammar.LANGUAGES]
    if bad or not cfg.langs:
        raise UserError(f"unknown language(s) {bad} (choose from {list(grammar.LANGUAGES)})")
    if len(set(cfg.langs)) != len(cfg.langs):
        raise UserError(f"languages repeated: {cfg.langs}")
    if cfg.hours is not None and cfg.hours <= 0:
        raise UserError(f"--hours must be positive, got {cfg.hours}")
    cfg.langs = [lang for lang in grammar.LANGUAGES if lang in cfg.langs]


def _speaker_groups(
    speakers: Sequence[SpeakerPlan], clips: Sequence[ClipPlan]
) -> list[tuple[SpeakerPlan, list[ClipPlan]]]:
    """Work units: up to 10 clips of one speaker (one face renderer), largest first."""
    groups: list[tuple[SpeakerPlan, list[ClipPlan]]] = []
    for sp in speakers:
        mine = [c for c in clips if c.speaker == sp.id]
        for a in range(0, len(mine), 10):
            groups.append((sp, mine[a : a + 10]))
    groups.sort(key=lambda g: -len(g[1]))
    return groups


NoiseJob = tuple[str, str, dict[str, Any]]
NoiseFiles = dict[str, dict[str, list[Path]]]


def _render_all(
    out: Path,
    cfg: CorpusConfig,
    groups: list[tuple[SpeakerPlan, list[ClipPlan]]],
    noise_jobs: list[NoiseJob],
    workers: int,
) -> tuple[dict[str, dict[str, Any]], NoiseFiles]:
    """Render the clips and synthesise the noise files (in ``workers`` processes when > 1).

    Returns (clip id -> alignment record, category -> split -> noise files).
    """
    records: dict[str, dict[str, Any]] = {}
    noise_files: NoiseFiles = {c: {} for c in CATEGORIES}
    if workers == 1:
        for sp, group in groups:
            for rec in _clip_task(str(out), sp, group):
                records[rec["id"]] = rec
        for kind, name, params in noise_jobs:
            p = _noise_task(str(out), cfg.seed, kind, name, params)
            noise_files[params["category"]].setdefault(params["split"], []).append(Path(p))
        return records, noise_files
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futs = [pool.submit(_clip_task, str(out), sp, group) for sp, group in groups]
        nfuts = [(params, pool.submit(_noise_task, str(out), cfg.seed, kind, name, params))
                 for kind, name, params in noise_jobs]
        for f in futs:
            for rec in f.result():
                records[rec["id"]] = rec
        for params, f in nfuts:
            noise_files[params["category"]].setdefault(params["split"], []).append(Path(f.result()))
    return records, noise_files


def _write_babble(out: Path, cfg: CorpusConfig, clips: Sequence[ClipPlan], noise_files: NoiseFiles) -> None:
    """Babble noise files from the training utterances (added to ``noise_files``)."""
    train_audio: dict[str, list[np.ndarray]] = {}
    for c in clips:
        if c.split == "train":
            a, _ = sf.read(str(_clip_paths(out, c)[1]), dtype="float32")
            train_audio.setdefault(c.lang, []).append(a)
    for split in SPLITS:
        for k in range(SIZES[cfg.size].noise_per_split):
            path = out / "noise" / "babble" / f"babble-{split}-{k:02d}.wav"
            if not path.is_file():
                noise_set.write_wav(path, noise_set.babble(train_audio, _rng(cfg.seed, "babble", split, k)))
            noise_files["babble"].setdefault(split, []).append(path)


def _write_clips_tsv(out: Path, clips: Sequence[ClipPlan]) -> None:
    """``clips.tsv``: train, valid, test; by id within a split."""
    order = {s: i for i, s in enumerate(SPLITS)}
    rows = sorted(clips, key=lambda c: (order[c.split], c.id))
    lines = ["\t".join(CLIPS_HEADER)]
    for c in rows:
        mp4, wav, _ = _clip_paths(out, c)
        lines.append("\t".join([c.id, mp4.relative_to(out).as_posix(), wav.relative_to(out).as_posix(),
                                c.split, c.lang, c.speaker, c.text, c.translation]))
    atomic_write_text(out / "clips.tsv", "\n".join(lines) + "\n")


def build(cfg: CorpusConfig, out: str | Path) -> dict[str, Any]:
    """Build (or complete) the corpus in ``out``; returns the corpus.json dict."""
    out = Path(out)
    _validate(cfg)
    t0 = time.perf_counter()
    stamp = {"format": FORMAT_VERSION, "generator": GENERATOR_VERSION, "size": cfg.size, "seed": cfg.seed, "hours": cfg.hours, "langs": cfg.langs}
    _check_out(out, stamp)
    speakers, clips = plan(cfg)
    by_speaker = {s.id: s for s in speakers}
    groups = _speaker_groups(speakers, clips)
    n_spk = sum(SIZES[cfg.size].speakers)
    noise_jobs = _noise_jobs(cfg, n_spk)
    workers = max(1, int(cfg.workers))
    log.info("corpus: %d clips, %d speakers, %d languages, %d noise files; %d workers",
             len(clips), len(speakers), len(cfg.langs), len(noise_jobs), workers)
    records, noise_files = _render_all(out, cfg, groups, noise_jobs, workers)
    _write_babble(out, cfg, clips, noise_files)
    noise_set.write_lists(out / "noise", noise_files)
    _write_clips_tsv(out, clips)
    meta = _metadata(cfg, speakers, clips, records, noise_files, by_speaker)
    save_config(cfg, out / "config.yaml")
    atomic_write_json(out / "corpus.json", meta)
    log.info("corpus: %.1f min of speech in %s (%.1f s)", meta["total_speech_seconds"] / 60, out,
             time.perf_counter() - t0)
    return meta


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _metadata(cfg: CorpusConfig, speakers: Sequence[SpeakerPlan], clips: Sequence[ClipPlan],
              records: dict[str, dict[str, Any]], noise_files: dict[str, dict[str, list[Path]]],
              by_speaker: dict[str, SpeakerPlan]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    durations: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
    for c in clips:
        counts[c.split][c.lang] = counts[c.split].get(c.lang, 0) + 1
        durations[c.split][c.lang] = round(durations[c.split].get(c.lang, 0.0) + records[c.id]["duration"], 3)
    total = sum(r["duration"] for r in records.values())
    return {
        "format": FORMAT_VERSION,
        "generator": "xlavsr avsr corpus build",
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "size": cfg.size,
        "hours_requested": cfg.hours,
        "languages": list(cfg.langs),
        "x_to_en": [lang for lang in grammar.X_TO_EN if lang in cfg.langs],
        "sample_rate": SAMPLE_RATE,
        "vocabulary": {lang: grammar.vocabulary(lang) for lang in cfg.langs},
        "speakers": [
            {"id": s.id, "lang": s.lang, "split": s.split, "voice": s.voice.name,
             "look": {k: v for k, v in asdict(s.look).items() if k != "bg_seed"}}
            for s in speakers
        ],
        "counts": counts,
        "durations_seconds": durations,
        "total_clips": len(clips),
        "total_speech_seconds": round(total, 3),
        "frame_rates": sorted({c.fps for c in clips}),
        "frame_sizes": sorted({f"{by_speaker[c.speaker].look.width}x{by_speaker[c.speaker].look.height}" for c in clips}),
        "noise": {cat: {s: len(v.get(s, [])) for s in SPLITS} for cat, v in noise_files.items()},
        "espeak_variants": list(VARIANTS),
        "espeak_voices": {lang: list(VOICES[lang]) for lang in cfg.langs},
    }
