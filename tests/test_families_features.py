"""``avsr features`` dumps layer-N features with every encoder family (tiny HF dirs):
wav2vec2 base (post-LN, group-norm CNN), XLSR-53 / MMS (pre-LN) and w2v-BERT 2.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avsr.cli import main
from avsr.io import ManifestRow, write_manifest
from avsr.models.xlsr import load_encoder

transformers = pytest.importorskip("transformers")

W2V2 = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)  # fmt: skip
FAMILIES = {
    "w2v2_base": lambda: transformers.Wav2Vec2Model(
        transformers.Wav2Vec2Config(
            **W2V2, feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False
        )
    ),
    "xlsr_53": lambda: transformers.Wav2Vec2Model(
        transformers.Wav2Vec2Config(
            **W2V2, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True
        )
    ),
    "w2vbert": lambda: transformers.Wav2Vec2BertModel(
        transformers.Wav2Vec2BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            conv_depthwise_kernel_size=5,
        )  # fmt: skip
    ),
}


def manifest(root: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    rows, wavs = [], []
    for i, n in enumerate([7040, 4800]):
        wav = (0.1 * rng.standard_normal(n)).astype(np.float32)
        sf.write(root / "audio" / f"c{i}.wav", wav, 16000, subtype="PCM_16")
        wavs.append(sf.read(root / "audio" / f"c{i}.wav", dtype="float32")[0])
        rows.append(ManifestRow(id=f"c{i}", video="", audio=f"audio/c{i}.wav", n_video_frames=0,
                                n_audio_samples=n))  # fmt: skip
    write_manifest(root / "train.tsv", root, rows)
    return wavs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_features_every_family(family: str, tmp_path: Path) -> None:
    wavs = manifest(tmp_path / "data")
    torch.manual_seed(0)
    FAMILIES[family]().eval().save_pretrained(tmp_path / "hf")
    out = tmp_path / "feats"
    args = ["features", "--manifest", str(tmp_path / "data" / "train.tsv"), "--encoder"]
    assert main([*args, str(tmp_path / "hf"), "--out", str(out), "--layer", "1"]) == 0
    feats = np.load(out / "train_0_1.npy")
    lens = [int(x) for x in (out / "train_0_1.len").read_text().split()]
    enc = load_encoder(tmp_path / "hf")
    assert lens == [enc.frame_count(w.size) for w in wavs] and sum(lens) == feats.shape[0]
    assert feats.shape[1] == 32 and np.isfinite(feats).all()
    with torch.no_grad():  # the first clip alone (group-norm CNNs depend on the padding)
        ref, _ = enc(torch.from_numpy(wavs[0])[None], torch.tensor([wavs[0].size]), layer=1,
                     normalize=True)  # fmt: skip
    np.testing.assert_allclose(feats[: lens[0]], ref[0].numpy(), atol=1e-3, rtol=1e-3)
