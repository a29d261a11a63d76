"""``avsr corpus build``: the embedded multilingual talking-face corpus."""

from __future__ import annotations

import argparse

from avsr.errors import UserError


def _shared(p: argparse.ArgumentParser, out_help: str, hours_help: str, seed_default: int) -> None:
    """The options ``build`` and ``speech`` share."""
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--hours", type=float, default=None, help=hours_help)
    p.add_argument("--seed", type=int, default=None, help=f"random seed of voices, sentences, rendering (default {seed_default})")
    p.add_argument("--langs", nargs="+", default=None, metavar="LANG", help="languages (default: en ar de el es fr it pt ru)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    b = sub.add_parser(
        "build",
        help="build a corpus folder (clips.tsv, raw/, alignments/, noise/, corpus.json)",
        description="Build the corpus deterministically from --seed. tiny: 8 clips per language "
        "(CI); small: >= 30 min of speech over all languages (demo).",
    )
    _shared(b, "output folder (new, or an unfinished build of the same settings)",
            "total hours of speech (overrides the size's clip counts)", 0)
    b.add_argument("--size", choices=["tiny", "small"], default=None, help="corpus size (default tiny)")
    b.add_argument("--config", default=None, help="YAML config (CorpusConfig); flags override it")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable")
    sp = sub.add_parser(
        "speech",
        help="audio-only speech of the corpus's training speakers (pretraining a stand-in encoder)",
        description="Synthesise HOURS of speech from the training speakers of every language (no video, "
        "no valid/test speakers) into a data folder (audio/, train/valid manifests) for `avsr pretrain --stage0`.",
    )
    _shared(sp, "output folder (a rerun completes an unfinished one)", "hours of speech over all languages (default 2)", 1000)


def main(args: argparse.Namespace) -> int:
    verb = getattr(args, "verb", None)
    if verb == "speech":
        return _speech(args)
    if verb != "build":
        print("avsr corpus: give a verb: build or speech (see --help)")
        return 2
    from avsr.config import ConfigError, load_config
    from avsr.corpus.build import CorpusConfig, build

    try:
        cfg = load_config(CorpusConfig, args.config, args.overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    for name in ("size", "seed", "hours", "langs", "workers"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    meta = build(cfg, args.out)
    print(f"corpus: {meta['total_clips']} clips, {meta['total_speech_seconds'] / 60:.1f} min of speech, "
          f"{len(meta['languages'])} languages -> {args.out}")
    return 0


def _speech(args: argparse.Namespace) -> int:
    from avsr.corpus.speech_only import SpeechCorpusConfig, build_speech, with_overrides

    cfg = with_overrides(SpeechCorpusConfig(), hours=args.hours, seed=args.seed, langs=args.langs, workers=args.workers)
    meta = build_speech(cfg, args.out)
    print(f"speech: {meta['clips']} clips ({meta['valid_clips']} valid), {meta['hours']} h, "
          f"{meta['speakers']} speakers -> {args.out}")
    return 0
