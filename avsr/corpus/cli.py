"""``avsr corpus build``: the embedded multilingual talking-face corpus."""

from __future__ import annotations

import argparse

from avsr.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    b = sub.add_parser(
        "build",
        help="build a corpus folder (clips.tsv, raw/, alignments/, noise/, corpus.json)",
        description="Build the corpus deterministically from --seed. tiny: 8 clips per language "
        "(CI); small: >= 30 min of speech over all languages (demo).",
    )
    b.add_argument("--out", required=True, help="output folder (new, or an unfinished build of the same settings)")
    b.add_argument("--size", choices=["tiny", "small"], default=None, help="corpus size (default tiny)")
    b.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    b.add_argument("--hours", type=float, default=None, help="total hours of speech (overrides the size's clip counts)")
    b.add_argument("--langs", nargs="+", default=None, metavar="LANG",
                   help="languages (default: en ar de el es fr it pt ru)")
    b.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    b.add_argument("--config", default=None, help="YAML config (CorpusConfig); flags override it")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "verb", None) != "build":
        print("avsr corpus: give a verb: build (see --help)")
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
