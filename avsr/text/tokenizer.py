"""SentencePiece unigram tokenizer for fine-tuning targets (MuAViC recipe).

Trained on the (normalised) target text of the train split: unigram model,
vocabulary 1000 by default, character coverage 1.0, ids bos/pad/eos/unk =
0/1/2/3. A small corpus cannot support 1000 pieces; the vocabulary is then a
soft limit and the trained size is logged. The model file is saved beside the
fine-tuned model as ``tokenizer.model`` so the checkpoint is self-describing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from avsr.errors import UserError
from avsr.io import atomic_write_bytes
from avsr.logging_utils import get_logger

log = get_logger(__name__)

BOS_ID = 0
PAD_ID = 1
EOS_ID = 2
UNK_ID = 3


class Tokenizer:
    """A SentencePiece model held in memory (no file needed after loading)."""

    bos_id = BOS_ID
    pad_id = PAD_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except (RuntimeError, OSError) as exc:
            raise UserError(f"not a SentencePiece model: {exc}") from exc
        ids = (self._sp.bos_id(), self._sp.pad_id(), self._sp.eos_id(), self._sp.unk_id())
        if ids != (BOS_ID, PAD_ID, EOS_ID, UNK_ID):
            raise UserError(f"SentencePiece model has special ids bos/pad/eos/unk={ids}, expected 0/1/2/3")

    def __getstate__(self) -> dict[str, bytes]:
        return {"proto": self._proto}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__init__(state["proto"])  # type: ignore[misc]

    # -- files -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: tokenizer model not found")
        try:
            return cls(path.read_bytes())
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, self._proto)
        return path

    @property
    def model_proto(self) -> bytes:
        return self._proto

    # -- vocabulary --------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_piece(self, i: int) -> str:
        return str(self._sp.id_to_piece(int(i)))

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset((BOS_ID, PAD_ID, EOS_ID))

    # -- text <-> ids ------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text`` (no bos/eos added)."""
        return [int(i) for i in self._sp.encode(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [[int(i) for i in ids] for ids in self._sp.encode(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (bos/pad/eos dropped; no leading or trailing space)."""
        keep = [int(i) for i in ids if int(i) not in (BOS_ID, PAD_ID, EOS_ID)]
        return str(self._sp.decode(keep)).strip()

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 1000,
    character_coverage: float = 1.0,
    out: str | Path | None = None,
) -> Tokenizer:
    """Train a unigram SentencePiece model on ``texts`` (already normalised).

    ``vocab_size`` is a soft limit: a corpus too small for it gets the largest
    vocabulary it supports, and a log line says so.
    """
    import sentencepiece as spm

    lines = [t.strip() for t in texts]
    lines = [t for t in lines if t]
    if not lines:
        raise UserError("tokenizer: no non-empty target text to train on")
    if vocab_size < 8:
        raise UserError(f"tokenizer: vocab_size {vocab_size} is too small (at least 8)")
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=buf,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=character_coverage,
            bos_id=BOS_ID,
            pad_id=PAD_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            normalization_rule_name="identity",
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise UserError(f"tokenizer: SentencePiece training failed: {exc}") from exc
    tok = Tokenizer(buf.getvalue())
    if tok.vocab_size < vocab_size:
        log.info(
            "tokenizer: vocabulary capped at %d pieces (requested %d): %d training lines support no more",
            tok.vocab_size,
            vocab_size,
            len(lines),
        )
    else:
        log.info("tokenizer: %d pieces trained on %d lines", tok.vocab_size, len(lines))
    if out is not None:
        tok.save(out)
    return tok
