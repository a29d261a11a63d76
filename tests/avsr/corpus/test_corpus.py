"""Corpus generator pieces: grammar, visemes, speech timings, face renderer, plan, noise."""

from __future__ import annotations

import re

import numpy as np
import pytest

from avsr.corpus import grammar
from avsr.corpus.build import CorpusConfig, clips_per_split, plan
from avsr.corpus.noise_set import babble, coloured_noise, synth_music
from avsr.corpus.visemes import VISEMES, mouth_trajectory, word_visemes

SCRIPTS = {"ar": r"[\u0600-\u06FF]", "el": r"[\u0370-\u03FF\u1F00-\u1FFF]", "ru": r"[\u0400-\u04FF]"}


def test_grammar_vocabulary_and_scripts() -> None:
    for lang in grammar.LANGUAGES:
        words = [w for s in grammar.SLOTS for w in grammar.VOCAB[s][lang]]
        assert len(words) == len(set(words)) == 39, lang
        for s in grammar.SLOTS:
            assert len(grammar.VOCAB[s][lang]) == len(grammar.VOCAB[s]["en"])
        if lang in SCRIPTS:
            assert all(re.search(SCRIPTS[lang], w) for w in words), lang
        else:
            assert all(re.fullmatch(r"[a-zäöüßàâçéèêëîïôûùáíóúñãõì]+", w) for w in words), lang


def test_translations_by_construction() -> None:
    rng = np.random.default_rng(0)
    for lang in grammar.LANGUAGES:
        for _ in range(20):
            s = grammar.sample_sentence(lang, rng)
            assert len(s.words) in (5, 6) and len(s.english) == len(s.words)
            assert grammar.translate_to_english(lang, s.words) == list(s.english)
            assert (s.translation != "") == (lang in grammar.X_TO_EN)
    es = grammar.Sentence("es", ("muestra", "azul", "bajo", "cuatro", "ahora"), ("show", "blue", "under", "four", "now"))
    assert grammar.translate_to_english("es", es.words) == list(es.english)


def test_word_visemes() -> None:
    assert word_visemes("blue") == ["P", "T", "U", "E"]
    assert word_visemes("mama") == ["P", "A", "P", "A"]
    assert word_visemes("κόκκινο") == ["K", "O", "K", "I", "T", "O"]  # tonos stripped
    assert word_visemes("пять")[0] == "P" and word_visemes("أربعة")[0] == "A"
    vocab = [w for lang in grammar.LANGUAGES for w in grammar.vocabulary(lang)]
    assert all(word_visemes(w) for w in vocab)
    en = grammar.vocabulary("en")
    distinct = {tuple(word_visemes(w)) for w in en}
    assert len(distinct) >= 0.8 * len(en)


def test_mouth_trajectory_follows_words() -> None:
    times = np.arange(0, 2.0, 0.02)
    env = np.ones_like(times)
    traj = mouth_trajectory([(0.3, 0.7, ["A"]), (1.2, 1.6, ["U"])], times, env)

    def at(t: float) -> int:
        return int(np.argmin(np.abs(times - t)))

    assert traj["h"][at(0.1)] < 0.01 and traj["h"][at(1.0)] < 0.05
    assert traj["h"][at(0.5)] == pytest.approx(VISEMES["A"].h, abs=0.02)
    assert traj["w"][at(1.4)] == pytest.approx(VISEMES["U"].w, abs=0.02)
    assert traj["r"][at(1.4)] > 0.9
    quiet = mouth_trajectory([(0.3, 0.7, ["A"])], times, np.zeros_like(times))
    assert quiet["h"][at(0.5)] == pytest.approx(0.55 * VISEMES["A"].h, abs=0.02)


