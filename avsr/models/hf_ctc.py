"""Export an audio-only CTC fine-tuned model to an HF ``Wav2Vec2ForCTC`` directory.

The written folder loads with ``transformers`` alone::

    model = Wav2Vec2ForCTC.from_pretrained(DIR)
    tok = Wav2Vec2CTCTokenizer.from_pretrained(DIR)
    text = tok.batch_decode(model(wav).logits.argmax(-1))  # CTC grouping, blank removed

(``wav`` normalised per utterance to zero mean and unit variance, as
``Wav2Vec2FeatureExtractor(do_normalize=True)`` does; ``preprocessor_config.json``
says so). Only an audio-only encoder (``modalities: [audio]``, XLS-R CNN front end)
has an HF equivalent: an AV model's fusion has none.

Vocabulary: the SentencePiece pieces with the word-boundary mark ``▁`` written as a
space, so that the tokenizer's ``"".join(tokens).strip()`` gives the same text as
the project's decoding; the CTC blank is the pad id (1), HF's ``pad_token_id``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from avsr.errors import UserError
from avsr.io import atomic_path, atomic_write_json
from avsr.models.av.config import AVModelConfig
from avsr.models.av.model import AVEncoder
from avsr.models.encoders import family_of, load_encoder
from avsr.models.finetuned import FinetunedConfig, FinetunedModel
from avsr.models.state_dicts import read_hf_weights
from avsr.models.xlsr import WAV2VEC2_FAMILY
from avsr.text.tokenizer import Tokenizer

# project name (inside FinetunedModel) -> HF Wav2Vec2ForCTC name
_TABLE: list[tuple[str, str]] = [
    (r"encoder\.xlsr\.frontend\.feature_extractor\.layers\.0\.group_norm\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"encoder\.xlsr\.frontend\.feature_extractor\.layers\.(\d+)\.conv\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.conv.\2"),
    (r"encoder\.xlsr\.frontend\.feature_extractor\.layers\.(\d+)\.layer_norm\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"encoder\.xlsr\.frontend\.post_extract_layer_norm\.(weight|bias)", r"wav2vec2.feature_projection.layer_norm.\1"),
    (r"encoder\.xlsr\.frontend\.model_dim_proj\.(weight|bias)", r"wav2vec2.feature_projection.projection.\1"),
    (r"encoder\.xlsr\.frontend\.pos_encoder\.conv\.weight_g",
     "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"encoder\.xlsr\.frontend\.pos_encoder\.conv\.weight_v",
     "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"encoder\.xlsr\.frontend\.pos_encoder\.conv\.bias", "wav2vec2.encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.xlsr\.frontend\.layer_norm\.(weight|bias)", r"wav2vec2.encoder.layer_norm.\1"),
    (r"encoder\.xlsr\.encoder\.layer_norm\.(weight|bias)", r"wav2vec2.encoder.layer_norm.\1"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.attention.\2_proj.\3"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.self_attn\.output_proj\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.attention.out_proj.\2"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.ffn\.inner_proj\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.ffn\.output_proj\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.xlsr\.encoder\.layers\.(\d+)\.ffn_layer_norm\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.final_layer_norm.\2"),
    (r"encoder\.audio_mask_emb", "wav2vec2.masked_spec_embed"),
    (r"encoder\.xlsr\.mask_emb", "wav2vec2.masked_spec_embed"),
    (r"head\.proj\.(weight|bias)", r"lm_head.\1"),
]
_SKIP: tuple[str, ...] = ()


def _hf_name(key: str) -> str | None:
    if any(re.fullmatch(p, key) for p in _SKIP):
        return None
    for pattern, repl in _TABLE:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    raise UserError(f"HF export: no Wav2Vec2ForCTC name for parameter {key!r}")


def hf_config(enc_cfg: Any, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> dict[str, Any]:
    """``config.json`` of a ``Wav2Vec2ForCTC`` with the shape of ``enc_cfg`` (EncoderConfig)."""
    return {
        "architectures": ["Wav2Vec2ForCTC"],
        "model_type": "wav2vec2",
        "hidden_size": enc_cfg.model_dim,
        "num_hidden_layers": enc_cfg.num_layers,
        "num_attention_heads": enc_cfg.num_heads,
        "intermediate_size": enc_cfg.ffn_dim,
        "hidden_act": "gelu",
        "conv_dim": [c[0] for c in enc_cfg.conv_layers],
        "conv_kernel": [c[1] for c in enc_cfg.conv_layers],
        "conv_stride": [c[2] for c in enc_cfg.conv_layers],
        "num_feat_extract_layers": len(enc_cfg.conv_layers),
        "conv_bias": bool(enc_cfg.conv_bias),
        "feat_extract_norm": enc_cfg.extractor_norm,
        "feat_extract_activation": "gelu",
        "do_stable_layer_norm": enc_cfg.norm_order == "pre",
        "num_conv_pos_embeddings": enc_cfg.pos_conv_kernel,
        "num_conv_pos_embedding_groups": enc_cfg.pos_conv_groups,
        "position_embeddings_type": "conv",
        "layer_norm_eps": 1e-5,
        "hidden_dropout": enc_cfg.dropout,
        "attention_dropout": enc_cfg.attn_dropout,
        "activation_dropout": enc_cfg.ffn_dropout,
        "feat_proj_dropout": enc_cfg.feature_dropout,
        "final_dropout": 0.0,
        "layerdrop": enc_cfg.layer_drop,
        "apply_spec_augment": False,
        "vocab_size": vocab_size,
        "pad_token_id": pad_id,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": True,
        "torch_dtype": "float32",
    }


def _check_exportable(model: Any) -> None:
    """UserError unless ``model`` is an audio-only wav2vec 2.0 CTC model."""
    enc = model.encoder
    if model.config.head != "ctc":
        raise UserError("HF export: only CTC models export to Wav2Vec2ForCTC (this one has a seq2seq head)")
    if getattr(enc, "visual", None) is not None or getattr(enc, "fbank", None) is not None:
        raise UserError(
            "HF export: only an audio-only encoder (model.modalities [audio], CNN front end) has a "
            "Wav2Vec2ForCTC equivalent"
        )
    family = family_of(enc.xlsr).name
    if family != WAV2VEC2_FAMILY.name:
        raise UserError(
            f"HF export: a {family} encoder has no Wav2Vec2ForCTC equivalent (wav2vec2 family only)"
        )


def _hf_state(model: Any) -> dict[str, torch.Tensor]:
    """The model's tensors under their Wav2Vec2ForCTC names (fp32, CPU)."""
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        name = _hf_name(key)
        if name is None or (key == "encoder.xlsr.mask_emb" and name in state):
            continue  # the AV encoder's own audio mask embedding wins over the XLS-R one
        state[name] = value.detach().to("cpu", torch.float32).contiguous().clone()
    return state


