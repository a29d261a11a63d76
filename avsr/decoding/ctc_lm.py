"""CTC prefix beam search with an optional word n-gram LM and lexicon (flashlight via torchaudio).

:class:`CTCBeamDecoder` wraps ``torchaudio.models.decoder.ctc_decoder`` (the
flashlight-text beam search, KenLM inside). The decoder's tokens are the
SentencePiece pieces in id order, so its token ids are the model's ids; the
blank is the pad piece.

Word boundaries: SentencePiece marks the start of a word with ``▁`` inside the
piece (``▁take``), so there is no separate word-delimiter token to emit. The
lexicon spells each word with the pieces the tokenizer gives it, and
flashlight's trie ends a word wherever a spelling ends; its ``sil_token`` (an
optional silence between words) is set to the eos piece ``</s>``, which a CTC
model never emits.

Modes:

- no LM, no lexicon: lexicon-free prefix beam search over the pieces;
- LM (ARPA or KenLM binary): lexicon-based search scoring words with the LM.
  Without ``--lexicon`` the lexicon is the LM's unigrams spelled by the
  tokenizer (a binary LM cannot list its words: it needs ``--lexicon`` or ``--vocab``);
- lexicon without LM: the search only outputs lexicon words.

``vocab`` (``--vocab``) is a lexicon given as plain text instead: every distinct word of the
file (for example the training transcripts, ``data/train.wrd``) spelled by the tokenizer.

Vocabulary checks (ARPA only; errors name the files): more than
:data:`MAX_MISSING_SHARE` of the lexicon's words missing from the LM's
unigrams, or of the LM's words not spellable by the tokenizer (a piece would be
``<unk>``: another alphabet, another casing), is an error; any smaller share is
logged as a warning with examples.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avsr.decoding.arpa import is_kenlm_binary, read_arpa
from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.text.tokenizer import EOS_ID, PAD_ID, UNK_ID, Tokenizer

log = get_logger(__name__)

MAX_MISSING_SHARE = 0.1
"""Largest share of lexicon words absent from the LM (or LM words the tokenizer cannot spell)."""
LM_SPECIAL_WORDS = frozenset(("<s>", "</s>", "<unk>"))
DECODERS = ("greedy", "beam")
SEARCH_OPTIONS = ("beam_size", "beam_threshold", "lm_weight", "word_score")
"""Fields of :class:`CTCBeamConfig` passed to ``ctc_decoder`` under the same name."""


@dataclass(kw_only=True)
class CTCBeamConfig:
    """CTC prefix beam search options."""

    beam_size: int = 50
    """Hypotheses kept after each frame."""
    lm: str | None = None
    """KenLM word n-gram model (ARPA or binary); None: no LM."""
    lexicon: str | None = None
    """Lexicon file (``word piece piece ...`` per line); None: lexicon-free, or the LM's words."""
    vocab: str | None = None
    """Text file whose words (split on whitespace) form the lexicon, spelled by the tokenizer;
    instead of ``lexicon``."""
    lm_weight: float = 2.0
    """Weight of the LM log-probability."""
    word_score: float = 0.0
    """Score added per word (insertion bonus; with a lexicon or LM)."""
    beam_threshold: float = 50.0
    """Hypotheses scoring this much below the best are pruned."""


def check_decoder_name(name: str) -> str:
    """``greedy`` or ``beam`` (UserError otherwise)."""
    if name not in DECODERS:
        raise UserError(f"--decoder {name!r}: expected one of {', '.join(DECODERS)}")
    return name


class CTCBeamDecoder:
    """Callable ``(logits (B, T, V), lens (B,)) -> token ids per row``, like ``ctc_greedy_decode``."""

    def __init__(
        self, tokenizer: Tokenizer, config: CTCBeamConfig, *, blank_id: int = PAD_ID
    ) -> None:
        from torchaudio.models.decoder import ctc_decoder

        if config.beam_size < 1:
            raise UserError(f"CTC beam size must be >= 1, got {config.beam_size}")
        self.config = config
        self.blank_id = blank_id
        self.tokens = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
        lexicon = _lexicon(tokenizer, config, set(self.tokens))
        with tempfile.TemporaryDirectory() as tmp:
            lex_file = _write_lexicon(Path(tmp) / "lexicon.txt", lexicon) if lexicon else None
            search = {k: getattr(config, k) for k in SEARCH_OPTIONS}
            blank, sil = self.tokens[blank_id], self.tokens[EOS_ID]
            self._decoder = ctc_decoder(
                lex_file, self.tokens, config.lm, blank_token=blank, sil_token=sil, **search
            )

    def __call__(self, logits: Tensor, lens: Tensor) -> list[list[int]]:
        if logits.shape[-1] != len(self.tokens):
            raise UserError(
                f"CTC logits have {logits.shape[-1]} classes, the tokenizer {len(self.tokens)} pieces"
            )
        emissions = F.log_softmax(logits.float(), dim=-1).cpu().contiguous()
        hyps = self._decoder(emissions, lens.to(torch.int32).cpu())
        drop = {self.blank_id, EOS_ID}
        return [
            [int(i) for i in h[0].tokens.tolist() if int(i) not in drop] if h else [] for h in hyps
        ]


