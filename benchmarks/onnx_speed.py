"""PyTorch vs onnxruntime on the CPU for a fine-tuned AV CTC model: speed and agreement.

Exports ``--model`` with ``avsr export onnx`` (into a temporary folder), then

- times the encoder + CTC head on random clips of ``--seconds`` (median of ``--repeat``
  runs after one warm-up, ``--threads`` intra-op threads for both backends) and prints
  milliseconds per clip and the real-time factor of each backend side by side;
- decodes the first ``--clips`` clips of the ``test`` split of ``--data`` (AV input)
  with both backends: max |logit difference| and how many greedy transcripts agree.

Run: ``.venv/bin/python benchmarks/onnx_speed.py --model MODEL [--data DATA]``
(``--data`` default ``MODEL/../../data``, the demo layout).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from avsr.data import AVDataset, DataConfig, collate
from avsr.models.finetuned import load_finetuned
from avsr.models.heads.ctc import ctc_greedy_decode
from avsr.models.onnx_ctc import open_session, run_logits
from avsr.models.onnx_export import example_inputs, export_onnx, torch_logits


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def speed_table(model: object, session: object, seconds: list[float], repeat: int) -> None:
    print("| clip (s) | PyTorch ms | onnxruntime ms | PyTorch RTF | onnxruntime RTF | speed-up | max abs logit diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for sec in seconds:
        audio, video = example_inputs(model, sec)  # type: ignore[arg-type]
        a_np, v_np = audio.numpy(), video.numpy()
        t_pt = median_ms(lambda a=audio, v=video: torch_logits(model, a, v), repeat)  # type: ignore[arg-type,misc]
        t_ort = median_ms(lambda a=a_np, v=v_np: run_logits(session, a, v), repeat)  # type: ignore[misc]
        diff = np.abs(torch_logits(model, audio, video).numpy() - run_logits(session, a_np, v_np)).max()  # type: ignore[arg-type]
        print(f"| {sec:g} | {t_pt:.1f} | {t_ort:.1f} | {t_pt / 1000 / sec:.3f} | "
              f"{t_ort / 1000 / sec:.3f} | {t_pt / t_ort:.2f}x | {diff:.2e} |")


def agreement(model: object, session: object, data: Path, clips: int) -> None:
    cfg = model.data_config  # type: ignore[attr-defined]
    ds = AVDataset(data / "test.tsv", DataConfig(crop_size=cfg.get("crop_size", 88), image_size=cfg.get("image_size")), train=False)
    same = 0
    worst = 0.0
    n = min(clips, len(ds))
    for i in range(n):
        b = collate([ds[i]])
        ref = torch_logits(model, b.audio, b.video)  # type: ignore[arg-type]
        got = run_logits(session, b.audio.numpy(), b.video.numpy())
        worst = max(worst, float(np.abs(ref.numpy() - got).max()))
        lens = torch.tensor([ref.shape[1]])
        blank = model.head.blank_id  # type: ignore[attr-defined]
        same += ctc_greedy_decode(ref, lens, blank_id=blank) == ctc_greedy_decode(torch.from_numpy(got), lens, blank_id=blank)
    print(f"test clips {n}: identical greedy transcripts {same}/{n}, max abs logit diff {worst:.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="fine-tuned AV CTC model directory")
    p.add_argument("--data", type=Path, help="DATA folder for the agreement check (default MODEL/../../data)")
    p.add_argument("--seconds", default="2,5,10", help="clip lengths timed (default 2,5,10)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per length (default 5)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of both backends (default 1)")
    p.add_argument("--clips", type=int, default=20, help="test clips compared (default 20)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_finetuned(args.model)
    with tempfile.TemporaryDirectory(prefix="onnx-") as tmp:
        t0 = time.perf_counter()
        report = export_onnx(args.model, Path(tmp) / "model.onnx")
        t_export = time.perf_counter() - t0
        size_mb = report.path.stat().st_size / 1e6
        session = open_session(report.path, threads=args.threads)
        print(f"model {args.model}: export + check {t_export:.1f} s, {size_mb:.1f} MB, "
              f"check diff {report.max_abs_diff:.2e}; {args.threads} thread(s), load {os.getloadavg()[0]:.2f}")
        speed_table(model, session, [float(s) for s in args.seconds.split(",")], args.repeat)
        data = args.data or args.model.resolve().parent.parent / "data"
        if (data / "test.tsv").is_file():
            agreement(model, session, data, args.clips)


if __name__ == "__main__":
    main()
