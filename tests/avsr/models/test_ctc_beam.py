"""CTC prefix beam search with a word n-gram LM (avsr.decoding): search, LM, checks, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.cli import main
from avsr.data import make_synthetic_av_data
from avsr.decoding.arpa import read_arpa
from avsr.decoding.ctc_lm import CTCBeamConfig, CTCBeamDecoder, install_ctc_decoder
from avsr.errors import UserError
from avsr.models.heads.ctc import ctc_greedy_decode
from avsr.text import Tokenizer, train_tokenizer
from preprocessing.synthetic import write_video
from tests.helpers.arpa import write_arpa

WORDS = "red blue green set bin now place lay at by with please soon again".split()
BLANK = 1


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """A tokenizer whose pieces are whole words (``▁red``) plus letters."""
    texts = [" ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(5)) for i in range(60)]
    return train_tokenizer(texts, vocab_size=60)


def _logits(tok: Tokenizer, frames: list[dict[str, float]]) -> torch.Tensor:
    """(1, T, V) log-probabilities: each frame's given piece probabilities, the rest on blank."""
    pieces = {tok.id_to_piece(i): i for i in range(tok.vocab_size)}
    probs = torch.full((1, len(frames), tok.vocab_size), 1e-6)
    for t, frame in enumerate(frames):
        for piece, p in frame.items():
            probs[0, t, pieces[piece]] = p
        probs[0, t, BLANK] = max(1e-6, 1.0 - sum(frame.values()))
    return probs.log()


def _word_frames(tok: Tokenizer, text: str) -> list[dict[str, float]]:
    """Peaked frames spelling ``text`` (each piece, then a blank)."""
    out: list[dict[str, float]] = []
    for i in tok.encode(text):
        out += [{tok.id_to_piece(i): 0.98}, {}]
    return out


def test_beam_without_lm_equals_greedy_on_peaked_logits(tok: Tokenizer) -> None:
    torch.manual_seed(0)
    dec = CTCBeamDecoder(tok, CTCBeamConfig(beam_size=8))
    for n in range(5):
        text = " ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(2 + n))
        logits = _logits(tok, _word_frames(tok, text)) + 0.01 * torch.randn(1, 1, tok.vocab_size)
        lens = torch.tensor([logits.shape[1]])
        assert dec(logits, lens) == ctc_greedy_decode(logits, lens, blank_id=BLANK)
        assert tok.decode(dec(logits, lens)[0]) == text


def test_lm_changes_the_decision_when_acoustics_are_ambiguous(
    tok: Tokenizer, tmp_path: Path
) -> None:
    # "set ? now": the acoustics slightly prefer "red" to "blue"
    frames = (
        _word_frames(tok, "set") + [{"▁red": 0.5, "▁blue": 0.45}, {}] + _word_frames(tok, "now")
    )
    logits = _logits(tok, frames)
    lens = torch.tensor([logits.shape[1]])
    assert tok.decode(ctc_greedy_decode(logits, lens, blank_id=BLANK)[0]) == "set red now"
    beam = CTCBeamDecoder(tok, CTCBeamConfig(beam_size=8))
    assert tok.decode(beam(logits, lens)[0]) == "set red now"
    for said in ("blue", "red"):
        lm = write_arpa(
            [f"set {said} now"] * 5 + ["lay green soon", "place bin again"],
            tmp_path / f"{said}.arpa",
        )
        dec = CTCBeamDecoder(tok, CTCBeamConfig(beam_size=8, lm=str(lm), lm_weight=2.0))
        assert tok.decode(dec(logits, lens)[0]) == f"set {said} now"


def test_vocab_keeps_the_search_to_the_files_words(tok: Tokenizer, tmp_path: Path) -> None:
    # "set ? now": the acoustics slightly prefer "red", which the word list does not have
    frames = (
        _word_frames(tok, "set") + [{"▁red": 0.5, "▁blue": 0.45}, {}] + _word_frames(tok, "now")
    )
    logits = _logits(tok, frames)
    lens = torch.tensor([logits.shape[1]])
    words = tmp_path / "train.wrd"
    words.write_text("set blue now\nlay green soon\n\n")
    dec = CTCBeamDecoder(tok, CTCBeamConfig(beam_size=8, vocab=str(words)))
    assert tok.decode(dec(logits, lens)[0]) == "set blue now"
    words.write_text("set red blue now\n")
    dec = CTCBeamDecoder(tok, CTCBeamConfig(beam_size=8, vocab=str(words)))
    assert tok.decode(dec(logits, lens)[0]) == "set red now"