# -- lexicon and vocabulary checks -------------------------------------------------


def _lexicon(
    tokenizer: Tokenizer, config: CTCBeamConfig, tokens: set[str]
) -> dict[str, list[str]] | None:
    """word -> spelling in pieces; None for lexicon-free decoding."""
    if config.lexicon and config.vocab:
        raise UserError("--lexicon and --vocab both give the search's words: give one of them")
    given: dict[str, list[str]] | None = None
    if config.lexicon:
        given = read_lexicon(config.lexicon, tokens)
    elif config.vocab:
        given = read_vocab(tokenizer, config.vocab)
    if config.lm is None:
        return given
    lm = Path(config.lm)
    if not lm.is_file():
        raise UserError(f"{lm}: language model not found")
    if is_kenlm_binary(lm):
        if given is None:
            raise UserError(
                f"{lm}: a KenLM binary cannot list its words: give --lexicon or --vocab (or the ARPA file)"
            )
        return given
    lm_words = read_arpa(lm).unigrams - LM_SPECIAL_WORDS
    if given is not None:
        _check_share(
            sorted(set(given) - lm_words),
            len(given),
            f"{config.lexicon or config.vocab}: lexicon words missing from the LM {lm}",
        )
        return given
    return spell_words(tokenizer, sorted(lm_words), source=str(lm))


def read_vocab(tokenizer: Tokenizer, path: str | Path) -> dict[str, list[str]]:
    """The distinct words of a text file (split on whitespace), spelled by the tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: word list (--vocab) not found")
    words = sorted(set(path.read_text(encoding="utf-8").split()))
    if not words:
        raise UserError(f"{path}: word list (--vocab) has no words")
    return spell_words(tokenizer, words, source=str(path))


def spell_words(tokenizer: Tokenizer, words: list[str], *, source: str) -> dict[str, list[str]]:
    """Each word spelled in pieces by the tokenizer; words with an ``<unk>`` piece left out
    (an error when more than :data:`MAX_MISSING_SHARE` of them)."""
    lexicon: dict[str, list[str]] = {}
    unspellable: list[str] = []
    for word in words:
        ids = tokenizer.encode(word)
        if not ids or UNK_ID in ids:
            unspellable.append(word)
        else:
            lexicon[word] = [tokenizer.id_to_piece(i) for i in ids]
    _check_share(
        unspellable,
        len(words),
        f"{source}: LM words the tokenizer cannot spell (other alphabet or casing?)",
    )
    if not lexicon:
        raise UserError(f"{source}: no word of the LM can be spelled by the tokenizer")
    return lexicon


def read_lexicon(path: str | Path, tokens: set[str]) -> dict[str, list[str]]:
    """A ``word piece piece ...`` file; every piece must be a tokenizer piece."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: lexicon not found")
    lexicon: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise UserError(
                f"{path}:{n}: expected 'word piece [piece ...]', got {line.strip()[:60]!r}"
            )
        bad = [p for p in fields[1:] if p not in tokens]
        if bad:
            raise UserError(f"{path}:{n}: {bad[0]!r} is not a piece of the model's tokenizer")
        lexicon.setdefault(fields[0], fields[1:])
    if not lexicon:
        raise UserError(f"{path}: empty lexicon")
    return lexicon


def _write_lexicon(path: Path, lexicon: dict[str, list[str]]) -> str:
    path.write_text("".join(f"{w} {' '.join(s)}\n" for w, s in lexicon.items()), encoding="utf-8")
    return str(path)


def _check_share(missing: list[str], total: int, what: str) -> None:
    """UserError when ``missing`` is more than :data:`MAX_MISSING_SHARE` of ``total``; else a warning."""
    if not missing:
        return
    share = len(missing) / max(total, 1)
    detail = (
        f"{what}: {len(missing)} of {total} ({100 * share:.0f}%), e.g. {', '.join(missing[:5])}"
    )
    if share > MAX_MISSING_SHARE:
        raise UserError(
            f"{detail} (more than {100 * MAX_MISSING_SHARE:.0f}% is taken as the wrong LM)"
        )
    log.warning("%s", detail)


def install_ctc_decoder(
    model: Any, decoder: str, config: CTCBeamConfig, *, where: str | Path
) -> None:
    """Set the ``ctc_decoder`` of a CTC fine-tuned ``model``: a prefix beam search
    (``decoder`` ``beam``) or None (``greedy``, the best path). UserError for ``beam`` on a
    model without a CTC head (``where`` names it)."""
    check_decoder_name(decoder)
    if decoder == "greedy":
        if config.lm or config.lexicon or config.vocab:
            raise UserError("--lm, --lexicon and --vocab are options of --decoder beam")
        if getattr(model, "ctc_decoder", None) is not None:
            model.ctc_decoder = None
        return
    head = getattr(getattr(model, "config", None), "head", None)
    if head != "ctc" or not hasattr(model, "ctc_decoder"):
        raise UserError(
            f"{where}: --decoder beam is the CTC prefix beam search of a CTC model; this model's "
            f"head is {head!r} (seq2seq models decode by attention beam search: --beam)"
        )
    model.ctc_decoder = CTCBeamDecoder(model.tokenizer, config, blank_id=model.head.blank_id)