def _hf_vocab(tok: Any) -> dict[str, int]:
    """``vocab.json``: the pieces with ``\u2581`` written as a space (ids >= 4), by id."""
    vocab = {}
    for i in range(tok.vocab_size):
        piece = tok.id_to_piece(i)
        if i >= 4:
            piece = piece.replace("\u2581", " ")
        if piece in vocab:
            raise UserError(f"HF export: two pieces map to the token {piece!r}")
        vocab[piece] = i
    return vocab


TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "Wav2Vec2CTCTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "word_delimiter_token": "|",
    "do_lower_case": False,
    "clean_up_tokenization_spaces": False,
}
"""``tokenizer_config.json`` of an export."""


def export_hf_ctc(model: Any, out: str | Path) -> Path:
    """Write ``model`` (an audio-only CTC :class:`~avsr.models.finetuned.FinetunedModel`) as an
    HF ``Wav2Vec2ForCTC`` + ``Wav2Vec2CTCTokenizer`` directory."""
    out = Path(out)
    enc = model.encoder
    _check_exportable(model)
    tok = model.tokenizer
    state = _hf_state(model)
    if enc.cfg.encoder.family != WAV2VEC2_FAMILY.name:
        raise UserError(f"HF export: encoder family {enc.cfg.encoder.family!r} is not wav2vec2")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    atomic_write_json(out / "config.json", hf_config(enc.xlsr.config, tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id))
    atomic_write_json(out / "vocab.json", _hf_vocab(tok))
    atomic_write_json(out / "tokenizer_config.json", TOKENIZER_CONFIG)
    atomic_write_json(
        out / "preprocessor_config.json",
        {
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1,
            "sampling_rate": 16000,
            "padding_value": 0.0,
            "do_normalize": bool(enc.cfg.normalize_audio),
            "return_attention_mask": True,
        },
    )
    (out / "README.txt").write_text(
        "Exported by xlavsr from a fine-tuned audio-only CTC model.\n"
        f"Source config: {json.dumps({'task': model.config.task, 'lang': model.config.lang})}\n",
        encoding="utf-8",
    )
    return out


# -- import ------------------------------------------------------------------------


def _char_tokenizer(tokens: list[str], *, delimiter: str) -> Any:
    """A SentencePiece ``char`` model whose pieces are ``tokens`` (+ ``▁`` for the delimiter),
    with the project's special ids 0..3."""
    import sentencepiece as spm

    symbols = [t for t in tokens if t != delimiter]
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([" ".join(symbols) or "x"]),
            model_writer=buf,
            model_type="char",
            vocab_size=4 + len(symbols) + 1,
            hard_vocab_limit=False,
            user_defined_symbols=symbols,
            bos_id=0,
            pad_id=1,
            eos_id=2,
            unk_id=3,
            character_coverage=1.0,
            normalization_rule_name="identity",
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise UserError(f"HF import: cannot build a tokenizer from vocab.json: {exc}") from exc
    return Tokenizer(buf.getvalue())


