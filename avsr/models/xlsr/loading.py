"""Read wav2vec 2.0-family checkpoints: HF transformers dirs and fairseq1/fairseq2 ``.pt`` files.

- an HF transformers dir (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``,
  possibly sharded) of ``Wav2Vec2Model`` / ``Wav2Vec2ForPreTraining`` / ``Wav2Vec2ForCTC``:
  :func:`load_hf_xlsr`;
- a fairseq1 checkpoint file (weights under ``model``, config under ``cfg`` or ``args``),
  read without running pickled code (:mod:`avsr.models.safe_load`); a fairseq2
  wav2vec 2.0 checkpoint (``encoder_frontend.*`` names) is accepted too:
  :func:`load_fairseq_file`.

The format of a path is detected, and the project format read and written, by
:mod:`avsr.models.encoders` for every family.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from avsr.errors import UserError
from avsr.logging_utils import get_logger
from avsr.models.safe_load import plain, safe_torch_load
from avsr.models.state_dicts import (
    KeyMapError,
    StateMismatch,
    compare_state,
    convert_keys,
    read_hf_weights,
)
from avsr.models.xlsr import keymaps
from avsr.models.xlsr.config import CONV_STRIDES, EncoderConfig, equivalent_archs
from avsr.models.xlsr.model import XlsrEncoder

log = get_logger(__name__)


# -- HF transformers -----------------------------------------------------------------


def _name_arch(config: EncoderConfig) -> EncoderConfig:
    """Set ``config.arch`` to the first registered arch of the same structure (else ``custom``).

    The structure is read from the checkpoint's config; the name only labels it
    (``xlsr_53`` and ``mms_300m`` are structurally ``xlsr_300m``, see ``equivalent_archs``).
    """
    names = equivalent_archs(config)
    config.arch = names[0] if names else "custom"
    return config


def config_from_hf(hf: Mapping[str, Any], where: str = "config.json") -> EncoderConfig:
    """EncoderConfig of an HF ``Wav2Vec2Config`` (as read from config.json)."""
    model_type = hf.get("model_type", "wav2vec2")
    if model_type != "wav2vec2":
        raise UserError(f"{where}: model_type '{model_type}' is not supported (wav2vec2 only)")
    if hf.get("position_embeddings_type") not in (None, "conv"):
        raise UserError(
            f"{where}: position_embeddings_type {hf['position_embeddings_type']!r} is not supported"
        )
    try:
        dims = list(hf.get("conv_dim", [512] * 7))
        kernels = list(hf.get("conv_kernel", [10, 3, 3, 3, 3, 2, 2]))
        strides = list(hf.get("conv_stride", [5, 2, 2, 2, 2, 2, 2]))
        if not len(dims) == len(kernels) == len(strides):
            raise UserError(f"{where}: conv_dim, conv_kernel and conv_stride differ in length")
        cfg = EncoderConfig(
            model_dim=int(hf.get("hidden_size", 768)),
            num_layers=int(hf.get("num_hidden_layers", 12)),
            num_heads=int(hf.get("num_attention_heads", 12)),
            ffn_dim=int(hf.get("intermediate_size", 3072)),
            conv_layers=[(int(d), int(k), int(s)) for d, k, s in zip(dims, kernels, strides)],
            conv_bias=bool(hf.get("conv_bias", False)),
            extractor_norm="layer" if hf.get("feat_extract_norm", "group") == "layer" else "group",
            norm_order="pre" if hf.get("do_stable_layer_norm", False) else "post",
            pos_conv_kernel=int(hf.get("num_conv_pos_embeddings", 128)),
            pos_conv_groups=int(hf.get("num_conv_pos_embedding_groups", 16)),
            dropout=float(hf.get("hidden_dropout", 0.1)),
            attn_dropout=float(hf.get("attention_dropout", 0.1)),
            ffn_dropout=float(hf.get("activation_dropout", 0.0)),
            feature_dropout=float(hf.get("feat_proj_dropout", 0.0)),
            layer_drop=float(hf.get("layerdrop", 0.0)),
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: unexpected value in the wav2vec2 config: {exc}") from exc
    cfg.validate()
    return _name_arch(cfg)


def load_hf_xlsr(path: Path, hf: Mapping[str, Any]) -> XlsrEncoder:
    """An HF ``Wav2Vec2Model`` / ``...ForPreTraining`` / ``...ForCTC`` dir (config.json read as ``hf``)."""
    config = config_from_hf(hf, str(path / "config.json"))
    state = read_hf_weights(path)
    adapters = [k for k in state if keymaps.is_hf_adapter(k)]
    if adapters:
        # MMS-1B-all: per-language attention adapters in every block. The pretrained
        # encoder is the model without them; the project has no adapter layers.
        log.warning(
            "%s: ignoring %d adapter weights (adapter_attn_dim %s, MMS language adapters): "
            "the encoder is loaded without its language adapters",
            path,
            len(adapters),
            hf.get("adapter_attn_dim"),
        )
    table = keymaps.hf_table(extractor_norm=config.extractor_norm, norm_order=config.norm_order)
    try:
        mapped = convert_keys(state, table, prefixes=keymaps.HF_PREFIXES, ignore=keymaps.HF_IGNORE)
    except KeyMapError as exc:
        raise UserError(f"{path}: {exc}") from exc
    return assemble(config, mapped, path)


# -- fairseq1 / fairseq2 ---------------------------------------------------------


def _eval_literal(text: str, where: str) -> Any:
    """Evaluate a list expression such as ``[(512, 10, 5)] + [(512, 3, 2)] * 4`` without eval()."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(left, list) and isinstance(right, int) and 0 <= right <= 1000:
                return left * right
        raise UserError(f"{where}: cannot read conv_feature_layers {text!r}")

    try:
        return ev(ast.parse(text, mode="eval"))
    except SyntaxError as exc:
        raise UserError(f"{where}: cannot read conv_feature_layers {text!r}") from exc


