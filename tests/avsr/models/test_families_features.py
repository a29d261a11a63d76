"""``avsr features`` dumps layer-N features with every encoder family (tiny HF dirs):
wav2vec2 base (post-LN, group-norm CNN), XLSR-53 / MMS (pre-LN) and w2v-BERT 2.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avsr.cli import main
from avsr.models.encoders import load_encoder
from tests.helpers.audio_corpus import read_clip, write_noise_corpus
from tests.helpers.hf_models import POST_LN, PRE_LN, save_tiny_hf

pytest.importorskip("transformers")

# family -> the wav2vec 2.0 block options (None: w2v-BERT 2.0)
FAMILIES = {"w2v2_base": POST_LN, "xlsr_53": PRE_LN, "w2vbert": None}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_features_every_family(family: str, tmp_path: Path) -> None:
    manifest = write_noise_corpus(tmp_path / "data", [7040, 4800])
    wavs = [read_clip(manifest, i) for i in range(2)]
    save_tiny_hf(tmp_path / "hf", FAMILIES[family])
    out = tmp_path / "feats"
    args = ["features", "--manifest", str(manifest), "--encoder"]
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