def _hf_lm_head(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (V, D), bias (V,)) of the CTC head of an HF ``Wav2Vec2ForCTC`` dir, fp32."""
    state = read_hf_weights(path)
    if "lm_head.weight" not in state:
        raise UserError(f"{path}: no lm_head (not a Wav2Vec2ForCTC checkpoint)")
    w = state["lm_head.weight"].float()
    b = state.get("lm_head.bias")
    return w, (b.float() if b is not None else torch.zeros(w.shape[0]))


def _read_ctc_dir(path: Path) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """(config.json, vocab.json, tokenizer_config.json or {}) of an HF CTC dir."""
    try:
        hf_cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        vocab: dict[str, int] = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not an HF CTC directory with config.json and vocab.json ({exc})") from exc
    if vocab and all(isinstance(v, dict) for v in vocab.values()):
        raise UserError(f"{path}/vocab.json: per-language vocabularies (MMS adapters) are not supported")
    tok_cfg: dict[str, Any] = {}
    if (path / "tokenizer_config.json").is_file():
        tok_cfg = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    return hf_cfg, vocab, tok_cfg


def _special_tokens(tok_cfg: dict[str, Any]) -> dict[str, str]:
    """The bos / pad / eos / unk tokens of an HF tokenizer config (HF defaults when absent)."""
    specials = {
        "bos": tok_cfg.get("bos_token", "<s>"),
        "pad": tok_cfg.get("pad_token", "<pad>"),
        "eos": tok_cfg.get("eos_token", "</s>"),
        "unk": tok_cfg.get("unk_token", "<unk>"),
    }
    return {k: (v["content"] if isinstance(v, dict) else v) for k, v in specials.items()}


def _project_ids(
    path: Path, by_id: dict[int, str], hf_size: int, specials: dict[str, str], delimiter: str, tok: Any
) -> dict[int, int]:
    """HF id -> project id for every HF id below ``hf_size`` (specials fixed at 0..3)."""
    ours: dict[int, int] = {}
    fixed = {specials["bos"]: 0, specials["pad"]: 1, specials["eos"]: 2, specials["unk"]: 3}
    piece_ids = {tok.id_to_piece(i): i for i in range(tok.vocab_size)}
    for i, t in by_id.items():
        if i >= hf_size:
            continue
        if t in fixed:
            ours[i] = fixed[t]
        else:
            piece = "\u2581" if t == delimiter else t
            if piece not in piece_ids:
                raise UserError(f"{path}: token {t!r} could not be placed in the tokenizer")
            ours[i] = piece_ids[piece]
    return ours


def load_hf_ctc(path: str | Path) -> Any:
    """An HF ``Wav2Vec2ForCTC`` directory (with its ``vocab.json``) -> an audio-only CTC
    :class:`~avsr.models.finetuned.FinetunedModel` giving the same logits (rows reordered to
    the project's ids: bos/pad(blank)/eos/unk = 0/1/2/3) and the same greedy transcripts."""
    path = Path(path)
    hf_cfg, vocab, tok_cfg = _read_ctc_dir(path)
    specials = _special_tokens(tok_cfg)
    delimiter = tok_cfg.get("word_delimiter_token", "|")
    pad_id = int(hf_cfg.get("pad_token_id", vocab.get(specials["pad"], 0)))
    by_id = {i: t for t, i in vocab.items()}
    if by_id.get(pad_id) != specials["pad"]:
        raise UserError(f"{path}: pad_token_id {pad_id} is not the pad token {specials['pad']!r} of vocab.json")
    w, b = _hf_lm_head(path)
    hf_size = w.shape[0]
    plain = [by_id[i] for i in sorted(by_id) if i < hf_size and by_id[i] not in specials.values()]
    tok = _char_tokenizer(plain, delimiter=delimiter)
    ours = _project_ids(path, by_id, hf_size, specials, delimiter, tok)
    xlsr = load_encoder(path)
    av_cfg = AVModelConfig(modalities=["audio"])
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        av_cfg.normalize_audio = bool(json.loads(pre.read_text(encoding="utf-8")).get("do_normalize", True))
    encoder = AVEncoder(av_cfg, xlsr)
    ft = FinetunedConfig(head="ctc", modality="a", normalize="none", lang=None)
    model = FinetunedModel(encoder, tok, ft)
    with torch.no_grad():
        proj = model.head.proj
        proj.weight.zero_()
        proj.bias.fill_(-1e4)  # project ids with no HF row (e.g. a missing bos) are never chosen
        for hf_id, our_id in ours.items():
            proj.weight[our_id] = w[hf_id]
            proj.bias[our_id] = b[hf_id]
    model.hf_id_map = ours  # type: ignore[attr-defined]
    return model.eval()
