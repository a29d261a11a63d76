"""Feature-dump benchmark.

1. Early exit: our encoder stops after block 36 of a 48-layer XLS-R shape (width
   reduced for CPU), HF transformers runs the full stack with
   ``output_hidden_states=True`` and we take ``hidden_states[36]``; same weights
   (HF model saved with ``save_pretrained`` and loaded through the project).
   Checks the outputs agree, reports the speed ratio (goal >= 1.3) in process CPU
   time with one thread (wall time on a shared, busy CPU mostly measures the
   other tenants; it is shown too). 48/36 = 1.33 is the ceiling when the
   Transformer dominates, hence the narrow CNN of the reduced shape.
2. Memory: peak growth of anonymous memory (heap; sampled every 10 ms from
   /proc/self/status, over the baseline after imports) of ``dump_features`` in a
   fresh process, for a corpus and the same corpus doubled (goal: flat, i.e. the
   difference far below the size of the extra features). VmRSS growth is also
   shown: it includes page cache of the memory-mapped output, which the kernel
   can drop at will.

Run: ``.venv/bin/python benchmarks/features.py [--quick]`` (< 2 min on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL: dict[str, int | float] = dict(
    dim=256, conv=32, batch=1, seconds=4.0, repeats=5, threads=1, clips=20, clip_seconds=6.0
)
"""The sizes (command-line options): encoder width and CNN channels; early-exit batch, clip
seconds, timed repeats and threads; memory clips and their seconds."""

QUICK: dict[str, int | float] = dict(dim=128, seconds=1.0, repeats=1, clips=4, clip_seconds=2.0)
"""The sizes ``--quick`` changes (CI smoke run)."""


def early_exit(args: argparse.Namespace) -> dict[str, float]:
    import torch
    import transformers

    from avsr.models.encoders import load_encoder
    from avsr.models.hf_ctc import hf_config
    from avsr.models.xlsr import EncoderConfig
    from avsr.models.xlsr.config import conv_stack

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    shape = EncoderConfig(model_dim=args.dim, num_layers=48, num_heads=4, ffn_dim=4 * args.dim,
                          conv_layers=conv_stack(args.conv), pos_conv_kernel=32, pos_conv_groups=4,
                          dropout=0.0, attn_dropout=0.0)  # fmt: skip
    cfg = transformers.Wav2Vec2Config(**hf_config(shape, vocab_size=4, pad_id=1, bos_id=0, eos_id=2))
    hf = transformers.Wav2Vec2Model(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = load_encoder(tmp)
    wav = torch.randn(args.batch, int(args.seconds * 16000))
    lens = torch.full((args.batch,), wav.shape[1])
    mask = torch.ones_like(wav, dtype=torch.long)

    def run_hf() -> torch.Tensor:
        return hf(wav, attention_mask=mask, output_hidden_states=True).hidden_states[36]

    def run_ours() -> torch.Tensor:
        return ours(wav, lens, layer=36)[0]

    wall: dict[str, list[float]] = {"hf": [], "ours": []}
    cpu: dict[str, list[float]] = {"hf": [], "ours": []}
    with torch.inference_mode():
        a, b = run_hf(), run_ours()  # warm-up + parity
        diff = float((a - b).abs().max())
        for _ in range(args.repeats):  # interleaved, min of N
            for name, fn in (("hf", run_hf), ("ours", run_ours)):
                t, c = time.perf_counter(), time.process_time()
                fn()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    hf_t, ours_t = min(cpu["hf"]), min(cpu["ours"])
    return {
        "shape": f"48 layers, dim {args.dim}, ffn {4 * args.dim}, conv {args.conv} ch",
        "audio_s": args.batch * args.seconds,
        "threads": args.threads,
        "hf_full_cpu_s": round(hf_t, 4),
        "ours_layer36_cpu_s": round(ours_t, 4),
        "ratio": round(hf_t / ours_t, 3),
        "ratio_wall": round(min(wall["hf"]) / min(wall["ours"]), 3),
        "max_abs_diff": diff,
    }


_CHILD = r"""
import json, sys, threading, time
from clustering.features import FeatureDumpConfig, dump_features
import clustering.features, avsr.models.encoders  # imports done before the baseline

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(val.split()[0]) / 1024
    return out

