"""A fine-tuned CTC model exported to ONNX, run by onnxruntime on the CPU.

The graph (written by :func:`avsr.models.onnx_export.export_onnx`) takes one clip:

- ``audio`` (1, S) float32, 16 kHz samples in [-1, 1] (``S`` dynamic, at least 400);
- ``video`` (1, 1, Tv, H, W) float32 mouth ROI pixels normalised as in training
  (``Tv`` dynamic, ``H = W`` the model's crop size);
- ``streams`` (2,) float32: weights of the audio and video streams, 1 = used,
  0 = zeroed (input mode ``av`` = [1, 1], ``a`` = [1, 0], ``v`` = [0, 1]);

and returns ``logits`` (1, T, V) at the encoder frame rate. :class:`OnnxCTCModel`
decodes them greedily (best path) with the model directory's tokenizer: a stand-in
for :class:`~avsr.models.finetuned.FinetunedModel` in :class:`avsr.inference.WindowDecoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avsr.checkpoint import read_model_config
from avsr.config import from_dict
from avsr.errors import UserError
from avsr.models.finetuned import FinetunedConfig, find_tokenizer
from avsr.models.heads.ctc import ctc_greedy_decode
from avsr.text.tokenizer import Tokenizer

ONNX_FILE = "model.onnx"
"""Where ``avsr export onnx`` writes by default, and the ``onnx`` backend looks, in a model dir."""
INPUTS = ("audio", "video", "streams")
OUTPUT = "logits"
STREAMS = {"av": (1.0, 1.0), "a": (1.0, 0.0), "v": (0.0, 1.0)}
"""Stream weights (audio, video) of each input mode."""


def open_session(path: str | Path, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of ``path`` (``threads``: intra-op threads, None: default)."""
    import onnxruntime as ort  # heavy: loaded only when an ONNX model is used

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ONNX model not found (write one with 'avsr export onnx')")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise UserError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    names = tuple(i.name for i in session.get_inputs())
    if names != INPUTS:
        raise UserError(f"{path}: not an xlavsr CTC export (inputs {names}, expected {INPUTS})")
    return session


def run_logits(session: Any, audio: np.ndarray, video: np.ndarray, modality: str = "av") -> np.ndarray:
    """Logits (1, T, V) of one clip: audio (1, S), video (1, 1, Tv, H, W), input ``modality``."""
    if modality not in STREAMS:
        raise UserError(f"modality must be av, a or v, got {modality!r}")
    feeds = {
        "audio": np.ascontiguousarray(audio, dtype=np.float32),
        "video": np.ascontiguousarray(video, dtype=np.float32),
        "streams": np.asarray(STREAMS[modality], dtype=np.float32),
    }
    return session.run([OUTPUT], feeds)[0]


@dataclass(frozen=True)
class CTCHeadInfo:
    """What CTC decoders read from a model's head."""

    blank_id: int
    """Id of the CTC blank."""


class OnnxCTCModel:
    """An exported CTC graph + the model directory's tokenizer and config.

    ``decode(batch, modality=...)`` gives the same texts as the PyTorch model's greedy
    CTC decoding; each row of the batch runs on its own (no padding in the graph). Like
    :class:`~avsr.models.finetuned.FinetunedModel` it decodes with ``ctc_decoder`` when
    one is set (e.g. a prefix beam search with an LM).
    """

    def __init__(self, model_dir: str | Path, onnx_path: str | Path, *, threads: int | None = None) -> None:
        model_dir = Path(model_dir)
        cfg = read_model_config(model_dir)
        self.config: FinetunedConfig = from_dict(FinetunedConfig, cfg.get("finetune") or {})
        if self.config.head != "ctc":
            raise UserError(
                f"{model_dir}: a {self.config.head} model; the ONNX backend runs CTC models only "
                "(seq2seq decoding stays in PyTorch: --backend torch)"
            )
        self.tokenizer = Tokenizer.load(find_tokenizer(model_dir))
        self.session = open_session(onnx_path, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        vocab = int(meta.get("vocab_size", -1))
        if vocab != self.tokenizer.vocab_size:
            raise UserError(
                f"{onnx_path}: exported with {vocab} output pieces, {model_dir} has "
                f"{self.tokenizer.vocab_size}: export this model again"
            )
        self.head = CTCHeadInfo(blank_id=int(meta.get("blank_id", self.tokenizer.pad_id)))
        self.crop_size = int(meta.get("crop_size", 88))
        self.ctc_decoder: Callable[[Tensor, Tensor], list[list[int]]] | None = None
        """Decodes (logits (B, T, V), lens (B,)) into ids per row; None: greedy."""

    def row_inputs(self, batch: Any, i: int, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """(audio (1, S), video (1, 1, Tv, H, W)) of row ``i`` of an ``AVBatch``, unpadded;
        a stream the batch lacks is zeros (its weight is 0 in modes ``a`` / ``v``)."""
        n_audio = int(batch.audio_lens[i])
        n_video = int(batch.video_lens[i])
        if batch.audio is not None:
            audio = batch.audio[i : i + 1, :n_audio].cpu().numpy()
        else:
            audio = np.zeros((1, n_audio), dtype=np.float32)
        if batch.video is not None:
            video = batch.video[i : i + 1, :, :n_video].cpu().numpy()
        else:
            video = np.zeros((1, 1, n_video, self.crop_size, self.crop_size), dtype=np.float32)
        return audio, video

    def decode_ids(self, batch: Any, *, modality: str = "av") -> list[list[int]]:
        """CTC token ids per row of an ``AVBatch`` (greedy unless ``ctc_decoder`` is set)."""
        out = []
        for i in range(int(batch.audio_lens.shape[0])):
            logits = torch.from_numpy(run_logits(self.session, *self.row_inputs(batch, i, modality), modality))
            lens = torch.tensor([logits.shape[1]])
            if self.ctc_decoder is not None:
                out += self.ctc_decoder(logits, lens)
            else:
                out += ctc_greedy_decode(logits, lens, blank_id=self.head.blank_id)
        return out

    def decode(self, batch: Any, *, modality: str = "av", beam: int = 5, **_: Any) -> list[str]:
        """Text per row (``beam`` and joint-decoding options do not apply to a CTC model)."""
        return [self.tokenizer.decode(ids) for ids in self.decode_ids(batch, modality=modality)]
