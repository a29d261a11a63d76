"""``avsr model info ARCH|PATH``, ``avsr model convert SRC DST`` and the HF CTC interop verbs
``avsr model export-hf FINETUNED_DIR HF_DIR`` / ``avsr model import-hf HF_DIR FINETUNED_DIR``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from avsr.checkpoint import is_model_dir
from avsr.errors import UserError
from avsr.logging_utils import get_logger


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = sub.add_parser(
        "info",
        help="shape and parameter counts of an arch name or a checkpoint",
        description="Shape and parameter counts of an encoder arch (built on the meta device, instant) "
        "or of a checkpoint (project dir, HF dir, fairseq1 .pt).",
    )
    info.add_argument(
        "source",
        metavar="ARCH|PATH",
        help="arch name (xlsr_300m, xlsr_1b, xlsr_2b, w2v2_base, w2v2_large, w2v2_large_lv60, "
        "xlsr_53, mms_300m, mms_1b, w2vbert_2, tiny) or a checkpoint",
    )
    info.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    _copy_verb(
        sub,
        "convert",
        help="write a checkpoint (HF dir, fairseq1 .pt) in the project format",
        description="Load SRC (HF transformers dir, fairseq1 .pt, project dir) once, write DST as a "
        "project model dir (model.safetensors + config.yaml, kind 'encoder').",
        src_help="source checkpoint",
        dst_help="output model dir",
    )
    _copy_verb(
        sub,
        "export-hf",
        help="write an audio-only CTC fine-tuned model as an HF Wav2Vec2ForCTC dir",
        description="Export a fine-tuned audio-only CTC model (project dir, kind 'finetuned') to an "
        "HF transformers directory: Wav2Vec2ForCTC weights + config.json, a Wav2Vec2CTCTokenizer "
        "vocab.json (the SentencePiece pieces, '\u2581' written as a space) and "
        "preprocessor_config.json. See docs/encoders.md.",
        src_help="fine-tuned model dir (CTC head, modalities [audio])",
        dst_help="output HF dir",
    )
    _copy_verb(
        sub,
        "import-hf",
        help="read an HF Wav2Vec2ForCTC dir (char vocab) as a project CTC model",
        description="Import an HF Wav2Vec2ForCTC directory with its character vocab.json as a "
        "project fine-tuned model dir (audio-only AV encoder + CTC head + SentencePiece char "
        "tokenizer; same logits up to the id order, same greedy transcripts).",
        src_help="HF dir (config.json, weights, vocab.json)",
        dst_help="output fine-tuned model dir",
    )


def _copy_verb(
    sub: Any, name: str, *, help: str, description: str, src_help: str, dst_help: str
) -> None:
    """A verb that reads SRC and writes the directory DST (``--force`` to overwrite)."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("src", type=Path, help=src_help)
    p.add_argument("dst", type=Path, help=dst_help)
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")


def _counts(enc: Any) -> dict[str, int]:
    """Parameter counts of the parts of an encoder (the loaders are imported lazily)."""

    def n(module: Any) -> int:
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    fe = enc.frontend
    return {
        "feature_extractor": n(getattr(fe, "feature_extractor", None)),
        "frontend": n(fe),
        "encoder": n(enc.encoder),
        "mask_emb": enc.mask_emb.numel(),
        "total (front end + encoder)": enc.num_parameters(),
    }


def _info(args: argparse.Namespace) -> int:
    from avsr.models.encoders import family_for_arch, family_of, load_encoder

    src = args.source
    family = family_for_arch(src)
    if family is not None and not Path(src).exists():
        enc = family.build(src, device="meta")
        origin = "arch (meta device, no weights)"
    else:
        enc = load_encoder(src)
        family = family_of(enc)
        origin = str(src)
    cfg = enc.config
    info = {
        "source": origin,
        "family": family.name,
        "arch": cfg.arch,
        "layers": cfg.num_layers,
        "model_dim": cfg.model_dim,
        "ffn_dim": cfg.ffn_dim,
        "heads": cfg.num_heads,
        "feature_dim": cfg.feature_dim,
        **family.describe(cfg),
        "parameters": _counts(enc),
    }
    return _print_info(args, info)


def _print_info(args: argparse.Namespace, info: dict[str, Any]) -> int:
    counts = info["parameters"]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "parameters":
            continue
        print(f"{key:15s} {value}")
    print("parameters:")
    for key, value in counts.items():
        print(f"  {key:28s} {value:>14,d}  ({value / 1e6:.2f}M)")
    return 0


def _check_dst(dst: Path, force: bool) -> None:
    occupied = dst.is_file() or (dst.is_dir() and any(dst.iterdir()))
    if occupied and not force:
        what = "already a model dir" if is_model_dir(dst) else "exists and is not empty"
        raise UserError(f"{dst}: {what} (use --force to overwrite)")
    if dst.is_file():
        raise UserError(f"{dst}: is a file; the output is a directory")


def _export_hf(args: argparse.Namespace) -> int:
    from avsr.models.finetuned import is_finetuned_dir, load_finetuned
    from avsr.models.hf_ctc import export_hf_ctc

    if not is_finetuned_dir(args.src):
        raise UserError(f"{args.src}: not a fine-tuned model dir (kind 'finetuned')")
    _check_dst(args.dst, args.force)
    export_hf_ctc(load_finetuned(args.src), args.dst)
    print(args.dst)
    return 0


def _import_hf(args: argparse.Namespace) -> int:
    from avsr.models.finetuned import save_finetuned
    from avsr.models.hf_ctc import load_hf_ctc

    _check_dst(args.dst, args.force)
    save_finetuned(load_hf_ctc(args.src), args.dst)
    print(args.dst)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from avsr.models.encoders import load_encoder, save_encoder

    _check_dst(args.dst, args.force)
    enc = load_encoder(args.src)
    save_encoder(enc, args.dst)
    get_logger(__name__).info(
        "wrote %s encoder (%.2fM parameters) to %s",
        enc.config.arch,
        enc.num_parameters() / 1e6,
        args.dst,
    )
    print(args.dst)
    return 0


def main(args: argparse.Namespace) -> int:
    if args.verb == "info":
        return _info(args)
    if args.verb == "export-hf":
        return _export_hf(args)
    if args.verb == "import-hf":
        return _import_hf(args)
    return _convert(args)
