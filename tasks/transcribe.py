"""``avsr transcribe VIDEO...``: transcribe (or translate) your own videos.

Each video is preprocessed on the fly (face mesh, mouth ROI, 16 kHz audio), cut
into speech segments at pauses (or fixed windows with ``--segment fixed``) and
decoded in batches by a fine-tuned model; CTC models also give word times::

    avsr transcribe talk.mp4 --model RUN/best
    avsr transcribe a.mp4 b.mp4 --model RUN/st --task translate --format srt --out subs/
    avsr transcribe talk.mp4 --model RUN/best --format json --out talk.json
    avsr transcribe talk.mp4 --model RUN/best --format vtt --av-offset 120

No face: audio-only decoding with a warning (an error with ``--modality av|v``);
segments of an AV video where the face is missing are decoded audio-only and marked.
No audio: video-only decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from avsr.av_offset import parse_av_offset
from avsr.errors import UserError
from avsr.io import atomic_write_text
from avsr.transcript import Transcript, to_srt, to_text, to_vtt
from tasks.cli_args import add_config_arg, add_set_arg, load_task_config
from tasks.ctc_decoding_args import add_ctc_decoding_arguments, ctc_beam_config_from_args

MODEL_ENV = "AVSR_MODEL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "Python API: tasks.transcriber.Transcriber(model_dir).transcribe(video)"
    parser.add_argument(
        "videos", nargs="+", metavar="VIDEO", help="video files (any format PyAV reads)"
    )
    parser.add_argument(
        "--model", metavar="DIR", help=f"fine-tuned model directory (default: ${MODEL_ENV})"
    )
    parser.add_argument(
        "--task",
        choices=["transcribe", "translate"],
        help="checked against the model (default: what the model does)",
    )
    parser.add_argument(
        "--format",
        choices=["text", "txt", "srt", "vtt", "json"],
        default="text",
        help="output format: text/txt (with timestamps), srt, vtt (WebVTT) or json "
        "(segments, word times, modality per segment); default text",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output file (one video, or json/text for many) or folder (srt/vtt for many videos); "
        "default: stdout",
    )
    parser.add_argument(
        "--modality",
        choices=["auto", "av", "a", "v"],
        default="auto",
        help="input used (default auto: AV when face and audio are there)",
    )
    _add_segmenting_arguments(parser)
    _add_decoding_arguments(parser)
    parser.add_argument("--no-timestamps", action="store_true", help="text format: the text only")
    add_config_arg(parser, "preprocessing config (PreprocessConfig fields)", metavar="YAML")
    add_set_arg(parser, "override a preprocessing field (repeatable)")


def _add_segmenting_arguments(parser: argparse.ArgumentParser) -> None:
    """How the media is cut (speech segments or fixed windows) and the A/V offset."""
    parser.add_argument(
        "--segment",
        choices=["vad", "fixed"],
        default="vad",
        help="vad (default): speech segments cut at pauses by voice-activity detection; "
        "fixed: windows of equal length",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest speech segment (vad, default 20) or window length (fixed, default 10)",
    )
    parser.add_argument(
        "--av-offset",
        type=_av_offset_arg,
        default=0.0,
        metavar="auto|MS",
        help="how much the audio lags the lips, in ms (negative: it leads); corrected before "
        "decoding (default 0). auto: estimated from the lips and the audio, corrected when "
        "confident, and reported (json: av_offset_estimate)",
    )


def _add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """Search (beam, joint CTC, CTC LM), batching, device and backend."""
    parser.add_argument("--beam", type=int, default=5, help="beam width (seq2seq models)")
    parser.add_argument(
        "--ctc-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="joint CTC/attention decoding of a seq2seq model with a CTC branch: "
        "score = (1-W) attention + W CTC prefix score (default 0: attention only)",
    )
    add_ctc_decoding_arguments(parser.add_argument_group("CTC decoding"))
    parser.add_argument("--batch-size", type=int, default=8, help="windows decoded together")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="torch (default) or onnx: a CTC model's ONNX export in onnxruntime on the CPU "
        "(write it with 'avsr export onnx')",
    )
    parser.add_argument(
        "--onnx", metavar="FILE", help="ONNX file of --backend onnx (default MODEL/model.onnx)"
    )


def _av_offset_arg(text: str) -> float | str:
    try:
        return parse_av_offset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    from avsr.decoding.ctc_lm import install_ctc_decoder
    from preprocessing.clip import PreprocessConfig
    from tasks.transcriber import Transcriber

    model = args.model or os.environ.get(MODEL_ENV)
    if not model:
        raise UserError(
            f"no model: give --model DIR (a fine-tuned model from 'avsr finetune') or set ${MODEL_ENV}"
        )
    for v in args.videos:
        if not Path(v).is_file():
            raise UserError(f"{v}: video not found")
    pre = load_task_config(PreprocessConfig, args.config, args.overrides)
    tr = Transcriber(
        model,
        device=args.device,
        beam=args.beam,
        batch_size=args.batch_size,
        ctc_weight=args.ctc_weight,
        backend=args.backend, onnx_path=args.onnx,
        preprocess=pre,
    )
    ctc = ctc_beam_config_from_args(args)
    install_ctc_decoder(tr.model, args.decoder or "greedy", ctc, where=model)
    results = tr.transcribe_many(
        args.videos,
        task=args.task,
        window_s=args.window,
        modality=args.modality,
        segment=args.segment,
        av_offset_ms=args.av_offset,
    )
    out = Path(args.out) if args.out else None
    text = _render(results, args, out)
    if text is None:
        return 0
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _render(results: list[Transcript], args: argparse.Namespace, out: Path | None) -> str | None:
    """The text to print or write in ``args.format``; None when subtitle files for several
    videos were written into the folder ``out``."""
    many = len(results) > 1
    if args.format == "json":
        payload = [r.to_dict() for r in results] if many else results[0].to_dict()
        return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if args.format in ("srt", "vtt"):
        write = to_srt if args.format == "srt" else to_vtt
        if many and out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for r in results:
                atomic_write_text(out / f"{Path(r.video).stem}.{args.format}", write(r.segments))
            print(f"wrote {len(results)} subtitle files to {out}", file=sys.stderr)
            return None
        return "\n".join((f"# {r.video}\n" if many else "") + write(r.segments) for r in results)
    parts = []
    for r in results:
        body = to_text(r, timestamps=not args.no_timestamps)
        parts.append(f"# {r.video} ({r.modality})\n{body}" if many else body)
    return "".join(parts)
