from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from avsr.errors import UserError
from avsr.text import Tokenizer, normalize_target, train_tokenizer

# Two sentences per MuAViC language, in its own script.
SENTENCES: dict[str, list[str]] = {
    "en": ["The quick brown fox jumps over the lazy dog.", "We don't stop here, do we?"],
    "ar": ["مرحبا بكم في هذا الحديث", "شكرا جزيلا على الاستماع"],
    "de": ["Über die Brücke gehen wir morgen früh.", "Das Mädchen heißt Jürgen, nicht Käthe!"],
    "el": ["Καλημέρα σας, πώς είστε σήμερα;", "Ο κόσμος είναι μεγάλος και όμορφος."],
    "es": ["¿Dónde está la estación de tren?", "El niño comió una manzana ayer."],
    "fr": ["C'est une très belle journée à Paris.", "Où sont les élèves aujourd'hui ?"],
    "it": ["Perché non vieni con noi stasera?", "La città è piena di gente già."],
    "pt": ["A informação está disponível amanhã.", "Não sei se você vai ao coração."],
    "ru": ["Привет, как у тебя дела сегодня?", "Съешь же ещё этих мягких французских булок."],
}


def _all_texts(mode: str) -> list[str]:
    return [normalize_target(s, mode) for lang in SENTENCES for s in SENTENCES[lang]]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(_all_texts("asr") * 3, vocab_size=1000)


def test_special_ids(tok: Tokenizer) -> None:
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert [tok.id_to_piece(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_round_trip_every_language(tok: Tokenizer, lang: str) -> None:
    for sent in SENTENCES[lang]:
        norm = normalize_target(sent, "asr")
        ids = tok.encode(norm)
        assert ids and tok.unk_id not in ids
        assert all(i >= 4 for i in ids)
        assert tok.decode(ids) == norm
        # bos/eos/pad around the ids are ignored by decode
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == norm


def test_round_trip_translation_mode_keeps_case_and_punctuation() -> None:
    tok = train_tokenizer(_all_texts("st"), vocab_size=1000)
    for lang in SENTENCES:
        for sent in SENTENCES[lang]:
            assert tok.decode(tok.encode(normalize_target(sent, "st"))) == sent


def test_vocab_capped_with_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="avsr.text.tokenizer"):
        tok = train_tokenizer(["a small corpus", "another line"], vocab_size=1000)
    assert 4 < tok.vocab_size < 1000
    assert any("capped" in r.getMessage() for r in caplog.records)


def test_save_load_and_pickle(tok: Tokenizer, tmp_path: Path) -> None:
    path = tok.save(tmp_path / "tokenizer.model")
    again = Tokenizer.load(path)
    text = normalize_target(SENTENCES["el"][0])
    assert again.encode(text) == tok.encode(text)
    assert pickle.loads(pickle.dumps(tok)).encode(text) == tok.encode(text)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no non-empty"):
        train_tokenizer(["", "  "])
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="tokenizer.model"):
        Tokenizer.load(bad)
    with pytest.raises(UserError, match="not found"):
        Tokenizer.load(tmp_path / "missing.model")


def test_normalize_asr_and_st() -> None:
    assert normalize_target("  Hello,   World!  ") == "hello world"
    assert normalize_target("We don't — stop.") == "we don't stop"
    assert normalize_target("ΟΔΟΣ") == "οδος"  # final sigma
    assert normalize_target("¿Dónde?") == "dónde"
    assert normalize_target("«Привет»,  мир…") == "привет мир"
    assert normalize_target("Hello,  World!", "st") == "Hello, World!"
    assert normalize_target("ﬁne", "asr") == "fine"  # NFKC
    with pytest.raises(ValueError):
        normalize_target("x", "bogus")  # type: ignore[arg-type]