def _fairseq1_model_cfg(ckpt: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    cfg = plain(ckpt.get("cfg"))
    model: Any = None
    if isinstance(cfg, dict):
        model = cfg.get("model")
    if model is None and ckpt.get("args") is not None:
        model = plain(ckpt["args"])
    if not isinstance(model, dict):
        return None
    w2v = model.get("w2v_args")  # fine-tuned checkpoint: the pretrained model's config
    if isinstance(w2v, dict):
        inner = w2v.get("model", w2v)
        if isinstance(inner, dict):
            model = inner
    return model


def config_from_fairseq1(model: Mapping[str, Any], where: str = "checkpoint") -> EncoderConfig:
    """EncoderConfig of a fairseq1 ``wav2vec2`` model config (``cfg.model`` or ``args``)."""

    def get(key: str, default: Any) -> Any:
        value = model.get(key, default)
        return default if value is None else value

    layers = get(
        "conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
    )
    if isinstance(layers, str):
        layers = _eval_literal(layers, where)
    try:
        cfg = EncoderConfig(
            model_dim=int(get("encoder_embed_dim", 768)),
            num_layers=int(get("encoder_layers", 12)),
            num_heads=int(get("encoder_attention_heads", 12)),
            ffn_dim=int(get("encoder_ffn_embed_dim", 3072)),
            conv_layers=[(int(d), int(k), int(s)) for d, k, s in layers],
            conv_bias=bool(get("conv_bias", False)),
            extractor_norm="layer" if get("extractor_mode", "default") == "layer_norm" else "group",
            norm_order="pre" if get("layer_norm_first", False) else "post",
            pos_conv_kernel=int(get("conv_pos", 128)),
            pos_conv_groups=int(get("conv_pos_groups", 16)),
            pos_conv_depth=int(get("pos_conv_depth", 1)),
            dropout=float(get("dropout", 0.1)),
            attn_dropout=float(get("attention_dropout", 0.1)),
            ffn_dropout=float(get("activation_dropout", 0.0)),
            feature_dropout=float(get("dropout_input", 0.0)),
            layer_drop=float(get("encoder_layerdrop", 0.0)),
            feature_grad_scale=min(1.0, max(1e-6, float(get("feature_grad_mult", 1.0)))),
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: unexpected value in the fairseq1 model config: {exc}") from exc
    if cfg.pos_conv_depth != 1:
        raise UserError(f"{where}: pos_conv_depth {cfg.pos_conv_depth} is not supported (1 only)")
    cfg.validate()
    return _name_arch(cfg)


def infer_config(
    state: Mapping[str, torch.Tensor], *, num_heads: int | None = None, where: str = ""
) -> EncoderConfig:
    """An EncoderConfig from project-named weights alone (when a checkpoint has no config).

    Everything but the head count and the conv strides is in the shapes; strides are
    the standard wav2vec 2.0 ones for a 7-layer CNN, and the head count is
    ``num_heads`` or 16 (XLS-R) for widths >= 1024, else ``model_dim // 64``.
    """
    try:
        conv_ids = sorted(
            {
                int(k.split(".")[3])
                for k in state
                if k.startswith("frontend.feature_extractor.layers.")
            }
        )
        convs = [state[f"frontend.feature_extractor.layers.{i}.conv.weight"] for i in conv_ids]
        layer_ids = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")}
        model_dim = int(state["encoder.layers.0.self_attn.q_proj.weight"].shape[0])
        weight_v = state["frontend.pos_encoder.conv.weight_v"]
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"{where}: cannot infer the encoder shape from the weights ({exc})"
        ) from exc
    if len(convs) != len(CONV_STRIDES):
        raise UserError(
            f"{where}: {len(convs)} conv layers without a config; only the standard 7-layer CNN is inferred"
        )
    heads = num_heads or (16 if model_dim >= 1024 else max(1, model_dim // 64))
    if num_heads is None:
        log.warning("%s: no config in the checkpoint; assuming %d attention heads", where, heads)
    cfg = EncoderConfig(
        model_dim=model_dim,
        num_layers=len(layer_ids),
        num_heads=heads,
        ffn_dim=int(state["encoder.layers.0.ffn.inner_proj.weight"].shape[0]),
        conv_layers=[(int(w.shape[0]), int(w.shape[2]), s) for w, s in zip(convs, CONV_STRIDES)],
        conv_bias="frontend.feature_extractor.layers.0.conv.bias" in state,
        extractor_norm="layer"
        if "frontend.feature_extractor.layers.0.layer_norm.weight" in state
        else "group",
        norm_order="pre" if "encoder.layer_norm.weight" in state else "post",
        pos_conv_kernel=int(weight_v.shape[2]),
        pos_conv_groups=model_dim // int(weight_v.shape[1]),
    )
    cfg.validate()
    return _name_arch(cfg)


def load_fairseq_file(path: Path) -> XlsrEncoder:
    """A fairseq1 (config under ``cfg`` / ``args``, or none) or fairseq2 wav2vec 2.0 ``.pt`` file."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise UserError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    state = {k: v for k, v in ckpt["model"].items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("encoder_frontend.") for k in state):  # fairseq2 layout
        try:
            mapped = convert_keys(state, keymaps.fairseq2_table(), ignore=keymaps.FAIRSEQ2_IGNORE)
        except KeyMapError as exc:
            raise UserError(f"{path}: {exc}") from exc
        return assemble(infer_config(mapped, where=str(path)), mapped, path)
    model_cfg = _fairseq1_model_cfg(ckpt, str(path))
    if model_cfg is not None:
        config = config_from_fairseq1(model_cfg, str(path))
        norms = {"extractor_norm": config.extractor_norm, "norm_order": config.norm_order}
    else:  # no readable config: map the names, then infer the shape from the weights
        # The key names cannot tell pre-LN from post-LN; every published wav2vec 2.0 with
        # LayerNorm convs (large-lv60, XLS-R) is pre-LN, every GroupNorm one post-LN.
        extractor = (
            "layer"
            if any(re.fullmatch(r".*conv_layers\.\d+\.2\.1\.weight", k) for k in state)
            else "group"
        )
        norms = {
            "extractor_norm": extractor,
            "norm_order": "pre" if extractor == "layer" else "post",
        }
        log.warning("%s: no model config; assuming a %s-LN model", path, norms["norm_order"])
        config = None
    table = keymaps.fairseq1_table(**norms)
    try:
        mapped = convert_keys(
            state, table, prefixes=keymaps.FAIRSEQ1_PREFIXES, ignore=keymaps.FAIRSEQ1_IGNORE
        )
    except KeyMapError as exc:
        raise UserError(f"{path}: {exc}") from exc
    if config is None:
        config = infer_config(mapped, where=str(path))
    return assemble(config, mapped, path)


# -- common ------------------------------------------------------------------------


def assemble(config: EncoderConfig, state: Mapping[str, torch.Tensor], where: Path) -> XlsrEncoder:
    """Build the model on the meta device and load ``state`` into it, checking every key and shape."""
    with torch.device("meta"):
        model = XlsrEncoder(config)
    expected = model.state_dict()
    diff = compare_state(expected, state)
    missing = diff.missing
    if missing == ["mask_emb"]:
        log.warning("%s: no mask embedding in the checkpoint; initialising it randomly", where)
        state = {**state, "mask_emb": torch.empty(config.model_dim).uniform_()}
        missing = []
    problems = _problems(diff, missing, expected, state)
    if problems:
        raise UserError(
            f"{where}: weights do not fit the {config.arch} encoder config: " + " | ".join(problems)
        )
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True
    )
    return model.eval()


def _problems(
    diff: StateMismatch,
    missing: list[str],
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
) -> list[str]:
    """The parts of the error message of :func:`assemble` (up to 20 names each)."""

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else "")

    problems = []
    if diff.mismatched:
        shapes = [
            f"{k} {tuple(state[k].shape)} vs expected {tuple(expected[k].shape)}"
            for k in diff.mismatched
        ]
        problems.append("shape mismatch: " + "; ".join(shapes[:20]))
    if missing:
        problems.append("missing keys: " + listed(missing))
    if diff.unexpected:
        problems.append("unexpected keys: " + listed(diff.unexpected))
    return problems
