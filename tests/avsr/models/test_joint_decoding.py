"""Joint CTC/attention beam search: the CTC prefix scores, the search, the model and the CLI."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avsr.cli import main
from avsr.data import make_synthetic_av_data
from avsr.errors import UserError
from avsr.evaluation.results import EvalResults
from avsr.inference import MediaInput, WindowDecoder
from avsr.models.finetuned import check_joint_decoding, load_finetuned
from avsr.models.heads import DecoderConfig, TransformerDecoder, beam_search
from avsr.models.heads.beam import JointCTC
from avsr.models.heads.ctc_prefix import CTCPrefixScorer
from tests.helpers.tiny_models import make_tiny_finetuned

BOS, PAD, EOS = 0, 1, 2
NEG_INF = float("-inf")


# -- the prefix scores ----------------------------------------------------------------


def _labelings(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Probability of every label sequence: the sum over all its alignments (blank = PAD)."""
    frames, vocab = log_probs.shape
    probs: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(s for i, s in enumerate(path) if s != PAD and (i == 0 or s != path[i - 1]))
        p = math.exp(sum(float(log_probs[t, s]) for t, s in enumerate(path)))
        probs[labels] = probs.get(labels, 0.0) + p
    return probs


def _brute_psi(probs: dict[tuple[int, ...], float], h: tuple[int, ...], c: int) -> float:
    """log psi(h + c) by summation: eos -> exactly h; else every labeling starting with h + c."""
    if c == EOS:
        total = probs.get(h, 0.0)
    else:
        total = sum(p for seq, p in probs.items() if seq[: len(h) + 1] == (*h, c))
    return math.log(total) if total > 0 else NEG_INF


@pytest.mark.parametrize("seed", [0, 1])
def test_prefix_scores_match_sum_over_alignments(seed: int) -> None:
    torch.manual_seed(seed)
    frames, vocab, k = 5, 5, 2
    lens = torch.tensor([5, 4])
    log_probs = torch.randn(2, frames, vocab, dtype=torch.float64).log_softmax(-1)
    probs = [_labelings(log_probs[b, : int(lens[b])]) for b in range(2)]
    scorer = CTCPrefixScorer(log_probs, lens, k=k, blank_id=PAD, eos_id=EOS)
    # rows b * k + j follow prefixes[j] (all grow together), through a repeat and bos as a label
    prefixes = [(3, 3, 4), (4, 0, 3)]
    for step in range(4):
        psi = scorer.score()
        for b, j in itertools.product(range(2), range(k)):
            h = prefixes[j][:step]
            for c in range(vocab):
                want = NEG_INF if c == PAD else _brute_psi(probs[b], h, c)
                got = float(psi[b * k + j, c])
                assert (got == want == NEG_INF) or got == pytest.approx(want, abs=1e-5), (b, h, c)
        if step < 3:
            tokens = torch.tensor([prefixes[j][step] for _ in range(2) for j in range(k)])
            scorer.advance(torch.arange(2 * k), tokens)


def test_prefix_scores_of_a_candidate_subset_and_reordering() -> None:
    torch.manual_seed(3)
    log_probs = torch.randn(1, 7, 6).log_softmax(-1)
    full = CTCPrefixScorer(log_probs, torch.tensor([7]), k=3, blank_id=PAD, eos_id=EOS)
    part = CTCPrefixScorer(log_probs, torch.tensor([7]), k=3, blank_id=PAD, eos_id=EOS)
    cand = torch.tensor([[3, 5, 2], [4, 3, 0], [5, 2, 4]])
    torch.testing.assert_close(part.score(cand), full.score().gather(1, cand))
    rows, tokens = torch.tensor([2, 0, 0]), torch.tensor([5, 3, 1])  # the last one: a dead slot
    full.advance(rows, tokens)
    part.advance(rows, tokens)
    assert float(part.psi[2]) == NEG_INF and torch.isneginf(part.increments()[2]).all()
    torch.testing.assert_close(part.psi[:2], full.psi[:2])
    torch.testing.assert_close(part.score(cand)[:2], full.score().gather(1, cand)[:2])


# -- the search -------------------------------------------------------------------------


def _decoder(vocab: int, seed: int = 0, enc_dim: int = 12) -> TransformerDecoder:
    torch.manual_seed(seed)
    cfg = DecoderConfig(num_layers=2, model_dim=16, ffn_dim=32, num_heads=2, dropout=0.0)
    dec = TransformerDecoder(enc_dim, vocab, cfg).eval()
    with torch.no_grad():
        dec.output_proj.weight.mul_(4.0)
    return dec