base = status()
peak = dict(base)
stop = False

def sample():
    while not stop:
        for k, v in status().items():
            peak[k] = max(peak[k], v)
        time.sleep(0.01)

th = threading.Thread(target=sample, daemon=True)
th.start()
res = dump_features(FeatureDumpConfig(manifest=sys.argv[1], out=sys.argv[2], encoder=sys.argv[3], layer=1, batch_frames=600))
stop = True
th.join()
print(json.dumps({"anon_growth_mb": peak["RssAnon"] - base["RssAnon"], "rss_growth_mb": peak["VmRSS"] - base["VmRSS"],
                  "frames": res.frames, "dim": res.dim}))
"""


def memory(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import soundfile as sf
    import torch

    from avsr.io import ManifestRow, write_manifest
    from avsr.models.encoders import save_encoder
    from avsr.models.xlsr import EncoderConfig, build_encoder
    from avsr.models.xlsr.config import conv_stack

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        torch.manual_seed(0)
        # Cheap compute, wide output (4 KB per frame): a leak would show in the peak RSS.
        wide = EncoderConfig(
            arch="custom", model_dim=1024, num_layers=1, num_heads=4, ffn_dim=128,
            conv_layers=conv_stack(16), pos_conv_kernel=8, pos_conv_groups=16, dropout=0.0, attn_dropout=0.0,
        )  # fmt: skip
        save_encoder(build_encoder(wide), tmp / "enc")
        rng = np.random.default_rng(0)
        (tmp / "audio").mkdir()
        clip = int(args.clip_seconds * 16000)
        n = args.clips
        for i in range(2 * n):
            sf.write(
                tmp / "audio" / f"c{i}.wav",
                (0.1 * rng.standard_normal(clip)).astype(np.float32),
                16000,
            )
        rows = [
            ManifestRow(
                id=f"c{i}",
                video="",
                audio=f"audio/c{i}.wav",
                n_video_frames=0,
                n_audio_samples=clip,
            )
            for i in range(2 * n)
        ]
        for name, count in (("single", n), ("double", 2 * n)):
            write_manifest(tmp / f"{name}.tsv", tmp, rows[:count])
            t = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-c", _CHILD, str(tmp / f"{name}.tsv"), str(tmp / f"f_{name}"), str(tmp / "enc")],
                capture_output=True, text=True, check=True, env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            )  # fmt: skip
            info = json.loads(res.stdout.strip().splitlines()[-1])
            info["seconds"] = round(time.perf_counter() - t, 1)
            info["features_mb"] = round(info["frames"] * info["dim"] * 4 / 2**20, 1)
            info["anon_growth_mb"] = round(info["anon_growth_mb"], 1)
            info["rss_growth_mb"] = round(info["rss_growth_mb"], 1)
            out[name] = info
    s, d = out["single"], out["double"]
    # Peak growth over the process's memory after imports: anonymous memory (heap) and
    # the whole RSS (which also counts the pages of the memory-mapped output file).
    out["anon_peak_difference_mb"] = round(d["anon_growth_mb"] - s["anon_growth_mb"], 1)  # type: ignore[index]
    out["extra_features_mb"] = round(d["features_mb"] - s["features_mb"], 1)  # type: ignore[index]
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in FULL.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    result: dict[str, object] = {"early_exit": early_exit(args)}
    ee = result["early_exit"]
    print(f"early exit: {ee}", flush=True)
    if not args.skip_memory:
        result["memory"] = memory(args)
        print(f"memory: {result['memory']}", flush=True)
    ok = ee["ratio"] >= 1.3 and ee["max_abs_diff"] < 1e-3  # type: ignore[index]
    print(json.dumps(result, indent=2))
    print(f"early-exit goal (ratio >= 1.3): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
