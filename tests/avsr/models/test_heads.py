from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from avsr.models.heads import (
    CTCHead,
    DecoderConfig,
    TransformerDecoder,
    beam_search,
    ctc_greedy_decode,
    decoder_preset,
)

BOS, PAD, EOS = 0, 1, 2


def _decoder(vocab: int, seed: int = 0, enc_dim: int = 12) -> TransformerDecoder:
    torch.manual_seed(seed)
    cfg = DecoderConfig(num_layers=2, model_dim=16, ffn_dim=32, num_heads=2, dropout=0.0)
    dec = TransformerDecoder(enc_dim, vocab, cfg).eval()
    with torch.no_grad():  # sharpen the output so that beams really differ
        dec.output_proj.weight.mul_(4.0)
    return dec


def _seq_logprob(dec: TransformerDecoder, enc: torch.Tensor, seq: list[int]) -> float:
    """log p(seq + eos | enc) by one teacher-forced pass."""
    prev = torch.tensor([[BOS, *seq]])
    tgt = torch.tensor([[*seq, EOS]])
    logp = F.log_softmax(dec(prev, enc[None]).float(), dim=-1)[0]
    logp[:, BOS] = float("-inf")
    logp[:, PAD] = float("-inf")
    return float(logp.gather(1, tgt.T).sum().detach())


def test_ctc_greedy_collapse() -> None:
    V = 6
    frames = [[4, 4, 1, 4, 5, 5, 1, 1, 3], [1, 1, 5, 5, 5, 1, 5, 0, 0]]
    lens = torch.tensor([9, 7])
    logits = torch.full((2, 9, V), -5.0)
    for b, row in enumerate(frames):
        for t, tok in enumerate(row):
            logits[b, t, tok] = 5.0
    out = ctc_greedy_decode(logits, lens, blank_id=1)
    # repeats merged, blanks dropped, a blank separates two equal tokens, padding frames ignored
    assert out == [[4, 4, 5, 3], [5, 5]]


def test_ctc_head_loss_and_grad() -> None:
    torch.manual_seed(0)
    head = CTCHead(8, 7)
    feats = torch.randn(2, 10, 8, requires_grad=True)
    logits = head(feats)
    assert logits.shape == (2, 10, 7)
    loss = head.loss(logits, torch.tensor([10, 6]), [[4, 5, 6], [5]])
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert feats.grad is not None and feats.grad[1, 6:].abs().sum() == 0  # padding gets no gradient


def test_incremental_matches_full_forward() -> None:
    dec = _decoder(9)
    enc = torch.randn(3, 7, 12)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    prev = torch.randint(3, 9, (3, 5))
    prev[:, 0] = BOS
    full = dec(prev, enc, pad)
    state = dec.init_state(enc, pad)
    steps = torch.stack([dec.step(prev[:, t], state) for t in range(5)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    # padding frames of the encoder output do not matter
    enc2 = enc.clone()
    enc2[1, 5:] = 100.0
    torch.testing.assert_close(dec(prev, enc2, pad), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_search_is_exhaustive_search_when_wide(seed: int) -> None:
    vocab = 6  # 4 specials + 2 real tokens
    max_len = 4  # up to 3 real tokens + eos
    dec = _decoder(vocab, seed)
    enc = torch.randn(5, 12)
    real = [t for t in range(vocab) if t not in (BOS, PAD, EOS)]
    best_seq, best_score = None, float("-inf")
    for n in range(max_len):
        for seq in itertools.product(real, repeat=n):
            s = _seq_logprob(dec, enc, list(seq))
            if s > best_score:
                best_seq, best_score = list(seq), s
    # beam 16 keeps every prefix of this search space
    hyp = beam_search(dec, enc[None], None, beam=16, max_len=max_len)[0][0]
    assert hyp.tokens == best_seq
    assert hyp.score == pytest.approx(best_score, abs=1e-4)
    # the reported score of any hypothesis is the model's log-probability of it
    hyp5 = beam_search(dec, enc[None], None, beam=5, max_len=max_len)[0][0]
    assert hyp5.score == pytest.approx(_seq_logprob(dec, enc, hyp5.tokens), abs=1e-4)
    assert hyp5.score <= best_score + 1e-4


def _greedy(dec: TransformerDecoder, enc: torch.Tensor, max_len: int) -> list[int]:
    seq: list[int] = []
    for t in range(max_len):
        prev = torch.tensor([[BOS, *seq]])
        logp = F.log_softmax(dec(prev, enc[None]).float(), dim=-1)[0, -1]
        logp[BOS] = logp[PAD] = float("-inf")
        tok = EOS if t == max_len - 1 else int(logp.argmax())
        if tok == EOS:
            break
        seq.append(tok)
    return seq


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_is_greedy(seed: int) -> None:
    dec = _decoder(11, seed)
    enc = torch.randn(6, 12)
    hyp = beam_search(dec, enc[None], None, beam=1, max_len=8)[0][0]
    assert hyp.tokens == _greedy(dec, enc, 8)


def test_beam_batched_equals_one_by_one() -> None:
    dec = _decoder(13, 5)
    lens = [9, 4, 7]
    enc = torch.randn(3, 9, 12)
    pad = torch.arange(9)[None, :] >= torch.tensor(lens)[:, None]
    batched = beam_search(dec, enc, pad, beam=5, max_len=10, nbest=3)
    for b, n in enumerate(lens):
        single = beam_search(dec, enc[b : b + 1, :n], None, beam=5, max_len=10, nbest=3)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in single]
        for hb, hs in zip(batched[b], single):
            assert hb.score == pytest.approx(hs.score, abs=1e-4)
        scores = [h.score for h in batched[b]]
        assert scores == sorted(scores, reverse=True)


def test_decoder_loss_label_smoothing_and_presets() -> None:
    dec = _decoder(9)
    enc = torch.randn(2, 5, 12)
    prev = torch.tensor([[BOS, 4, 5], [BOS, 6, PAD]])
    tgt = torch.tensor([[4, 5, EOS], [6, EOS, PAD]])
    logits = dec(prev, enc)
    loss = dec.loss(logits, tgt)
    logp = F.log_softmax(logits, dim=-1).reshape(-1, 9)
    flat = tgt.reshape(-1)
    keep = flat != PAD
    nll = -logp[keep].gather(1, flat[keep, None]).sum()
    uniform = -logp[keep].mean(dim=1).sum()
    torch.testing.assert_close(loss, 0.9 * nll + 0.1 * uniform)
    assert decoder_preset("muavic").model_dim == 768 and decoder_preset("muavic").num_layers == 6
    assert decoder_preset("tiny", dropout=0.0).dropout == 0.0
    with pytest.raises(ValueError):
        decoder_preset("huge")
