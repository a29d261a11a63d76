"""Checkpoint averaging: valid loss and WER of the averaged model beside its checkpoints'.

Averages the last ``--last`` checkpoints of a fine-tuning run (``avsr average``) into a
temporary model directory, then computes on the run's validation split (every clip,
eval mode, the training loss: summed over target tokens / number of tokens, the number
``metrics.jsonl`` records as ``valid loss``) and greedy WER of each averaged checkpoint
and of the average, and prints them side by side.

Run: ``.venv/bin/python benchmarks/average.py --run RUN [--data DATA] [--last 3]``
(``--data``: the run's preprocessed DATA folder, default ``RUN/../data``, the demo layout).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from avsr import metrics
from avsr.checkpoint_average import select_last, write_average
from avsr.data import AVDataset, make_batch_sampler, make_dataloader
from avsr.data.targets import target_files
from avsr.models.finetuned import FinetunedModel, load_finetuned
from avsr.train.logger import read_metrics
from tasks.cli_args import load_task_config
from tasks.finetune_config import FinetuneConfig


@torch.no_grad()
def valid_scores(model: FinetunedModel, loader: object) -> tuple[float, float, int]:
    """(loss per target token, greedy WER %, clips) of ``model`` over ``loader``."""
    model.eval()
    loss_sum = size_sum = 0.0
    refs: list[str] = []
    hyps: list[str] = []
    for batch in loader:  # type: ignore[attr-defined]
        loss, size, _ = model.compute_loss(batch)
        loss_sum += float(loss)
        size_sum += float(size)
        hyps += model.decode(batch, modality=model.config.modality)
        refs += batch.texts or []
    return loss_sum / max(size_sum, 1.0), metrics.wer(refs, hyps), len(refs)


def valid_loader(run: Path, data: Path) -> object:
    """Batches of the run's validation split (every clip, in order)."""
    cfg = load_task_config(FinetuneConfig, run / "config.yaml", [])
    files = target_files(data, cfg.valid.split, task=cfg.task, lang=cfg.lang, pair=cfg.pair)
    ds = AVDataset(files.manifest, cfg.data, train=False, labels=files.labels)
    return make_dataloader(ds, make_batch_sampler(ds, shuffle=False), num_workers=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="fine-tuning run folder")
    p.add_argument("--data", type=Path, help="its DATA folder (default RUN/../data)")
    p.add_argument("--last", type=int, default=3, help="checkpoints averaged (default 3)")
    args = p.parse_args()
    torch.manual_seed(0)
    data = args.data or args.run.parent / "data"
    selected = select_last(args.run, args.last)
    loader = valid_loader(args.run, data)
    logged = read_metrics(args.run / "metrics.jsonl", split="valid")
    rows = []
    with tempfile.TemporaryDirectory(prefix="avg-") as tmp:
        t0 = time.perf_counter()
        avg = write_average(args.run, selected, Path(tmp) / "avg", how=f"last {args.last}")
        t_avg = time.perf_counter() - t0
        for s in selected:
            tag = " (last)" if s is selected[-1] else ""
            loss, wer, n = valid_scores(load_finetuned(s.path), loader)
            rows.append((f"step_{s.step}{tag}", loss, wer, logged.get(s.step, {}).get("loss")))
        loss, wer, n = valid_scores(load_finetuned(avg), loader)
        rows.append((f"average of last {args.last}", loss, wer, None))
    print(f"run {args.run}, valid split: {n} clips; averaging took {t_avg:.2f} s")
    print("| model | valid loss | valid WER % (greedy) | valid loss in metrics.jsonl |")
    print("|---|---:|---:|---:|")
    for name, loss, wer, logged_loss in rows:
        shown = "" if logged_loss is None else f"{logged_loss:.4f}"
        print(f"| {name} | {loss:.4f} | {wer:.2f} | {shown} |")


if __name__ == "__main__":
    main()
