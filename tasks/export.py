"""``avsr export onnx``: a fine-tuned AV CTC model as an ONNX graph for onnxruntime.

Example::

    avsr export onnx --model RUN/model --out RUN/model/model.onnx
    avsr transcribe talk.mp4 --model RUN/model --backend onnx

The graph takes one clip (audio, mouth ROI video, stream weights; dynamic length) and
returns CTC logits; after writing it, the export compares onnxruntime with PyTorch on
two example clips. Seq2seq models are not exported (their decoder stays in PyTorch).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = sub.add_parser("onnx", help="encoder + CTC head as ONNX (onnxruntime-checked)")
    onnx.add_argument("--model", required=True, type=Path, help="fine-tuned CTC model directory")
    onnx.add_argument(
        "--out", type=Path, help="ONNX file to write (default MODEL/model.onnx, where --backend onnx looks)"
    )
    onnx.add_argument(
        "--seconds", type=float, default=2.0, help="length of the example clip traced (default 2)"
    )
    onnx.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest |logit| difference accepted (default 1e-4)"
    )
    onnx.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


def main(args: argparse.Namespace) -> int:
    from avsr.models.onnx_export import export_onnx
    from avsr.runtime import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    out = args.out or model_dir / "model.onnx"
    report = export_onnx(
        model_dir, out, seconds=args.seconds, check=() if args.no_check else (1.0, 3.0), tolerance=args.tolerance
    )
    checked = "not checked" if args.no_check else f"max |logit diff| vs PyTorch {report.max_abs_diff:.2e}"
    print(f"wrote {report.path} ({checked})")
    return 0
