"""``avsr pretrain --dry-run``: parameter counts and memory per GPU under FSDP2, on the meta device.

Per GPU: fp32 parameters + fp32 gradients + Adam moments (16 bytes/param) sharded
over the GPUs; under FSDP2 (more than one GPU) two unsharded Transformer blocks in
flight (prefetch) plus the unsharded root (CNN, fusion, head); activations of one
batch of ``data.max_frames_per_batch`` video frames: the output elements of every
leaf module, measured by a meta-device forward (attention scores excluded: SDPA
kernels), at 4 bytes each in fp32 (``train.bf16=false``) and at
:data:`BF16_ACTIVATION_BYTES` under bf16 autocast; and under bf16 autocast the bf16
copies of the weights (2 bytes/param, not sharded): autocast casts every matmul and
convolution weight and autograd keeps the copies until the backward.

Calibration (``benchmarks/real_size.py``, the 300M AV model, 2 clips x 2 s, CPU, with
autograd's saved tensors counted): fp32 saves 1.06x the leaf-output bytes; under bf16
autocast (the same per-op policy on CPU and CUDA) a third of the saved activation bytes stay
fp32 (LayerNorm, softmax, losses), 2.7 bytes per leaf-output element on average, and the bf16
weight copies are 0.61 GiB (2 bytes x 326 M weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from avsr.models.av.model import AVEncoder, AVPretrainModel
from avsr.models.xlsr import EncoderConfig, XlsrEncoder, arch_config, build_encoder
from tasks.pretrain_config import PretrainConfig

# Audio samples per video frame (16 kHz audio, 25 fps video).
SAMPLES_PER_FRAME = 640
# Bytes autograd saves per leaf-output element under bf16 autocast (measured, see above).
BF16_ACTIVATION_BYTES = 2.7


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _leaf_output_elements(model: torch.nn.Module, run: Callable[[], None]) -> int:
    """Sum of the output sizes of every leaf module during ``run()`` (meta tensors)."""
    total = 0

    def hook(_m: torch.nn.Module, _inp: Any, output: Any) -> None:
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        for o in outs:
            if isinstance(o, torch.Tensor):
                total += o.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


def _meta_model(
    cfg: PretrainConfig, num_units: int
) -> tuple[EncoderConfig, XlsrEncoder, AVPretrainModel]:
    """The audio-encoder config, the audio encoder and the whole model, on the meta device."""
    enc_cfg = arch_config(cfg.model.encoder.arch, **cfg.model.encoder.overrides)
    xlsr = build_encoder(enc_cfg, device="meta")
    with torch.device("meta"):
        model = AVPretrainModel(AVEncoder(cfg.model, xlsr), num_units)
    return enc_cfg, xlsr, model


def _param_parts(model: AVPretrainModel, xlsr: XlsrEncoder, params: int) -> dict[str, int]:
    """Parameter count per part of the model (the rest: fusion and small modules)."""
    fe = xlsr.frontend.feature_extractor
    visual, fbank = model.encoder.visual, model.encoder.fbank
    parts = {
        "xlsr_cnn": _n_params(fe) if fe is not None else 0,
        "transformer": _n_params(xlsr.encoder) + _n_params(xlsr.frontend.pos_encoder),
        "lip_encoder": _n_params(visual) if visual is not None else 0,
        "fbank": _n_params(fbank) if fbank is not None else 0,
        "head": _n_params(model.head),
    }
    parts["fusion_and_rest"] = params - sum(parts.values())
    return parts


def _activation_elements(
    cfg: PretrainConfig, model: AVPretrainModel, enc_cfg: EncoderConfig, clips: int = 1
) -> tuple[int, str]:
    """Activation elements of one batch of ``clips`` clips sharing ``data.max_frames_per_batch``
    video frames (meta forward, else a formula) and how they were got."""
    frames = cfg.data.max_frames_per_batch // clips
    crop = cfg.data.crop_size
    n_samples = frames * SAMPLES_PER_FRAME
    audio_lens = torch.tensor([n_samples] * clips)
    video_lens = torch.tensor([frames] * clips)

    def fwd() -> None:
        audio = torch.zeros(clips, n_samples, device="meta")
        video = (
            torch.zeros(clips, 1, frames, crop, crop, device="meta")
            if model.encoder.visual is not None
            else None
        )
        model.encoder(
            audio,
            audio_lens,
            video,
            video_lens,
            modality="av",
            apply_mask=True,
            modality_dropout=False,
        )

    try:
        return _leaf_output_elements(model, fwd), "measured on the meta device"
    except Exception as exc:  # noqa: BLE001 - fall back to a formula
        d, n_layers = enc_cfg.model_dim, enc_cfg.num_layers
        return n_layers * 2 * frames * clips * d * 17, f"formula (meta forward failed: {type(exc).__name__})"


def dry_run(
    cfg: PretrainConfig, gpus: int, num_units: int = 2000, clips: int = 1
) -> dict[str, Any]:
    """Parameters and estimated memory per GPU under FSDP2 (bytes), built on the meta device
    (see the module docstring for what is counted), for a batch of ``clips`` clips."""
    enc_cfg, xlsr, model = _meta_model(cfg, num_units)
    params = _n_params(model)
    parts = _param_parts(model, xlsr, params)
    layer = max(_n_params(blk) for blk in xlsr.encoder.layers)
    shard_units = [*xlsr.encoder.layers] + (
        [model.encoder.visual] if model.encoder.visual is not None else []
    )
    root = params - sum(_n_params(m) for m in shard_units)
    act_elems, act_note = _activation_elements(cfg, model, enc_cfg, clips)
    act_bytes = act_elems * (BF16_ACTIVATION_BYTES if cfg.train.bf16 else 4)
    copies = 2 * params if cfg.train.bf16 else 0
    states = 16 * params / gpus
    in_flight = 2 * 4 * layer + 4 * root  # under FSDP2 only: one process holds everything
    gathered = in_flight if gpus > 1 else 0
    return {
        "params": params,
        "parts": parts,
        "largest_block": layer,
        "fsdp_in_flight": in_flight,
        "gpus": gpus,
        "bytes": {
            "params_grads_adam_sharded": states,
            "unsharded_in_flight": gathered,
            "activations": act_bytes,
            "bf16_weight_copies": copies,
            "total_per_gpu": states + gathered + act_bytes + copies,
        },
        "activations_note": act_note,
        "batch_frames": cfg.data.max_frames_per_batch,
        "precision": "bf16" if cfg.train.bf16 else "fp32",
    }


def dry_run_total(rep: dict[str, Any], gpus: int) -> float:
    """Total bytes per GPU of a :func:`dry_run` report re-sharded over ``gpus``."""
    b = rep["bytes"]
    in_flight = rep["fsdp_in_flight"] if gpus > 1 else 0
    return 16 * rep["params"] / gpus + in_flight + b["activations"] + b["bf16_weight_copies"]


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def print_dry_run(cfg: PretrainConfig, gpus: int) -> None:
    """Print the :func:`dry_run` report, and the total for other GPU counts."""
    rep = dry_run(cfg, gpus)
    print(
        f"model: encoder {cfg.model.encoder.arch}, modalities {cfg.model.modalities}, audio front end {cfg.model.audio_frontend}"
    )
    print(f"parameters: {rep['params'] / 1e6:.2f} M")
    for k, v in rep["parts"].items():
        print(f"  {k:16s} {v / 1e6:10.2f} M")
    b = rep["bytes"]
    how = f"FSDP2 over {gpus} GPUs" if gpus > 1 else "one GPU (no sharding)"
    print(
        f"memory per GPU, {how}, batch of {rep['batch_frames']} video frames ({rep['precision']} activations):"
    )
    print(f"  params + grads + Adam (fp32, sharded) {_gib(b['params_grads_adam_sharded'])}")
    print(f"  unsharded blocks in flight           {_gib(b['unsharded_in_flight'])}")
    print(f"  activations ({rep['activations_note']}) {_gib(b['activations'])}")
    print(f"  bf16 weight copies (autocast)        {_gib(b['bf16_weight_copies'])}")
    print(f"  total (rough)                        {_gib(b['total_per_gpu'])}")
    others = [n for n in (1, 8, 16, 32, 64) if n != gpus]
    row = ", ".join(f"{n}: {_gib(dry_run_total(rep, n))}" for n in others)
    print(f"  other GPU counts: {row}")
