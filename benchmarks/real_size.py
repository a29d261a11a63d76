"""Real-size memory check on CPU: the XLS-R 300M-shaped AV model (random weights, the real
config) takes training steps on a short batch; its measured peak memory is printed beside
``avsr pretrain --dry-run``'s estimate for the same shapes.

    .venv/bin/python benchmarks/real_size.py --arch 300m --stage pretrain finetune

Each measurement runs in a fresh Python process (``measure``) on CPU, fp32 (or under CPU bf16
autocast with ``--precision bf16``: the GPU's per-op dtype policy, so the activations the
autograd graph saves are those of a bf16 GPU run):

- the model of ``configs/pretrain_{arch}.yaml`` (pretraining: AV encoder + unit head, 2000
  units, masking and modality dropout on) or of ``configs/finetune_300m.yaml``'s ``av``
  section with a CTC head (fine-tuning, the encoder unfrozen: the step after
  ``freeze_updates``), built with random weights;
- a batch of ``clips`` clips of ``seconds`` s: 16 kHz audio and 25 fps 88x88 lip crops;
- two training steps as the loop takes them (forward, ``loss.float().backward()``,
  ``clip_grad_norm_``, AdamW ``step``, ``zero_grad(set_to_none=True)``): the second is the
  steady state, with the Adam moments already allocated, which the dry run estimates.

Memory: the process's resident-set high-water mark (``VmHWM`` of ``/proc/self/status``,
reset through ``/proc/self/clear_refs`` before each step) minus its resident set after the
imports (``VmRSS``). tracemalloc does not see torch's allocations; the RSS does (glibc
caching and fragmentation included, as a real run has them).

The estimate: :func:`tasks.pretrain_dry_run.dry_run` with ``gpus=1`` (no sharding),
``train.bf16`` as the precision and the same ``clips`` x frames batch.

Other scripts may import this file by path and call :func:`measure` (one dict per run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16_000
FPS = 25
NUM_UNITS = 2000
# "tiny" (the CPU-test shapes) checks this script itself in seconds
PRETRAIN_CONFIGS = {
    "300m": "pretrain_300m.yaml",
    "1b": "pretrain_1b.yaml",
    "2b": "pretrain_2b.yaml",
    "tiny": "pretrain_tiny.yaml",
}
ENCODER_ARCHS = {"300m": "xlsr_300m", "1b": "xlsr_1b", "2b": "xlsr_2b", "tiny": "tiny"}
STAGES = ("pretrain", "finetune")
CHILD_FLAG = "--child"


# ------------------------------------------------------------------ in the child process
def _proc_status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _rss() -> int:
    """Resident set now, bytes."""
    return _proc_status_kib("VmRSS") * 1024


def _hwm() -> int:
    """Resident-set high-water mark since the last :func:`_reset_hwm`, bytes."""
    return _proc_status_kib("VmHWM") * 1024


def _reset_hwm() -> None:
    """Reset the high-water mark to the current resident set (Linux ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def _configs(arch: str, stage: str) -> tuple[Any, Any]:
    """The pretraining config (noise off, fp32) and, for fine-tuning, the fine-tuning config."""
    from tasks.cli_args import load_task_config
    from tasks.finetune_config import FinetuneConfig
    from tasks.pretrain import load_pretrain_config

    pre = load_pretrain_config(
        REPO / "configs" / PRETRAIN_CONFIGS[arch], ["data.noise_prob=0", "train.bf16=false"]
    )
    ft = None
    if stage == "finetune":
        sets = ["data.noise_prob=0", "train.bf16=false", f"av.encoder.arch={ENCODER_ARCHS[arch]}"]
        ft = load_task_config(FinetuneConfig, REPO / "configs" / "finetune_300m.yaml", sets)
    return pre, ft


def _batch(clips: int, seconds: float, crop: int, num_units: int) -> Any:
    """``clips`` clips of ``seconds`` s: audio (B, S), video (B, 1, T, crop, crop), units, texts."""
    import torch

    from avsr.data.batch import AVBatch

    g = torch.Generator().manual_seed(0)
    n_audio, n_video = int(seconds * SAMPLE_RATE), int(seconds * FPS)
    n_units = n_video * 2  # 50 Hz
    words = "the quick brown fox jumps over a lazy dog again and again".split()
    return AVBatch(
        ids=[f"clip{i}" for i in range(clips)],
        indices=torch.arange(clips),
        audio=torch.randn(clips, n_audio, generator=g) * 0.1,
        audio_lens=torch.full((clips,), n_audio),
        video=torch.randn(clips, 1, n_video, crop, crop, generator=g),
        video_lens=torch.full((clips,), n_video),
        units=torch.randint(0, num_units, (clips, n_units), generator=g),
        unit_lens=torch.full((clips,), n_units),
        texts=[" ".join(words[i % 3 :]) for i in range(clips)],
        langs=["en"] * clips,
    )


def _model(arch: str, stage: str) -> tuple[Any, Any, Any, int]:
    """(model in train mode, optimiser config, train config, lip crop size) of ``stage``."""
    from avsr.models.av.model import build_av_encoder
    from avsr.models.finetuned import FinetunedConfig, FinetunedModel
    from avsr.text import train_tokenizer
    from tasks.pretrain_run import build_model

    pre, ft = _configs(arch, stage)
    if ft is None:
        return build_model(pre, NUM_UNITS, None).train(), pre.optim, pre.train, pre.data.crop_size
    texts = [f"word{i} word{i * 7 % 101} word{i * 13 % 97}" for i in range(400)]
    tok = train_tokenizer(texts, vocab_size=ft.tokenizer.vocab_size)
    cfg = FinetunedConfig(
        task="avsr", head="ctc", modality="av", normalize=ft.model.normalize,
        apply_mask=ft.model.apply_mask, ctc=ft.model.ctc,
    )  # fmt: skip
    model = FinetunedModel(build_av_encoder(ft.av), tok, cfg).train()
    return model, ft.optim, ft.train, ft.data.crop_size


class _SavedTensors:
    """Counts the bytes of the tensors autograd saves for backward (distinct storages,
    parameters excluded): the activation memory of a forward, whatever the device."""

    def __init__(self, model: Any) -> None:
        import torch

        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: dict[int, int] = {}
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: Any) -> Any:
        st = t.untyped_storage()
        if st.data_ptr() not in self.params:
            self.seen[st.data_ptr()] = st.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def _step(
    model: Any,
    optimizer: Any,
    batch: Any,
    clip_norm: float,
    bf16: bool,
    saved: _SavedTensors | None = None,
) -> float:
    """One update as the training loop takes it (``saved``: count the forward's saved
    tensors); returns the loss per target."""
    import torch

    hooks = saved.hooks if saved is not None else contextlib.nullcontext()
    with hooks, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(batch)
    out.loss.float().backward()
    params = [p for p in model.parameters() if p.grad is not None]
    for p in params:
        p.grad.mul_(1.0 / max(out.sample_size, 1))
    torch.nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.loss) / max(out.sample_size, 1)


