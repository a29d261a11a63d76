from __future__ import annotations

import math

import jiwer
import pytest
import sacrebleu

from avsr.metrics import (
    ALL,
    BleuStats,
    ErrorCounts,
    bleu,
    bleu_signature,
    bleu_stats,
    cer,
    error_counts,
    normalize_for_wer,
    score_by_language,
    wer,
    wer_words,
)

# Multilingual strings with ASCII and Unicode punctuation, non-Latin scripts.
REFS = [
    "The cat sat on the mat.",
    "«Привет», сказал он… Как дела?",
    "Καλημέρα; Τι κάνεις σήμερα;",
    "مرحبا، كيف حالك؟ أنا بخير!",
    "L'homme a vingt-deux ans — n'est-ce pas ?",
    "Der Hund läuft schnell.",
]
HYPS = [
    "the cat sat on a mat",
    "привет сказал она как дела",
    "καλημέρα τι κάνεις",
    "مرحبا كيف حالك انا بخير",
    "l'homme a vingt deux ans n'est-ce pas",
    "der hund lauft schnell heute",
]
LANGS = ["en", "ru", "el", "ar", "fr", "de"]


def test_normalisation_removes_unicode_punctuation_and_lowercases() -> None:
    assert wer_words("«Привет», сказал он… Как дела?") == ["привет", "сказал", "он", "как", "дела"]
    assert wer_words("مرحبا، كيف حالك؟") == ["مرحبا", "كيف", "حالك"]
    assert wer_words("Καλημέρα; Τι κάνεις;") == ["καλημέρα", "τι", "κάνεις"]
    # intra-word apostrophe / hyphen stay, a dash token disappears
    assert wer_words("L'homme — vingt-deux !") == ["l'homme", "vingt-deux"]
    assert wer_words("...  ,, !") == []


def test_wer_equals_jiwer_on_normalised_strings() -> None:
    nrefs = [normalize_for_wer(r) for r in REFS]
    nhyps = [normalize_for_wer(h) for h in HYPS]
    expected = 100.0 * jiwer.wer(nrefs, nhyps)
    assert wer(REFS, HYPS) == pytest.approx(expected, abs=1e-9)
    out = jiwer.process_words(nrefs, nhyps)
    c = error_counts(REFS, HYPS)
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (
        out.substitutions,
        out.deletions,
        out.insertions,
        out.hits,
    )
    assert c.ref_words == sum(len(r.split()) for r in nrefs)
    assert cer(REFS, HYPS) == pytest.approx(100.0 * jiwer.cer(nrefs, nhyps), abs=1e-9)


def test_wer_on_clean_strings_equals_jiwer_directly() -> None:
    refs = ["привет как дела", "καλημέρα τι κάνεις", "مرحبا كيف حالك"]
    hyps = ["привет как", "καλημέρα τι κάνει σήμερα", "مرحبا حالك"]
    assert wer(refs, hyps) == pytest.approx(100.0 * jiwer.wer(refs, hyps), abs=1e-9)
    assert cer(refs, hyps) == pytest.approx(100.0 * jiwer.cer(refs, hyps), abs=1e-9)


def test_bleu_equals_sacrebleu_corpus_bleu() -> None:
    for refs, hyps in [(REFS, HYPS), (REFS, REFS), (REFS[:3], HYPS[:3])]:
        assert bleu(refs, hyps) == pytest.approx(
            sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9
        )
    sig = bleu_signature()
    assert "tok:13a" in sig and "case:mixed" in sig and "nrefs:1" in sig


def test_bleu_stats_combine_exactly() -> None:
    a = bleu_stats(REFS[:3], HYPS[:3])
    b = bleu_stats(REFS[3:], HYPS[3:])
    assert (a + b).score == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9)
    again = BleuStats.from_dict((a + b).to_dict())
    assert again.score == (a + b).score


def test_counts_combine_and_round_trip() -> None:
    a = error_counts(REFS[:2], HYPS[:2])
    b = error_counts(REFS[2:], HYPS[2:])
    assert (a + b) == error_counts(REFS, HYPS)
    assert ErrorCounts.from_dict((a + b).to_dict()) == a + b


def test_per_language_aggregation() -> None:
    scores = score_by_language(REFS, HYPS, LANGS, with_bleu=True)
    assert set(scores) == set(LANGS) | {ALL}
    for i, lang in enumerate(LANGS):
        assert scores[lang].counts.wer == pytest.approx(wer([REFS[i]], [HYPS[i]]))
    assert scores[ALL].counts == error_counts(REFS, HYPS)
    assert scores[ALL].bleu is not None
    assert scores[ALL].bleu.score == pytest.approx(
        sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9
    )
    assert scores["ru"].bleu is not None
    assert scores["ru"].bleu.score == pytest.approx(
        sacrebleu.corpus_bleu([HYPS[1]], [[REFS[1]]]).score
    )


def test_edge_cases() -> None:
    # empty reference after normalisation: every hypothesis word is an insertion
    c = error_counts(["..."], ["hello world"])
    assert c.insertions == 2 and c.ref_words == 0 and math.isnan(c.wer)
    c = error_counts(["a b"], [""])
    assert c.deletions == 2 and c.wer == 100.0
    with pytest.raises(ValueError):
        error_counts(["a"], [])
    assert math.isnan(bleu_stats([], []).score)
