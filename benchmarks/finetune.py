"""Fine-tuning quality: clean test WER / BLEU of CTC, seq2seq and AVST models.

Works on a finished demo folder (``avsr demo --out DIR``: the embedded corpus built
with ``--size small``, its AV-pretrained tiny encoder and its audio-only CTC model).
With the demo's fine-tuning recipe it trains, from the same pretrained encoder, a
seq2seq AVSR model (``configs/finetune_tiny_s2s.yaml``, joint CTC/attention, 2000
updates) and an AV CTC model (2000 updates, the demo gives its own 1000), side by
side, one thread each; then an es-en seq2seq AVST model (the same config, ``--task avst``)
whose encoder is the seq2seq AVSR model's (ASR encoder pretraining for speech
translation; fresh decoder and English tokenizer). Then it evaluates every model on
the clean test split (speakers unseen in training) and prints each score against its
stated bound, with the chance-level references:

* WER of emitting nothing is 100 %; a model that learnt nothing stays there (or above,
  with insertions).
* BLEU of a constant English sentence, the most frequent training translation output
  for every clip, is measured in the same run.

Run: ``.venv/bin/python benchmarks/finetune.py --demo DIR [--s2s-updates N] [--avst-updates N]``.
Each step is skipped when its output exists, so a rerun only re-prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root (configs/)."""

BOUNDS = {"ctc_a": 60.0, "ctc_av": 60.0, "s2s_av": 60.0, "avst_bleu": 10.0}
"""Stated bounds. WER below 60 %: most words of an unseen speaker come out right, where a
model that learnt nothing sits at 100 %. BLEU above 10: more than ten times the BLEU of
the best constant output (about 0.8 on the es-en test split of the demo corpus)."""


def _avsr(*args: str | Path, log: Path) -> None:
    cmd = [sys.executable, "-m", "avsr.cli", *[str(a) for a in args]]
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\nlog {log}:\n{tail}")


def _clean_score(model: Path, data: Path, out: Path, modality: str, pair: str | None) -> float:
    from avsr.evaluation.results import EvalResults

    res = out / "results.json"
    weights = model / "model.safetensors"
    # evaluate again when the model was retrained after the stored results
    if not res.is_file() or (weights.is_file() and weights.stat().st_mtime > res.stat().st_mtime):
        extra = ["--pair", pair] if pair else []
        _avsr("evaluate", "--model", model, "--data", data, "--split", "test", "--snr", "clean",
              "--modality", modality, *extra, "--out", out, "--no-plots", log=out.with_suffix(".log"))
    r = EvalResults.load(res)
    return r.value("clean", None, modality)


def _constant_bleu(data: Path, pair: str) -> float:
    """BLEU of the most frequent training translation output for every test clip."""
    import sacrebleu

    src = pair.split("-")[0]
    root = data / "muavic" / src / "en"
    train = [line.rstrip("\n") for line in (root / "train.en").read_text(encoding="utf-8").splitlines()]
    refs = [line.rstrip("\n") for line in (root / "test.en").read_text(encoding="utf-8").splitlines()]
    best = Counter(train).most_common(1)[0][0]
    return float(sacrebleu.corpus_bleu([best] * len(refs), [refs]).score)


