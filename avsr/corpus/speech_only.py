"""Audio-only speech of the embedded corpus's training speakers, for pretraining a stand-in encoder.

``avsr corpus speech --out DIR --hours H`` synthesises the training speakers of every language
(no faces, no video), and writes a data folder that the audio-only pretraining reads::

    DIR/audio/{id}.wav        16 kHz mono PCM
    DIR/{train,valid}.tsv     manifests (video column ``-``; 25 fps frame count from the audio)
    DIR/{train,valid}.{wrd,lang}
    DIR/speech.json           settings, clip counts, hours

Only the speakers the corpus plans for its ``train`` split are used (valid/test speakers and the
babble voices are never heard), so a demo built later with any seed tests on unheard speakers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from avsr.audio import SAMPLE_RATE
from avsr.corpus import grammar
from avsr.corpus.build import MEAN_CLIP_SECONDS, ClipPlan, SpeakerPlan, plan
from avsr.corpus.build import CorpusConfig as _CorpusConfig
from avsr.corpus.noise_set import write_wav
from avsr.corpus.speech import utterance
from avsr.errors import UserError
from avsr.io import ManifestRow, atomic_write_json, atomic_write_text, write_manifest

VALID_SHARE = 0.03
"""Share of the clips kept for the pretraining's validation (same speakers)."""


@dataclass(kw_only=True)
class SpeechCorpusConfig:
    """What ``avsr corpus speech`` builds."""

    hours: float = 2.0
    """Total hours of speech over all languages."""
    seed: int = 1000
    """Seed of the speakers' voices and the sentences (keep it apart from the demo's seeds)."""
    langs: list[str] = field(default_factory=lambda: list(grammar.LANGUAGES))
    """Languages, a subset of the grammar's."""
    workers: int = 2
    """Worker processes."""


def speech_plan(cfg: SpeechCorpusConfig) -> list[tuple[SpeakerPlan, ClipPlan]]:
    """(speaker, clip) of every clip: the corpus plan's ``train`` speakers, ``hours`` of speech."""
    per_lang = max(1, int(math.ceil(cfg.hours * 3600 / len(cfg.langs) / MEAN_CLIP_SECONDS)))
    # the corpus plan gives 80 % of a language's clips to training: ask for enough
    corpus = _CorpusConfig(size="small", seed=cfg.seed, langs=list(cfg.langs), hours=cfg.hours / 0.8 * 1.02)
    speakers, clips = plan(corpus)
    by_id = {s.id: s for s in speakers if s.split == "train"}
    out: list[tuple[SpeakerPlan, ClipPlan]] = []
    for lang in cfg.langs:
        mine = [c for c in clips if c.lang == lang and c.speaker in by_id][:per_lang]
        out += [(by_id[c.speaker], c) for c in mine]
    return out


def _synth(out: str, speaker: SpeakerPlan, clip: ClipPlan) -> tuple[str, int]:
    """Write one clip's wav (skipped if present); returns (id, samples)."""
    path = Path(out) / "audio" / f"{clip.id}.wav"
    if path.is_file():  # written by an earlier, interrupted build
        return clip.id, int(sf.info(str(path)).frames)
    audio, _ = utterance(speaker.voice, clip.words, np.random.default_rng(clip.seed))
    write_wav(path, audio)
    return clip.id, len(audio)


def _write_split(out: Path, split: str, items: Sequence[tuple[ClipPlan, int]]) -> None:
    rows = [ManifestRow(id=c.id, video="-", audio=f"audio/{c.id}.wav", n_video_frames=int(n * 25 // SAMPLE_RATE),
                        n_audio_samples=n) for c, n in items]
    write_manifest(out / f"{split}.tsv", out.resolve(), rows)
    atomic_write_text(out / f"{split}.wrd", "".join(f"{c.text}\n" for c, _ in items))
    atomic_write_text(out / f"{split}.lang", "".join(f"{c.lang}\n" for c, _ in items))


def build_speech(cfg: SpeechCorpusConfig, out: str | Path) -> dict[str, object]:
    """Synthesise the clips of :func:`speech_plan` into ``out`` (resumable) and write its manifests."""
    bad = sorted(set(cfg.langs) - set(grammar.LANGUAGES))
    if bad:
        raise UserError(f"unknown languages {bad} (known: {' '.join(grammar.LANGUAGES)})")
    if cfg.hours <= 0:
        raise UserError(f"--hours must be > 0, got {cfg.hours}")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    jobs = speech_plan(cfg)
    samples: dict[str, int] = {}
    with ProcessPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        futures = [pool.submit(_synth, str(out), s, c) for s, c in jobs]
        for fut in tqdm(futures, desc="speech", unit="clip", mininterval=2.0):
            cid, n = fut.result()
            samples[cid] = n
    rng = np.random.default_rng(cfg.seed)
    is_valid = rng.random(len(jobs)) < VALID_SHARE
    items = [(c, samples[c.id]) for _, c in jobs]
    _write_split(out, "train", [x for x, v in zip(items, is_valid) if not v])
    _write_split(out, "valid", [x for x, v in zip(items, is_valid) if v])
    meta: dict[str, object] = {"config": asdict(cfg), "clips": len(items), "valid_clips": int(is_valid.sum()),
                               "speakers": len({s.id for s, _ in jobs}),
                               "hours": round(sum(samples.values()) / SAMPLE_RATE / 3600, 3)}
    atomic_write_json(out / "speech.json", meta)
    return meta


def with_overrides(cfg: SpeechCorpusConfig, **values: object) -> SpeechCorpusConfig:
    """``cfg`` with the non-None ``values`` set."""
    return replace(cfg, **{k: v for k, v in values.items() if v is not None})