def _att_logprob(dec: TransformerDecoder, enc: torch.Tensor, seq: list[int]) -> float:
    prev = torch.tensor([[BOS, *seq]])
    logp = F.log_softmax(dec(prev, enc[None]).float(), dim=-1)[0]
    return float(logp.gather(1, torch.tensor([[*seq, EOS]]).T).sum().detach())


def _ctc_logprob(log_probs: torch.Tensor, seq: list[int]) -> float:
    """log p_ctc(seq) of one clip's (T, V) log-probabilities."""
    nll = F.ctc_loss(
        log_probs[:, None], torch.tensor([seq]), torch.tensor([log_probs.shape[0]]),
        torch.tensor([len(seq)]), blank=PAD, reduction="sum", zero_infinity=False,
    )  # fmt: skip
    return -float(nll)


def _peaked_ctc(frames_tokens: list[list[int]], vocab: int) -> torch.Tensor:
    logits = torch.full((len(frames_tokens), len(frames_tokens[0]), vocab), -8.0)
    for b, row in enumerate(frames_tokens):
        for t, tok in enumerate(row):
            logits[b, t, tok] = 8.0
    return logits


def test_zero_weight_is_the_attention_only_search() -> None:
    dec = _decoder(13, 5)
    lens = [9, 4, 7]
    enc = torch.randn(3, 9, 12)
    pad = torch.arange(9)[None, :] >= torch.tensor(lens)[:, None]
    ctc = JointCTC(log_probs=torch.randn(3, 9, 13), lens=torch.tensor(lens), weight=0.0)
    old = beam_search(dec, enc, pad, beam=5, max_len=10, nbest=3)
    new = beam_search(dec, enc, pad, beam=5, max_len=10, nbest=3, ctc=ctc)
    assert [[(h.tokens, h.score) for h in hs] for hs in new] == [
        [(h.tokens, h.score) for h in hs] for hs in old
    ]


@pytest.mark.parametrize("weight", [1.0 - 1e-3, 1.0])
def test_weight_near_one_follows_a_peaked_ctc(weight: float) -> None:
    vocab = 9
    dec = _decoder(vocab, 2)
    enc = torch.randn(1, 10, 12)
    target = [3, 4, 4, 5]  # a repeat: needs a blank between the two 4s
    frames = [[PAD, 3, 3, PAD, 4, PAD, 4, 4, 5, PAD]]
    ctc = JointCTC(log_probs=_peaked_ctc(frames, vocab), lens=torch.tensor([10]), weight=weight)
    att = beam_search(dec, enc, None, beam=4, max_len=8)[0][0]
    joint = beam_search(dec, enc, None, beam=4, max_len=8, ctc=ctc)[0][0]
    assert att.tokens != target
    assert joint.tokens == target


@pytest.mark.parametrize("weight", [0.3, 0.7])
def test_joint_score_is_the_weighted_sum_and_batched_equals_one_by_one(weight: float) -> None:
    vocab = 8
    dec = _decoder(vocab, 7)
    lens = [9, 5, 7]
    torch.manual_seed(1)
    enc = torch.randn(3, 9, 12)
    pad = torch.arange(9)[None, :] >= torch.tensor(lens)[:, None]
    ctc_logits = 3.0 * torch.randn(3, 9, vocab)
    ctc = JointCTC(log_probs=ctc_logits, lens=torch.tensor(lens), weight=weight)
    batched = beam_search(dec, enc, pad, beam=4, max_len=7, nbest=2, ctc=ctc)
    for b, n in enumerate(lens):
        one = JointCTC(log_probs=ctc_logits[b : b + 1, :n], lens=torch.tensor([n]), weight=weight)
        single = beam_search(dec, enc[b : b + 1, :n], None, beam=4, max_len=7, nbest=2, ctc=one)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in single]
        for hb, hs in zip(batched[b], single):
            assert hb.score == pytest.approx(hs.score, abs=1e-4)
        best = batched[b][0]
        want = (1 - weight) * _att_logprob(dec, enc[b, :n], best.tokens) + weight * _ctc_logprob(
            ctc_logits[b, :n].log_softmax(-1), best.tokens
        )
        assert best.score == pytest.approx(want, abs=1e-4)


