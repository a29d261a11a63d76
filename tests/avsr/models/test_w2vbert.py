"""w2v-BERT 2.0: the filterbank matches SeamlessM4TFeatureExtractor, and a tiny random HF
Wav2Vec2BertModel saved with save_pretrained loads through the project's loaders and
matches HF's hidden states at every layer (fp32, eval, padded batch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.cli import main
from avsr.data.batch import AVBatch
from avsr.models.encoders import load_encoder, save_encoder
from avsr.models.finetuned import load_finetuned, save_finetuned
from avsr.models.w2vbert import W2vBertEncoder, W2vBertFbank, build_w2vbert
from tests.helpers.hf_models import randomize, w2vbert_config
from tests.helpers.tiny_models import audio_finetuned

transformers = pytest.importorskip("transformers")

LENS = [8000, 5555, 3333]  # odd and even filterbank frame counts


def waves() -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(0)
    items = [(0.1 * g.standard_normal(n)).astype(np.float32) for n in LENS]
    wav = torch.zeros(len(LENS), max(LENS))
    for i, w in enumerate(items):
        wav[i, : len(w)] = torch.from_numpy(w)
    return items, wav, torch.tensor(LENS)


def hf_features(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    fe = transformers.SeamlessM4TFeatureExtractor()
    out = fe(items, sampling_rate=16000, return_tensors="pt")
    return out["input_features"], out["attention_mask"]


def test_fbank_matches_seamless_m4t_feature_extractor() -> None:
    items, wav, lens = waves()
    ref, mask = hf_features(items)
    ours, our_lens = W2vBertFbank()(wav, lens)
    assert our_lens.tolist() == mask.sum(1).tolist()
    assert ours.shape[-1] == ref.shape[-1] == 160
    for i, n in enumerate(our_lens.tolist()):
        torch.testing.assert_close(ours[i, :n], ref[i, :n], atol=1e-4, rtol=1e-4)
    # per utterance: the padded batch gives each item's features alone
    alone, _ = W2vBertFbank()(wav[2:, : LENS[2]], lens[2:])
    torch.testing.assert_close(alone[0], ours[2, : our_lens[2]])


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    cfg = w2vbert_config(left_max_position_embeddings=6, right_max_position_embeddings=3, layerdrop=0.0,
                         conformer_conv_dropout=0.0, hidden_dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Wav2Vec2BertModel(cfg).eval()
    randomize(model, scale=0.2)
    d = tmp_path_factory.mktemp("w2vbert")
    model.save_pretrained(d)
    return model, d


def test_hf_parity_every_layer(hf_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, d = hf_model
    enc = load_encoder(d)
    assert isinstance(enc, W2vBertEncoder)
    assert (enc.config.model_dim, enc.config.num_layers, enc.config.conv_kernel) == (32, 2, 5)
    items, wav, lens = waves()
    feats, mask = hf_features(items)
    with torch.no_grad():
        hidden = model(feats, attention_mask=mask, output_hidden_states=True).hidden_states
    n_layers = len(hidden) - 1
    flens = mask.sum(1)
    for layer in [*range(n_layers), None]:
        ref = hidden[n_layers if layer is None else layer]
        with torch.no_grad():
            same_input = enc.forward_features(feats, flens, layer=layer)  # HF's own fbank
            end_to_end, out_lens = enc(wav, lens, layer=layer)  # our fbank
        assert out_lens.tolist() == flens.tolist()
        for i, n in enumerate(flens.tolist()):
            diff = (same_input[i, :n] - ref[i, :n]).abs().max().item()
            assert diff < 1e-4, f"layer {layer} item {i}: {diff}"
            diff = (end_to_end[i, :n] - ref[i, :n]).abs().max().item()
            assert diff < 1e-3, f"end to end, layer {layer} item {i}: {diff}"
    # project format round trip
    save_encoder(enc, tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    assert isinstance(again, W2vBertEncoder) and again.config == enc.config
    with torch.no_grad():
        assert torch.equal(again(wav, lens)[0], enc(wav, lens)[0])


def test_ctc_dir_loads_the_encoder(tmp_path: Path) -> None:
    cfg = w2vbert_config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         conv_depthwise_kernel_size=3, vocab_size=10)  # fmt: skip
    transformers.Wav2Vec2BertForCTC(cfg).save_pretrained(tmp_path)
    enc = load_encoder(tmp_path)
    assert isinstance(enc, W2vBertEncoder) and enc.num_layers == 1


def test_model_info_w2vbert_dir(
    hf_model: tuple[torch.nn.Module, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "info", str(hf_model[1]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "w2vbert" and info["layers"] == 2 and info["feature_dim"] == 160


def test_finetuned_ctc_model_with_w2vbert_saves_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    texts = ["bin blue at f two now", "lay red by g nine again"]
    model = audio_finetuned(build_w2vbert("w2vbert_tiny"), texts)
    _, wav, lens = waves()
    batch = AVBatch(ids=["a", "b", "c"], indices=torch.arange(3), audio=wav, audio_lens=lens,
                    video=None, video_lens=lens // 640, texts=["bin blue", "lay red", "at f"])  # fmt: skip
    loss, n, _ = model.train().compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and n > 0
    assert model.encoder.xlsr.frontend.proj.weight.grad is not None
    save_finetuned(model.eval(), tmp_path / "ft")
    again = load_finetuned(tmp_path / "ft")
    with torch.no_grad():
        a = model.encode(batch, modality="a").feats
        b = again.encode(batch, modality="a").feats
    torch.testing.assert_close(a, b)
