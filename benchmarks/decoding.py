"""Decoding benchmark: test WER of the demo's fine-tuned models under each decoder.

Works on a finished demo folder (``avsr demo --out DIR``; ``DIR/data`` with its
``train/valid/test`` manifests and ``DIR/corpus/noise``). Every row is one
``avsr evaluate`` of the test split, clean and babble 0 dB, run in this process
(``run_evaluation`` with the model loaded once). Rows with a ``tune`` grid first
evaluate every combination of it on the valid split and keep the one with the
lowest mean WER (clean and babble 0 dB); the test split is never used for tuning.

CTC rows (audio-only ``finetune_a`` with modality ``a``, AV ``finetune_av`` with
``av``): greedy best path, prefix beam search without LM, and prefix beam search
with a word 3-gram LM of the training transcripts (``DATA/train.wrd``, written by
``tests/helpers/arpa.py``: interpolated absolute discounting), LM weight and word
score tuned on valid.

Joint CTC/attention rows (:func:`joint_results`): the demo's seq2seq AVST model
``finetune_avst`` (BLEU) and any ``--s2s-model DIR`` (a seq2seq model with a CTC
branch, WER), input ``av``, attention-only beam search and joint decoding at each
CTC weight of ``JOINT_WEIGHTS`` on valid and test; the weight with the best valid
mean is marked.

Run: ``.venv/bin/python benchmarks/decoding.py --demo DIR [--out DIR] [--part all|ctc|joint]
[--s2s-model DIR]``.

Adding rows (e.g. other decoders of a seq2seq model): write a function returning
``list[Row]`` and add it to :func:`build_rows`. A :class:`Row` names the model folder
under ``--demo``, the input modality, the table label and the :class:`EvalConfig`
fields it sets (``options``); ``tune`` maps EvalConfig fields to the values tried
on valid. :func:`main` evaluates every row and prints one table line per row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: the repository's tests.helpers
    sys.path.insert(0, str(REPO))

from avsr.checkpoint import read_model_config  # noqa: E402
from avsr.evaluation.run import EvalConfig, run_evaluation  # noqa: E402
from avsr.logging_utils import setup_logging  # noqa: E402
from avsr.models.finetuned import FinetunedModel, load_finetuned  # noqa: E402
from tasks.ctc_decoding_args import set_field  # noqa: E402
from tests.helpers.arpa import write_arpa  # noqa: E402

CONDITIONS = (("clean", None), ("babble 0 dB", 0.0))
"""Table columns: (label, babble SNR in dB; None: clean)."""
LM_WEIGHTS = [0.25, 0.5, 1.0, 2.0, 4.0]
WORD_SCORES = [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]


@dataclass(kw_only=True)
class Row:
    """One line of the table: a model, a modality and decoding options."""

    model: str
    """Model folder under the demo folder (its ``model`` subfolder is evaluated)."""
    modality: str
    """Input modality (``a``, ``v``, ``av``)."""
    label: str
    """Decoder column of the table."""
    options: dict[str, Any] = field(default_factory=dict)
    """EvalConfig fields set for this row, dotted for nested ones (``decoder``, ``ctc.lm``)."""
    tune: dict[str, list[Any]] = field(default_factory=dict)
    """EvalConfig field (dotted) -> values tried on the valid split (best mean WER kept)."""


def ctc_rows(lm: Path) -> list[Row]:
    """Greedy, beam without LM and beam with the word 3-gram LM, per CTC model."""
    rows = []
    for model, modality in (("finetune_a", "a"), ("finetune_av", "av")):
        rows += [
            Row(model=model, modality=modality, label="greedy"),
            Row(model=model, modality=modality, label="beam", options={"decoder": "beam"}),
            Row(
                model=model,
                modality=modality,
                label="beam + 3-gram LM",
                options={"decoder": "beam", "ctc.lm": str(lm)},
                tune={"ctc.lm_weight": LM_WEIGHTS, "ctc.word_score": WORD_SCORES},
            ),
        ]
    return rows


def build_rows(demo: Path, out: Path) -> list[Row]:
    """Every row of the table (the LM is written into ``out`` first)."""
    lm = out / "train_3gram.arpa"
    train = (demo / "data" / "train.wrd").read_text(encoding="utf-8").splitlines()
    write_arpa(train, lm, order=3)
    return ctc_rows(lm)


class Bench:
    """Evaluates rows on one demo folder, each model loaded once."""

    def __init__(self, demo: Path, out: Path) -> None:
        self.demo = demo
        self.out = out
        self.models: dict[str, tuple[FinetunedModel, dict[str, Any]]] = {}

    def model(self, name: str) -> tuple[FinetunedModel, dict[str, Any]]:
        if name not in self.models:
            path = self.demo / name / "model"
            self.models[name] = (load_finetuned(path), read_model_config(path))
        return self.models[name]

    def wers(self, row: Row, split: str, options: dict[str, Any], tag: str) -> list[float]:
        """WER (%) of ``row`` with ``options`` on ``split``, one per condition."""
        cfg = EvalConfig(
            model=str(self.demo / row.model / "model"),
            data=str(self.demo / "data"),
            split=split,
            noise_dir=str(self.demo / "corpus" / "noise"),
            snr="clean,0",
            noise="babble",
            modality=row.modality,
            device="cpu",
            num_workers=0,
            plots=False,
        )
        for key, value in options.items():
            set_field(cfg, key, value)
        model, model_config = self.model(row.model)
        res = run_evaluation(cfg, self.out / "evals" / tag, model=model, model_config=model_config)
        return [
            res.value("clean" if snr is None else "babble", snr, row.modality)
            for _, snr in CONDITIONS
        ]

    def run(self, row: Row, n: int) -> dict[str, Any]:
        """The row's test WERs, with the options tuned on valid."""
        options = dict(row.options)
        tuned: dict[str, Any] = {}
        if row.tune:
            best = None
            keys = list(row.tune)
            for k, values in enumerate(itertools.product(*row.tune.values())):
                trial = {**options, **dict(zip(keys, values))}
                mean = sum(self.wers(row, "valid", trial, f"row{n}_valid{k}")) / len(CONDITIONS)
                if best is None or mean < best[0]:
                    best = (mean, dict(zip(keys, values)))
            assert best is not None
            tuned = best[1]
            options.update(tuned)
        self.model(row.model)  # loaded before the clock starts
        t0 = time.perf_counter()
        test = self.wers(row, "test", options, f"row{n}_test")
        return {
            "model": row.model,
            "modality": row.modality,
            "decoder": row.label,
            "tuned": tuned,
            "wer": test,
            "seconds": time.perf_counter() - t0,
        }


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the results."""
    head = " | ".join(label for label, _ in CONDITIONS)
    lines = [
        f"| model | modality | decoder | tuned on valid | {head} | test eval s |",
        "|---|---|---|---|" + "---:|" * (len(CONDITIONS) + 1),
    ]
    for r in results:
        tuned = ", ".join(f"{k} {v:g}" for k, v in r["tuned"].items()) or "-"
        wers = " | ".join(f"{w:.1f}" for w in r["wer"])
        lines.append(
            f"| {r['model']} | {r['modality']} | {r['decoder']} | {tuned} | {wers} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


# -- joint CTC/attention decoding of seq2seq models -------------------------------------------

JOINT_WEIGHTS = [0.0, 0.1, 0.3, 0.5]
"""CTC weights of joint CTC/attention decoding (0: attention-only beam search)."""


def joint_scores(bench: Bench, model: str, split: str, weight: float) -> tuple[str, list[float]]:
    """(metric, value per condition) of ``model`` (``--demo`` folder name or a model's run
    folder) on ``split`` at CTC weight ``weight``: BLEU for translation, WER (%) otherwise."""
    row = Row(model=model, modality="av", label=f"ctc_weight {weight:g}")
    tag = f"joint_{Path(model).name}_{split}_w{weight:g}"
    values = bench.wers(row, split, {"ctc_weight": weight}, tag)  # the headline metric
    task = (bench.model(model)[1].get("finetune") or {}).get("task")
    return ("bleu" if task == "avst" else "wer"), values


def joint_results(bench: Bench, models: list[str]) -> list[dict[str, Any]]:
    """Per model and CTC weight: valid and test values, and whether the weight (above 0) is
    the one with the best valid mean (highest BLEU, lowest WER)."""
    results: list[dict[str, Any]] = []
    for model in models:
        rows = []
        for w in JOINT_WEIGHTS:
            metric, valid = joint_scores(bench, model, "valid", w)
            t0 = time.perf_counter()
            test = joint_scores(bench, model, "test", w)[1]
            rows.append(
                {"model": Path(model).name, "metric": metric, "ctc_weight": w, "valid": valid,
                 "test": test, "seconds": time.perf_counter() - t0, "picked": False}
            )  # fmt: skip
        sign = -1.0 if rows[0]["metric"] == "bleu" else 1.0
        best = min(rows[1:], key=lambda r: sign * sum(r["valid"]))
        best["picked"] = True
        results += rows
    return results


def joint_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of :func:`joint_results`."""
    head = " | ".join(f"valid {c} | test {c}" for c, _ in CONDITIONS)
    lines = [
        f"| model | metric | decoder | {head} | test eval s |",
        "|---|---|---|" + "---:|" * (2 * len(CONDITIONS) + 1),
    ]
    for r in results:
        w = r["ctc_weight"]
        label = "attention" if w == 0 else f"joint {w:g}" + (" *" if r["picked"] else "")
        cells = " | ".join(f"{v:.1f} | {t:.1f}" for v, t in zip(r["valid"], r["test"]))
        lines.append(f"| {r['model']} | {r['metric']} | {label} | {cells} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="demo_out", help="finished demo folder (default demo_out)")
    ap.add_argument("--out", help="work folder (default DEMO/bench_decoding)")
    ap.add_argument("--part", choices=["all", "ctc", "joint"], default="all", help="rows to run")
    ap.add_argument(
        "--s2s-model", action="append", default=[], metavar="DIR",
        help="an extra seq2seq model dir with a CTC branch for the joint rows (repeatable)",
    )  # fmt: skip
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_logging(quiet=True)
    demo = Path(args.demo)
    out = Path(args.out) if args.out else demo / "bench_decoding"
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(demo, out)
    if args.part in ("all", "ctc"):
        results = [bench.run(row, n) for n, row in enumerate(build_rows(demo, out))]
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print("WER (%), test split, babble noise")
        print(table(results))
    if args.part in ("all", "joint"):
        joint = joint_results(bench, ["finetune_avst", *args.s2s_model])
        (out / "joint.json").write_text(json.dumps(joint, indent=2) + "\n", encoding="utf-8")
        print("Joint CTC/attention decoding, av input, babble noise (* = CTC weight picked on valid)")
        print(joint_table(joint))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