def test_vocab_errors_name_the_file(tok: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing.wrd: word list .--vocab. not found"):
        CTCBeamDecoder(tok, CTCBeamConfig(vocab=str(tmp_path / "missing.wrd")))
    empty = tmp_path / "empty.wrd"
    empty.write_text("\n  \n")
    with pytest.raises(UserError, match="empty.wrd: word list .--vocab. has no words"):
        CTCBeamDecoder(tok, CTCBeamConfig(vocab=str(empty)))
    upper = tmp_path / "upper.wrd"
    upper.write_text("SET RED NOW\n")
    with pytest.raises(UserError, match="upper.wrd.*cannot spell"):
        CTCBeamDecoder(tok, CTCBeamConfig(vocab=str(upper)))
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("set ▁set\n")
    both = CTCBeamConfig(vocab=str(tmp_path / "x.wrd"), lexicon=str(lexicon))
    with pytest.raises(UserError, match="--lexicon and --vocab both give"):
        CTCBeamDecoder(tok, both)
    # words the LM does not know
    lm = write_arpa(["set red now"], tmp_path / "lm.arpa")
    other = tmp_path / "other.wrd"
    other.write_text("lay green soon please\n")
    with pytest.raises(UserError, match="other.wrd: lexicon words missing from the LM"):
        CTCBeamDecoder(tok, CTCBeamConfig(vocab=str(other), lm=str(lm)))


def test_arpa_writer_output_is_read_back(tmp_path: Path) -> None:
    lm = write_arpa(["set red now", "set blue now", "lay red soon"], tmp_path / "lm.arpa")
    summary = read_arpa(lm)
    assert summary.order == 3
    assert {"set", "red", "now", "<s>", "</s>", "<unk>"} <= summary.unigrams


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world\n", "expected '\\data\\'"),
        ("\\data\\\nngram one=3\n", "bad ARPA header line"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tred\n\n\\end\\\n", "announces 2 unigrams"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\nred -1.0\n\n\\end\\\n", "bad unigram entry"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tred\n", "truncated"),
    ],
)
def test_bad_arpa_is_an_error_naming_the_file(
    tok: Tokenizer, tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text(text)
    with pytest.raises(UserError, match="bad.arpa") as err:
        CTCBeamDecoder(tok, CTCBeamConfig(lm=str(bad)))
    assert message in str(err.value)


def test_lm_vocabulary_mismatch_is_an_error(tok: Tokenizer, tmp_path: Path) -> None:
    # an upper-case LM: the lower-case tokenizer spells none of its words
    upper = write_arpa(["SET RED NOW", "LAY BLUE SOON"], tmp_path / "upper.arpa")
    with pytest.raises(UserError, match="upper.arpa.*cannot spell"):
        CTCBeamDecoder(tok, CTCBeamConfig(lm=str(upper)))
    # a lexicon whose words the LM does not know
    lm = write_arpa(["set red now"], tmp_path / "lm.arpa")
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(
        "".join(f"{w} ▁{w}\n" for w in ("set", "red", "now", "blue", "green", "soon"))
    )
    with pytest.raises(UserError, match="lexicon.txt: lexicon words missing from the LM"):
        CTCBeamDecoder(tok, CTCBeamConfig(lm=str(lm), lexicon=str(lexicon)))
    # a lexicon spelled in pieces the tokenizer does not have
    lexicon.write_text("set s e t |\n")
    with pytest.raises(UserError, match="lexicon.txt:1: '|' is not a piece"):
        CTCBeamDecoder(tok, CTCBeamConfig(lexicon=str(lexicon)))


def test_binary_lm_needs_a_lexicon(tok: Tokenizer, tmp_path: Path) -> None:
    fake = tmp_path / "lm.bin"
    fake.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0\0")
    with pytest.raises(UserError, match="lm.bin: a KenLM binary cannot list its words"):
        CTCBeamDecoder(tok, CTCBeamConfig(lm=str(fake)))


def test_beam_on_a_seq2seq_model_is_an_error(tok: Tokenizer) -> None:
    class S2S:
        class config:  # noqa: N801
            head = "s2s"

        ctc_decoder = None

    with pytest.raises(UserError, match="m1: --decoder beam is the CTC prefix beam search"):
        install_ctc_decoder(S2S(), "beam", CTCBeamConfig(), where="m1")
    with pytest.raises(UserError, match="--lm, --lexicon and --vocab are options of --decoder beam"):
        install_ctc_decoder(S2S(), "greedy", CTCBeamConfig(lm="x.arpa"), where="m1")


def _evaluate(model: Path, manifest: Path, out: Path, *extra: str) -> dict:
    argv = [
        "evaluate", "--model", str(model), "--manifest", str(manifest), "--snr", "clean",
        "--modality", "a", "--device", "cpu", "--workers", "0", "--no-plots", "--out", str(out), *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_evaluate_cli_flags(
    tiny_finetuned_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = make_synthetic_av_data(
        tmp_path / "data", n_clips=3, split="test", min_frames=10, max_frames=20
    )
    greedy = _evaluate(tiny_finetuned_dir, manifest, tmp_path / "g")
    explicit = _evaluate(tiny_finetuned_dir, manifest, tmp_path / "g2", "--decoder", "greedy")
    assert greedy == {**explicit, "model": greedy["model"]}
    assert "decoder" not in greedy["config"]  # the default leaves results.json as it was
    texts = [
        ln.split("\t")[2]
        for ln in (tmp_path / "g" / "hyps" / "clean.a.tsv").read_text().splitlines()[1:]
    ]
    lm = write_arpa(texts, tmp_path / "refs.arpa")
    beam = _evaluate(
        tiny_finetuned_dir, manifest, tmp_path / "b",
        "--decoder", "beam", "--ctc-beam", "4", "--lm", str(lm), "--lm-weight", "0.5", "--word-score", "1",
    )  # fmt: skip
    cfg = beam["config"]
    assert cfg["decoder"] == "beam" and cfg["ctc"] == {
        "beam_size": 4,
        "lm": str(lm),
        "lexicon": None,
        "vocab": None,
        "lm_weight": 0.5,
        "word_score": 1.0,
        "beam_threshold": 50.0,
    }
    words = tmp_path / "refs.wrd"
    words.write_text("\n".join(texts) + "\n")
    lexical = _evaluate(
        tiny_finetuned_dir, manifest, tmp_path / "v", "--decoder", "beam", "--vocab", str(words)
    )
    assert lexical["config"]["ctc"]["vocab"] == str(words)
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an lm\n")
    argv = ["evaluate", "--model", str(tiny_finetuned_dir), "--manifest", str(manifest), "--snr", "clean",
            "--modality", "a", "--device", "cpu", "--out", str(tmp_path / "x"), "--decoder", "beam", "--lm", str(bad)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    assert "bad.arpa" in capsys.readouterr().err


def test_transcribe_cli_flags(
    tiny_finetuned_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "noface.mp4"
    write_video(video, np.full((20, 120, 160, 3), 110, np.uint8), 25)  # audio, no face
    lm = write_arpa(["a b c", "b c a"], tmp_path / "lm.arpa")
    common = [
        "transcribe",
        str(video),
        "--model",
        str(tiny_finetuned_dir),
        "--device",
        "cpu",
        "--format",
        "json",
    ]
    assert main([*common, "--out", str(tmp_path / "g.json")]) == 0
    argv = [*common, "--decoder", "beam", "--ctc-beam", "4", "--out", str(tmp_path / "b.json")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "b.json").read_text())["modality"] == "a"
    capsys.readouterr()
    assert main([*common, "--lm", str(lm), "--out", str(tmp_path / "x.json")]) == 2
    assert "--lm, --lexicon and --vocab are options of --decoder beam" in capsys.readouterr().err
