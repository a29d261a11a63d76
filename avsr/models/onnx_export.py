"""Export a fine-tuned AV CTC model (encoder + CTC head) to ONNX, checked against PyTorch.

The exported graph is :class:`CTCGraph` traced by PyTorch's TorchScript-based ONNX
exporter (``torch.onnx.export(..., dynamo=False)``, opset 17) with the audio samples
and video frames as dynamic axes; its inputs and outputs are described in
:mod:`avsr.models.onnx_ctc`. One clip per call (batch 1): the Transformer then needs
no padding mask, and the graph holds no data-dependent length arithmetic. Both audio front ends
export: the XLS-R CNN as it is, the filterbank through :class:`TraceableFbank`; the
w2v-BERT family's Kaldi filterbank does not (an error naming the family).

After writing, the export runs onnxruntime on example clips (two lengths, three input
modes) and raises when their logits differ from PyTorch's by more than ``tolerance``.

Only CTC models are exported: a seq2seq model's autoregressive decoder is out of
scope (an error). Encoders without a lip encoder (audio only) are exported by
:mod:`avsr.models.hf_ctc` instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avsr.errors import UserError
from avsr.io import atomic_path
from avsr.models.av.fbank import HOP, N_FFT, WIN, FbankFrontend
from avsr.models.finetuned import FinetunedModel, load_finetuned
from avsr.models.onnx_ctc import INPUTS, OUTPUT, STREAMS, open_session, run_logits
from avsr.models.xlsr.model import normalize_waveform

OPSET = 17
SAMPLES_PER_VIDEO_FRAME = 640
"""16 kHz audio samples per 25 fps video frame."""


def _aligned(video: Tensor, t: int, repeat: int) -> Tensor:
    """video (1, Tv, D) -> (1, t, D): each frame ``repeat`` times, then zero-padded and cut
    to ``t`` (``align_video`` without a length branch, so the traced graph is right for
    every length)."""
    if repeat > 1:
        video = video.repeat_interleave(repeat, dim=1)
    pad = video.new_zeros(video.shape[0], t, video.shape[2])
    return torch.cat([video, pad], dim=1)[:, :t]


class TraceableFbank(nn.Module):
    """:class:`FbankFrontend` for one clip without ``unfold`` and FFT (which the ONNX
    exporter cannot write for a dynamic length): frames by a strided identity
    convolution, the windowed power spectrum by products with DFT matrices, the frame
    stacking by a second identity convolution. wav (1, S) -> (1, T25, model_dim)."""

    def __init__(self, frontend: FbankFrontend) -> None:
        super().__init__()
        self.frontend = frontend
        lm = frontend.fbank
        self.preemphasis = lm.preemphasis
        k = torch.arange(WIN, dtype=torch.float64)[:, None]
        angle = 2.0 * math.pi * k * torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[None] / N_FFT
        window = lm.window.to(torch.float64)[:, None]
        self.register_buffer("dft_cos", (window * torch.cos(angle)).float(), persistent=False)
        self.register_buffer("dft_sin", (window * torch.sin(angle)).float(), persistent=False)
        self.register_buffer("frame_kernel", torch.eye(WIN)[:, None, :], persistent=False)
        n_mels, stack = lm.n_mels, frontend.stack
        kernel = torch.zeros(n_mels * stack, n_mels, stack)
        for s in range(stack):  # output channel s * n_mels + f = mel f of the s-th frame
            kernel[s * n_mels : (s + 1) * n_mels, :, s] = torch.eye(n_mels)
        self.register_buffer("stack_kernel", kernel, persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        fe = self.frontend
        if self.preemphasis > 0:
            wav = torch.cat([wav[:, :1], wav[:, 1:] - self.preemphasis * wav[:, :-1]], dim=1)
        frames = F.conv1d(wav[:, None], self.frame_kernel, stride=HOP).transpose(1, 2)  # (1, T, WIN)
        spec = ((frames @ self.dft_cos) ** 2 + (frames @ self.dft_sin) ** 2) / N_FFT
        mel = torch.log((spec @ fe.fbank.fb.t()).clamp_min(1e-10))  # (1, T100, n_mels)
        padded = F.pad(mel.transpose(1, 2), (0, fe.stack - 1))
        stacked = F.conv1d(padded, self.stack_kernel, stride=fe.stack).transpose(1, 2)
        return fe.proj(fe.layer_norm(stacked))


class CTCGraph(nn.Module):
    """The network exported to ONNX: audio (1, S), video (1, 1, Tv, H, W), streams (2,)
    -> logits (1, T, V); the eval-mode forward of ``model.encode`` + CTC head on one clip."""

    def __init__(self, model: FinetunedModel) -> None:
        super().__init__()
        if model.config.head != "ctc":
            raise UserError(
                f"ONNX export covers CTC models; this is a {model.config.head} model "
                "(seq2seq decoding is not exported)"
            )
        enc = model.encoder
        if getattr(enc, "visual", None) is None or getattr(enc, "fusion", None) is None:
            raise UserError("ONNX export needs an AV encoder with a lip encoder (audio-only CTC: HF export)")
        self.encoder = enc
        self.head = model.head
        self.fbank = TraceableFbank(enc.fbank) if enc.fbank is not None else None

    def _audio(self, audio: Tensor) -> Tensor:
        """(1, S) -> projected audio features (1, T, D)."""
        enc = self.encoder
        if enc.cfg.normalize_audio:
            audio = normalize_waveform(audio)
        if self.fbank is not None:
            return self.fbank(audio)
        feats, _ = enc.xlsr.extract_features(audio)
        return enc.xlsr.project(feats)

    def forward(self, audio: Tensor, video: Tensor, streams: Tensor) -> Tensor:
        from fairseq2.nn import BatchLayout

        enc = self.encoder
        a = self._audio(audio) * streams[0]
        v = enc.video_proj(enc.visual(video)) * streams[1]
        x = enc.fusion(a, _aligned(v, a.shape[1], enc.video_repeat))
        feats = enc.xlsr.encode(x, BatchLayout.of(x))
        return self.head(feats)


def example_inputs(model: FinetunedModel, seconds: float, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A random clip of ``seconds``: (audio (1, S), video (1, 1, Tv, crop, crop))."""
    frames = max(1, int(round(seconds * 25)))
    crop = int(model.data_config.get("crop_size", 88))
    gen = torch.Generator().manual_seed(seed + frames)
    audio = 0.1 * torch.randn(1, frames * SAMPLES_PER_VIDEO_FRAME, generator=gen)
    video = torch.randn(1, 1, frames, crop, crop, generator=gen)
    return audio, video