def test_pre_beam_scores_only_the_attention_best() -> None:
    vocab = 10
    dec = _decoder(vocab, 4)
    enc = torch.randn(2, 8, 12)
    logits = torch.randn(2, 8, vocab)
    full = JointCTC(log_probs=logits, lens=torch.tensor([8, 8]), weight=0.4)
    wide = JointCTC(log_probs=logits, lens=torch.tensor([8, 8]), weight=0.4, pre_beam=vocab)
    narrow = JointCTC(log_probs=logits, lens=torch.tensor([8, 8]), weight=0.4, pre_beam=3)
    out_full = beam_search(dec, enc, None, beam=3, max_len=6, ctc=full)
    out_wide = beam_search(dec, enc, None, beam=3, max_len=6, ctc=wide)
    out_narrow = beam_search(dec, enc, None, beam=3, max_len=6, ctc=narrow)
    assert [h[0].tokens for h in out_wide] == [h[0].tokens for h in out_full]
    assert all(math.isfinite(h[0].score) for h in out_narrow)


# -- the model and the commands ------------------------------------------------------------


@pytest.fixture(scope="module")
def s2s_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny seq2seq AVSR model dirs: with a CTC branch (ctc_weight 0.3) and without."""
    root = tmp_path_factory.mktemp("joint")
    with_ctc = make_tiny_finetuned(root / "with_ctc", head="s2s", ctc_weight=0.3)
    without = make_tiny_finetuned(root / "no_ctc", head="s2s")
    return with_ctc, without


def test_joint_decoding_needs_a_ctc_branch(s2s_dirs: tuple[Path, Path], tiny_finetuned_dir: Path) -> None:
    with_ctc, without = s2s_dirs
    cfg = {"finetune": {"head": "s2s", "ctc_weight": 0.0}}
    check_joint_decoding(cfg, 0.0, without)
    with pytest.raises(UserError, match=f"{without}: joint CTC/attention.*without a CTC branch"):
        WindowDecoder(without, device="cpu", ctc_weight=0.3)
    with pytest.raises(UserError, match="a CTC model"):
        WindowDecoder(tiny_finetuned_dir, device="cpu", ctc_weight=0.3)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        WindowDecoder(with_ctc, device="cpu", ctc_weight=1.5)
    with pytest.raises(UserError, match="this model: joint"):
        load_finetuned(without).decode_ids(None, ctc_weight=0.5)


def test_window_decoder_decodes_jointly(s2s_dirs: tuple[Path, Path]) -> None:
    with_ctc, _ = s2s_dirs
    rng = np.random.default_rng(0)
    media = MediaInput(video=None, audio=rng.standard_normal(16000).astype(np.float32) * 0.1, warnings=[])
    texts = {}
    for w in (0.0, 0.5, 1.0):
        dec = WindowDecoder(with_ctc, device="cpu", beam=3, ctc_weight=w)
        texts[w] = dec.decode_media(media, "noise.wav", window_s=0.5, modality="a").text
    assert all(isinstance(t, str) for t in texts.values())


def _evaluate(model: Path, manifest: Path, out: Path, *extra: str) -> int:
    """``avsr evaluate`` in this process: clean AV input, beam 3."""
    flags = {"model": model, "manifest": manifest, "snr": "clean", "modality": "av", "beam": 3}
    flags.update({"batch-size": 3, "device": "cpu", "workers": 0, "out": out})
    argv = [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    return main(["evaluate", "--no-plots", *argv, *extra])


def test_ctc_weight_flag_through_avsr_evaluate(
    s2s_dirs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_ctc, without = s2s_dirs
    manifest = make_synthetic_av_data(tmp_path / "data", n_clips=4, split="test", min_frames=10, max_frames=20)
    assert _evaluate(with_ctc, manifest, tmp_path / "plain") == 0
    assert _evaluate(with_ctc, manifest, tmp_path / "w0", "--ctc-weight", "0") == 0
    assert _evaluate(with_ctc, manifest, tmp_path / "w5", "--ctc-weight", "0.5") == 0
    plain = (tmp_path / "plain" / "results.json").read_bytes()
    assert (tmp_path / "w0" / "results.json").read_bytes() == plain  # the default, unrecorded
    assert "ctc_weight" not in EvalResults.load(tmp_path / "plain" / "results.json").config
    assert EvalResults.load(tmp_path / "w5" / "results.json").config["ctc_weight"] == 0.5
    assert (tmp_path / "w5" / "hyps" / "clean.av.tsv").is_file()
    capsys.readouterr()
    assert _evaluate(without, manifest, tmp_path / "bad", "--ctc-weight", "0.3") == 2
    assert f"{without}: joint CTC/attention decoding" in capsys.readouterr().err