def _run_side_by_side(jobs: list[tuple[str, Path, list[str | Path]]], bench: Path) -> None:
    if not jobs:
        return
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = []
    for title, out, cmd in jobs:
        print(f"fine-tuning {title} -> {out}", flush=True)
        log = open(bench / f"{out.name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
        full = [sys.executable, "-m", "avsr.cli", *[str(c) for c in cmd]]
        procs.append((title, log, subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env)))
    for title, log, proc in procs:
        rc = proc.wait()
        log.close()
        if rc != 0:
            raise SystemExit(f"{title} failed ({rc}); log {log.name}")
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `avsr demo --out DIR` folder")
    ap.add_argument("--s2s-updates", type=int, default=2000, help="seq2seq AVSR updates (default 2000)")
    ap.add_argument("--ctc-av-updates", type=int, default=2000, help="AV CTC updates (default 2000; the demo gives it 1000)")
    ap.add_argument("--avst-updates", type=int, default=1000, help="seq2seq AVST updates from the AVSR encoder (default 1000)")
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = ap.parse_args()

    import yaml

    demo: Path = args.demo
    cfg = yaml.safe_load((demo / "demo.yaml").read_text(encoding="utf-8"))
    data, noise, pre = demo / "data", demo / "corpus" / "noise", demo / "pretrain" / "model"
    for need in (data / "test.tsv", pre, demo / "finetune_a" / "model", demo / "finetune_av" / "model"):
        if not need.exists():
            raise SystemExit(f"{need}: missing; run `avsr demo --out {demo}` to the end first")
    bench = demo / "bench_finetune"
    bench.mkdir(exist_ok=True)

    ft = cfg["finetune"]
    pair = str(ft["avst"]["pair"])
    common = ["--data", data, "--set", f"train.seed={cfg['seed']}",
              "--set", f"data.max_frames_per_batch={cfg['max_frames_per_batch']}", "--set", "train.num_workers=0",
              # the demo's fine-tuning recipe (60-piece vocabulary, peak lr 2e-3); the configs add
              # joint CTC/attention training (ctc_weight 0.3)
              "--set", f"tokenizer.vocab_size={ft['vocab_size']}", "--set", f"optim.lr={ft['lr']}",
              "--set", "train.valid_every=500"]
    snr_min, snr_max = ft["snr_range"]
    noise_sets = ["--set", f"data.noise_dir={noise}", "--set", f"data.noise_prob={ft['noise_prob']}",
                  "--set", f"data.noise_snr_range=[{snr_min}, {snr_max}]",
                  "--set", f"data.noise_start_epoch={ft.get('noise_start_epoch', 0)}"]
    s2s, ctc_av, avst = bench / "s2s_av", bench / "ctc_av", bench / "avst_from_s2s"

    def s2s_job() -> tuple[str, Path, list[str | Path]]:
        return ("seq2seq AVSR", s2s, ["finetune", "--task", "avsr", "--head", "s2s", "--modality", "av", "--init", pre, *common,
                "--out", s2s, "--config", REPO / "configs" / "finetune_tiny_s2s.yaml",
                "--set", f"train.max_updates={args.s2s_updates}", *noise_sets])

    def ctc_job() -> tuple[str, Path, list[str | Path]]:
        return ("CTC AVSR (AV)", ctc_av, ["finetune", "--task", "avsr", "--head", "ctc", "--modality", "av", "--init", pre, *common,
                "--out", ctc_av, "--config", REPO / "configs" / "finetune_tiny.yaml",
                "--set", f"train.max_updates={args.ctc_av_updates}", *noise_sets])

    def avst_job() -> tuple[str, Path, list[str | Path]]:
        # the seq2seq AVSR model's encoder (it already reads the Spanish speech), fresh decoder
        # and English tokenizer: ASR encoder pretraining for speech translation
        return (f"seq2seq AVST {pair}", avst, ["finetune", "--task", "avst", "--head", "s2s", "--modality", "av",
                "--pair", pair, "--init", s2s / "model", *common, "--out", avst,
                "--config", REPO / "configs" / "finetune_tiny_s2s.yaml", "--set", f"train.max_updates={args.avst_updates}"])

    def done(run: Path) -> bool:
        return (run / "model" / "model.safetensors").is_file()

    # side by side, one thread each (as the demo runs its fine-tunings); the AVST run
    # needs the seq2seq AVSR model, so it starts as soon as that exists
    first = [job() for run, job in ((s2s, s2s_job), (ctc_av, ctc_job)) if not done(run)]
    if done(s2s) and not done(avst):
        first.append(avst_job())
    _run_side_by_side(first, bench)
    if not done(avst):
        _run_side_by_side([avst_job()], bench)

    rows = [
        ("ctc_a", "CTC AVSR, audio-only fine-tuned, A input", "WER", _clean_score(demo / "finetune_a" / "model", data, bench / "eval_ctc_a", "a", None)),
        ("ctc_av", f"CTC AVSR, AV fine-tuned ({args.ctc_av_updates} upd.), AV input", "WER", _clean_score(ctc_av / "model", data, bench / "eval_ctc_av", "av", None)),
        ("s2s_av", "seq2seq AVSR, AV fine-tuned, AV input", "WER", _clean_score(s2s / "model", data, bench / "eval_s2s_av", "av", None)),
        ("avst_bleu", f"seq2seq AVST {pair} (AVSR encoder), AV input", "BLEU", _clean_score(avst / "model", data, bench / "eval_avst", "av", pair)),
    ]
    const = _constant_bleu(data, pair)
    print(f"\nclean test split of {data} (unseen speakers); chance: WER 100 %, constant-sentence BLEU {const:.1f}")
    print(f"{'model':44s} {'metric':6s} {'score':>7s} {'bound':>7s}  result")
    results = {}
    ok = True
    for key, title, metric, score in rows:
        bound = BOUNDS[key]
        passed = score < bound if metric == "WER" else score > bound
        ok &= passed
        results[key] = {"metric": metric, "score": round(score, 2), "bound": bound, "passed": passed}
        print(f"{title:44s} {metric:6s} {score:7.1f} {('<' if metric == 'WER' else '>') + f'{bound:g}':>7s}  {'PASS' if passed else 'FAIL'}")
    results["constant_bleu"] = round(const, 2)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