def _child(arch: str, stage: str, clips: int, seconds: float, precision: str) -> dict[str, Any]:
    """Build, take two steps, return the memory and time figures (bytes, seconds)."""
    import torch

    import avsr.models.finetuned  # noqa: F401 - every import before the baseline
    import avsr.text  # noqa: F401
    import tasks.cli_args  # noqa: F401
    import tasks.finetune_config  # noqa: F401
    import tasks.pretrain_run  # noqa: F401
    from avsr.train.schedule import build_optimizer

    base = _rss()
    _reset_hwm()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model, optim_cfg, train_cfg, crop = _model(arch, stage)
    batch = _batch(clips, seconds, crop, NUM_UNITS)
    optimizer = build_optimizer(model.named_parameters(), optim_cfg)
    build = {"rss": _rss() - base, "peak": _hwm() - base, "s": time.perf_counter() - t0}
    saved = _SavedTensors(model)
    steps = []
    for i in range(2):
        _reset_hwm()
        t = time.perf_counter()
        bf16 = precision == "bf16"
        loss = _step(model, optimizer, batch, train_cfg.clip_norm, bf16, saved if i == 0 else None)
        steps.append({"peak": _hwm() - base, "s": time.perf_counter() - t, "loss": loss})
    return {
        "arch": arch,
        "stage": stage,
        "clips": clips,
        "seconds": seconds,
        "precision": precision,
        "params": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
        "baseline_rss": base,
        "build": build,
        "autograd_saved": saved.total,
        "steps": steps,
        "peak": max([build["peak"], *(s["peak"] for s in steps)]),
    }