def test_utterance_word_timings() -> None:
    from avsr.audio import SAMPLE_RATE
    from avsr.corpus.speech import make_voice, synth_word, utterance

    voice = make_voice("de", 0, np.random.default_rng(0))
    w = synth_word(voice, "vier")
    assert w.dtype == np.float32 and 0.1 < len(w) / SAMPLE_RATE < 1.5
    audio, timings = utterance(voice, ["null", "vier", "jetzt"], np.random.default_rng(1))
    assert [t.word for t in timings] == ["null", "vier", "jetzt"]
    for a, b in zip(timings, timings[1:]):
        assert a.end <= b.start
    for t in timings:
        seg = audio[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)]
        assert np.sqrt(np.mean(seg**2)) > 0.02
    lead = audio[: int(timings[0].start * SAMPLE_RATE)]
    assert np.abs(lead).max() == 0.0
    again, _ = utterance(voice, ["null", "vier", "jetzt"], np.random.default_rng(1))
    assert np.array_equal(audio, again)


def test_face_renderer_mouth_moves_only_in_mouth_region() -> None:
    from avsr.corpus.build import make_look
    from avsr.corpus.face import FaceRenderer

    r = FaceRenderer(make_look(1, np.random.default_rng(0)))
    closed = r.frame(1.0, 0.0, 0.1, 0.0)
    open_ = r.frame(1.05, 0.5, 0.1, 0.0)
    rounded = r.frame(0.56, 0.15, 1.0, 0.0)
    assert closed.shape == (360, 480, 3) and closed.dtype == np.uint8
    x0, y0, x1, y1 = r.box
    diff = np.abs(open_.astype(int) - closed.astype(int)).sum(axis=2)
    assert diff[y0:y1, x0:x1].mean() > 5
    outside = diff.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0
    assert np.abs(rounded.astype(int) - open_.astype(int)).sum() > 0
    assert np.array_equal(closed, r.frame(1.0, 0.0, 0.1, 0.0))


def test_plan_splits_and_unseen_test_speakers() -> None:
    cfg = CorpusConfig(size="small", seed=5)
    speakers, clips = plan(cfg)
    by_split = {s: {sp.id for sp in speakers if sp.split == s} for s in ("train", "valid", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["valid"])
    assert len({c.id for c in clips}) == len(clips)
    spk_split = {sp.id: sp.split for sp in speakers}
    assert all(spk_split[c.speaker] == c.split for c in clips)
    assert {c.lang for c in clips if c.split == "test"} == set(grammar.LANGUAGES)
    assert {c.fps for c in clips} == {"25", "30000/1001", "30"}
    assert {(sp.look.width, sp.look.height) for sp in speakers} == {(640, 480), (480, 360)}
    # >= 30 minutes of speech expected at the measured mean clip length
    assert sum(clips_per_split(cfg)) * len(grammar.LANGUAGES) * 2.2 >= 1800
    assert plan(CorpusConfig(size="small", seed=5)) == (speakers, clips)
    assert plan(CorpusConfig(size="small", seed=6))[1] != clips


def test_hours_sets_clip_counts() -> None:
    assert clips_per_split(CorpusConfig(size="tiny")) == (4, 2, 2)
    assert clips_per_split(CorpusConfig(size="tiny", hours=0.001)) == (1, 1, 1)
    n = clips_per_split(CorpusConfig(size="tiny", hours=1.0))
    assert sum(n) * 9 * 2.3 >= 3600


def test_noise_generators() -> None:
    rng = np.random.default_rng(0)
    pink = coloured_noise("pink", 2.0, rng)
    blue = coloured_noise("blue", 2.0, rng)

    def low_share(x: np.ndarray) -> float:
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        return float(p[f < 1000].sum() / p.sum())

    assert low_share(pink) > 0.5 > low_share(blue)
    music = synth_music(3.0, rng)
    assert len(music) == 48000 and 0.05 < np.sqrt(np.mean(music**2)) < 0.2
    utts = {"en": [np.ones(8000, np.float32)], "de": [np.full(16000, -1.0, np.float32)]}
    b = babble(utts, np.random.default_rng(1), n_streams=4, min_seconds=2.0)
    assert len(b) == 32000 and np.isfinite(b).all()
