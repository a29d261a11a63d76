"""FinetunedModel heads + tokenizer + decoding on a stand-in encoder (fast)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from avsr.data.batch import AVBatch
from avsr.models.finetuned import FinetunedConfig, FinetunedModel
from avsr.models.heads.decoder import DecoderConfig
from avsr.text import train_tokenizer

TEXTS = ["bin blue at f two now", "lay red by g nine again", "place green in h one soon", "set white with p four please"]


@dataclass
class _Out:
    feats: Tensor
    lens: Tensor
    padding_mask: Tensor
    mask: Tensor | None = None


class FrameEncoder(nn.Module):
    """Stand-in with the AV encoder's interface: 320-sample audio frames -> Linear (50 Hz),
    video frame means repeated to 50 Hz and added through a Linear."""

    has_video = True

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.model_dim = dim
        self.audio_proj = nn.Linear(320, dim)
        self.video_proj = nn.Linear(1, dim)

    def forward(self, audio, audio_lens, video, video_lens, *, modality="av", apply_mask=False) -> _Out:  # noqa: ANN001
        b = audio.shape[0]
        t = audio.shape[1] // 320
        x = self.audio_proj(audio[:, : t * 320].reshape(b, t, 320))
        if modality == "v":
            x = x * 0
        if video is not None and modality != "a":
            v = video.mean(dim=(1, 3, 4)).repeat_interleave(2, dim=1)[:, :t, None]
            v = nn.functional.pad(v, (0, 0, 0, t - v.shape[1]))
            x = x + self.video_proj(v)
        lens = audio_lens // 320
        pad = torch.arange(t)[None, :] >= lens[:, None]
        return _Out(x.masked_fill(pad[..., None], 0.0), lens, pad)


def _batch(n_frames: list[int], seed: int = 0) -> AVBatch:
    g = torch.Generator().manual_seed(seed)
    b = len(n_frames)
    audio = torch.zeros(b, max(n_frames) * 320)
    for i, n in enumerate(n_frames):
        audio[i, : n * 320] = torch.randn(n * 320, generator=g)
    vlen = torch.tensor([(n + 1) // 2 for n in n_frames])
    video = torch.randn(b, 1, int(vlen.max()), 4, 4, generator=g)
    return AVBatch(
        ids=[f"c{i}" for i in range(b)],
        indices=torch.arange(b),
        audio=audio,
        audio_lens=torch.tensor(n_frames) * 320,
        video=video,
        video_lens=vlen,
        texts=TEXTS[:b],
        langs=["en"] * b,
    )


def _model(head: str, ctc_weight: float = 0.0) -> FinetunedModel:
    torch.manual_seed(0)
    tok = train_tokenizer(TEXTS, vocab_size=1000)
    cfg = FinetunedConfig(
        head=head,  # type: ignore[arg-type]
        decoder=DecoderConfig(num_layers=1, model_dim=32, ffn_dim=64, num_heads=2, dropout=0.0, max_len_b=40),
        ctc_weight=ctc_weight,
    )
    cfg.ctc.dropout = 0.0
    return FinetunedModel(FrameEncoder(), tok, cfg)


@pytest.mark.parametrize("head", ["ctc", "s2s"])
def test_overfits_and_decodes_exactly(head: str) -> None:
    model = _model(head)
    batch = _batch([60, 45, 52, 38])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150 if head == "s2s" else 250):
        loss, n, logs = model.compute_loss(batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad()
        first = first if first is not None else float(loss) / n
    assert float(loss) / n < first / 5
    assert logs["n_sentences"] == 4 and logs["n_tokens"] >= 24
    hyps = model.decode(batch, modality="av", beam=5)
    assert hyps == TEXTS
    assert model.training  # decode restores the mode


def test_targets_normalised_and_modes() -> None:
    model = _model("s2s")
    ids = model.targets(["Bin BLUE, at F two now!"])
    assert model.tokenizer.decode(ids[0]) == TEXTS[0]
    batch = _batch([20, 30])
    with pytest.raises(Exception, match="modality"):
        model.decode(batch, modality="x")
    batch.video = None
    with pytest.raises(Exception, match="needs video"):
        model.decode(batch, modality="av")
    assert len(model.decode(batch, modality="a", beam=2)) == 2


def test_joint_ctc_attention_loss() -> None:
    """ctc_weight mixes an auxiliary CTC loss into the seq2seq loss and trains the CTC
    branch (its save/load round trip: test_finetune_av)."""
    batch = _batch([60, 45, 52, 38])
    plain = _model("s2s")
    assert plain.ctc_aux is None
    joint = _model("s2s", ctc_weight=0.3)
    assert joint.ctc_aux is not None
    joint.load_state_dict(plain.state_dict(), strict=False)  # same encoder and decoder
    att, n, _ = plain.compute_loss(batch)
    loss, n2, logs = joint.compute_loss(batch)
    assert n == n2
    ctc = logs["loss_ctc:num"]
    assert logs["loss_att:num"] == pytest.approx(float(att), rel=1e-5)
    assert float(loss) == pytest.approx(0.7 * float(att) + 0.3 * ctc, rel=1e-5)
    loss.backward()
    assert joint.ctc_aux.proj.weight.grad is not None and joint.ctc_aux.proj.weight.grad.abs().sum() > 0
    with pytest.raises(Exception, match="ctc_weight"):
        _model("s2s", ctc_weight=1.0)