# ------------------------------------------------------------------ in the caller
def estimate(
    arch: str, clips: int = 2, seconds: float = 2.0, precision: str = "fp32"
) -> dict[str, Any]:
    """The dry run's report for one process (``gpus=1``), ``clips`` x ``seconds`` s."""
    from tasks.pretrain import load_pretrain_config
    from tasks.pretrain_dry_run import dry_run

    frames = int(seconds * FPS)
    sets = ["data.noise_prob=0", f"data.max_frames_per_batch={clips * frames}"]
    sets.append(f"train.bf16={str(precision == 'bf16').lower()}")
    cfg = load_pretrain_config(REPO / "configs" / PRETRAIN_CONFIGS[arch], sets)
    return dry_run(cfg, gpus=1, num_units=NUM_UNITS, clips=clips)


def measure(
    arch: str = "300m",
    stage: str = "pretrain",
    *,
    clips: int = 2,
    seconds: float = 2.0,
    threads: int = 2,
    precision: str = "fp32",
    timeout: float = 600,
) -> dict[str, Any]:
    """Run ``stage`` ("pretrain" or "finetune") of ``arch`` ("300m", "1b", "2b", "tiny") in a
    fresh process, ``precision`` "fp32" or "bf16" (CPU autocast); returns the child's figures
    (bytes, seconds) plus ``estimate`` (the dry run's report) and ``ratio`` (measured peak /
    estimated total). Raises ``RuntimeError`` if the child fails."""
    if stage not in STAGES or arch not in PRETRAIN_CONFIGS:
        raise ValueError(f"arch {arch!r} / stage {stage!r}: expected {list(PRETRAIN_CONFIGS)} / {STAGES}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, CHILD_FLAG, arch, stage, str(clips), str(seconds), precision]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rep: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    rep["estimate"] = estimate(arch, clips, seconds, precision)
    rep["ratio"] = rep["peak"] / rep["estimate"]["bytes"]["total_per_gpu"]
    return rep


def _gib(n: float) -> str:
    return f"{n / 2**30:6.2f} GiB"


def print_report(rep: dict[str, Any]) -> None:
    """Measured memory beside the dry run's estimate."""
    est = rep["estimate"]["bytes"]
    print(f"{rep['arch']} {rep['stage']}: {rep['params'] / 1e6:.2f} M parameters, "
          f"{rep['clips']} clips x {rep['seconds']} s, {rep['precision']}, {rep['torch_threads']} threads")  # fmt: skip
    print(f"  model + optimiser built     {_gib(rep['build']['rss'])} resident ({rep['build']['s']:.1f} s)")
    for i, s in enumerate(rep["steps"], 1):
        print(f"  step {i} peak                 {_gib(s['peak'])} ({s['s']:.1f} s, loss {s['loss']:.3f})")
    print(f"  measured peak               {_gib(rep['peak'])}")
    print(f"  autograd-saved activations  {_gib(rep['autograd_saved'])}")
    print(f"  dry-run estimate            {_gib(est['total_per_gpu'])} "
          f"(states {_gib(est['params_grads_adam_sharded']).strip()}, "
          f"activations {_gib(est['activations']).strip()}, "
          f"bf16 weight copies {_gib(est['bf16_weight_copies']).strip()})")  # fmt: skip
    print(f"  measured / estimate         {rep['ratio']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=list(PRETRAIN_CONFIGS), default="300m")
    parser.add_argument("--stage", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = parser.parse_args(argv)
    reports = []
    for stage in args.stage:
        rep = measure(
            args.arch, stage, clips=args.clips, seconds=args.seconds, threads=args.threads,
            precision=args.precision,
        )  # fmt: skip
        print_report(rep)
        reports.append(rep)
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == CHILD_FLAG:
        _arch, _stage, _clips, _secs, _precision = sys.argv[2:]
        print(json.dumps(_child(_arch, _stage, int(_clips), float(_secs), _precision)))
        sys.exit(0)
    sys.exit(main())
