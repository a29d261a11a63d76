"""CTC decoding flags shared by ``avsr evaluate`` and ``avsr transcribe``: greedy or prefix
beam search with an optional KenLM word n-gram LM and lexicon."""

from __future__ import annotations

import argparse
from typing import Any

from avsr.decoding.ctc_lm import DECODERS, CTCBeamConfig

CTC_FLAGS = {
    "decoder": "decoder",
    "ctc_beam": "ctc.beam_size",
    "lm": "ctc.lm",
    "lexicon": "ctc.lexicon",
    "vocab": "ctc.vocab",
    "lm_weight": "ctc.lm_weight",
    "word_score": "ctc.word_score",
}
"""CLI flag -> field of the evaluation config, dotted for ``ctc.*`` (flags left out keep
the config's value)."""


def add_ctc_decoding_arguments(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--decoder``, ``--ctc-beam``, ``--lm``, ``--lexicon``, ``--vocab``, ``--lm-weight``, ``--word-score``
    (all default None: the config's or :class:`CTCBeamConfig`'s value)."""
    d = CTCBeamConfig()
    g.add_argument(
        "--decoder",
        choices=DECODERS,
        help="CTC models: greedy best path (default) or prefix beam search (optionally with --lm)",
    )
    g.add_argument(
        "--ctc-beam", type=int, metavar="N", help=f"CTC prefix beam size (default {d.beam_size})"
    )
    g.add_argument(
        "--lm", metavar="FILE", help="KenLM word n-gram LM, ARPA or binary (--decoder beam)"
    )
    g.add_argument(
        "--lexicon",
        metavar="FILE",
        help="'word piece piece ...' per line, pieces of the model's tokenizer "
        "(default: the ARPA LM's words spelled by the tokenizer; needed with a binary LM)",
    )
    g.add_argument(
        "--vocab",
        metavar="FILE",
        help="the search outputs only the words of this text file, spelled by the model's "
        "tokenizer (for example the training transcripts, data/train.wrd; instead of --lexicon)",
    )
    g.add_argument(
        "--lm-weight", type=float, metavar="W", help=f"LM weight (default {d.lm_weight})"
    )
    g.add_argument(
        "--word-score",
        type=float,
        metavar="S",
        help=f"word insertion bonus (default {d.word_score})",
    )


def ctc_beam_config_from_args(args: argparse.Namespace) -> CTCBeamConfig:
    """:class:`CTCBeamConfig` of the flags given (defaults for the others)."""
    cfg = CTCBeamConfig()
    for flag, fieldname in CTC_FLAGS.items():
        value = getattr(args, flag, None)
        if fieldname.startswith("ctc.") and value is not None:
            setattr(cfg, fieldname.removeprefix("ctc."), value)
    return cfg


def set_field(cfg: Any, dotted: str, value: Any) -> None:
    """``setattr`` along a dotted path (``ctc.lm``)."""
    *parents, name = dotted.split(".")
    for part in parents:
        cfg = getattr(cfg, part)
    setattr(cfg, name, value)