@torch.no_grad()
def torch_logits(model: FinetunedModel, audio: Tensor, video: Tensor, modality: str = "av") -> Tensor:
    """PyTorch logits (1, T, V) of one clip through ``model.encode`` (the reference)."""
    from types import SimpleNamespace

    batch = SimpleNamespace(
        audio=audio,
        audio_lens=torch.tensor([audio.shape[1]]),
        video=video,
        video_lens=torch.tensor([video.shape[2]]),
    )
    enc = model.eval().encode(batch, modality=modality)
    return model.head(enc.feats)


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how close it is to PyTorch."""

    path: Path
    """The ONNX file."""
    max_abs_diff: float
    """Largest |onnxruntime - PyTorch| logit on the check clips (NaN: not checked)."""


def _write_metadata(path: Path, model: FinetunedModel) -> None:
    """Store what decoding needs (blank id, vocabulary size, crop size) in the file."""
    import onnx

    proto = onnx.load(str(path))
    meta = {
        "producer": "xlavsr",
        "blank_id": str(model.head.blank_id),
        "vocab_size": str(model.tokenizer.vocab_size),
        "crop_size": str(int(model.data_config.get("crop_size", 88))),
        "frame_rate": str(int(model.encoder.frame_rate)),
        "inputs": "audio (1,S) float32 16 kHz; video (1,1,Tv,H,W) normalised pixels; streams (2,) [audio, video] weights",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _trace(model: FinetunedModel, out: Path, seconds: float, opset: int) -> None:
    graph = CTCGraph(model).eval()
    audio, video = example_inputs(model, seconds)
    streams = torch.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values in fairseq2 code
        torch.onnx.export(
            graph,
            (audio, video, streams),
            str(out),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={"audio": {1: "samples"}, "video": {2: "frames"}, OUTPUT: {1: "time"}},
            opset_version=opset,
        )


def check_parity(model: FinetunedModel, path: Path, seconds: tuple[float, ...]) -> float:
    """Largest |onnxruntime - PyTorch| logit over clips of ``seconds`` and the input modes."""
    session = open_session(path)
    worst = 0.0
    for sec in seconds:
        audio, video = example_inputs(model, sec, seed=1)
        for modality in STREAMS:
            ref = torch_logits(model, audio, video, modality).numpy()
            got = run_logits(session, audio.numpy(), video.numpy(), modality)
            if got.shape != ref.shape:
                raise UserError(f"{path}: ONNX logits {got.shape} vs PyTorch {ref.shape} for a {sec} s clip")
            worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export_onnx(
    model_dir: str | Path,
    out: str | Path,
    *,
    seconds: float = 2.0,
    opset: int = OPSET,
    check: tuple[float, ...] = (1.0, 3.0),
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export the CTC model of ``model_dir`` to ``out`` (traced on a ``seconds`` clip), then
    check onnxruntime against PyTorch on clips of ``check`` seconds (UserError past
    ``tolerance``; ``check=()`` skips it)."""
    model = load_finetuned(model_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        try:
            _trace(model, tmp, seconds, opset)
        except torch.onnx.errors.OnnxExporterError as exc:
            family = (model.encoder_config.get("av") or {}).get("encoder", {}).get("family", "?")
            raise UserError(
                f"{model_dir}: the {family} encoder does not export to ONNX: {str(exc).splitlines()[0]}"
            ) from exc
        _write_metadata(tmp, model)
    diff = check_parity(model, out, check) if check else float("nan")
    if diff > tolerance:
        raise UserError(
            f"{out}: onnxruntime logits differ from PyTorch by {diff:.3g} (> {tolerance}); "
            "this encoder does not export faithfully"
        )
    return ExportReport(path=out, max_abs_diff=diff)
