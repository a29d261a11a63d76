"""A toy model + synthetic variable-length data for the training-loop tests.

Also a script: ``python -m tests.helpers.train_toy --out DIR ...`` (or under
``python -m torch.distributed.run --nproc-per-node 2``) trains the toy with
:class:`avsr.train.Trainer`; per-update losses land in ``DIR/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avsr.data.sampler import LengthBatchSampler
from avsr.train import OptimConfig, StepOutput, TrainConfig, Trainer

DIM = 6


class ToyData(torch.utils.data.Dataset):
    """Item ``(index, epoch)``: a sequence of 3..12 frames; features noisy per (seed, epoch, index)."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        self.n, self.seed = n, seed
        self.lengths = np.random.default_rng(seed).integers(3, 13, size=n)
        g = torch.Generator().manual_seed(1234)
        self.w_true = torch.randn(DIM, 1, generator=g)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> dict[str, torch.Tensor]:
        index, epoch = (key, 0) if isinstance(key, int) else key
        rng = np.random.default_rng([self.seed, epoch, index])
        x = torch.from_numpy(
            rng.standard_normal((int(self.lengths[index]), DIM)).astype(np.float32)
        )
        y = (x @ self.w_true).squeeze(-1) + 0.1 * torch.from_numpy(
            rng.standard_normal(x.shape[0]).astype(np.float32)
        )
        return {"x": x, "y": y}


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    b, t = len(items), max(it["x"].shape[0] for it in items)
    x = torch.zeros(b, t, DIM)
    y = torch.zeros(b, t)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i, it in enumerate(items):
        n = it["x"].shape[0]
        x[i, :n], y[i, :n], mask[i, :n] = it["x"], it["y"], True
    return {"x": x, "y": y, "mask": mask}


class ToyModel(nn.Module):
    """MLP regressor; loss = summed squared error over valid frames."""

    def __init__(self, dropout: float = 0.0, nan_updates: tuple[int, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(DIM, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1)
        )
        self.nan_updates = set(nan_updates)
        self.num_updates = 0
        self.forward_calls = 0
        self.kill_at = int(os.environ.get("TOY_KILL_AT_FORWARD", "0"))

    def set_num_updates(self, n: int) -> None:
        self.num_updates = n

    def fsdp_modules(self) -> list[nn.Module]:
        return [self.net[0]]

    def forward(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        self.forward_calls += 1
        if self.kill_at and self.forward_calls >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        pred = self.net(batch["x"]).squeeze(-1)
        err = (pred - batch["y"]) ** 2 * batch["mask"]
        loss = err.sum()
        if self.num_updates + 1 in self.nan_updates:
            loss = loss * float("nan")
        n = int(batch["mask"].sum())
        return StepOutput(
            loss=loss,
            sample_size=n,
            logs={
                "abs:num": float((pred - batch["y"]).detach().abs().mul(batch["mask"]).sum()),
                "abs:den": float(n),
                "n_items": float(batch["x"].shape[0]),
            },
        )


class ToyAVModel(nn.Module):
    """Predicts 50 Hz units from audio frames (320-sample hop) plus the mean lip pixel of each
    video frame, on :class:`avsr.data.AVBatch` input; cross entropy summed over unit frames."""

    def __init__(self, n_units: int = 20) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.audio = nn.Conv1d(1, 16, kernel_size=400, stride=320)
        self.video = nn.Linear(1, 16)
        self.out = nn.Linear(16, n_units)
        self.forward_calls = 0
        self.kill_at = int(os.environ.get("TOY_KILL_AT_FORWARD", "0"))

    def forward(self, batch: Any) -> StepOutput:
        self.forward_calls += 1
        if self.kill_at and self.forward_calls >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        feats = self.audio(batch.audio.unsqueeze(1)).transpose(1, 2)  # (B, F, 16)
        vid = batch.video.mean(dim=(1, 3, 4)).unsqueeze(-1)  # (B, T, 1)
        vid = self.video(vid).repeat_interleave(2, dim=1)  # 25 fps -> 50 Hz
        n = min(feats.shape[1], vid.shape[1], batch.units.shape[1])
        logits = self.out(torch.tanh(feats[:, :n] + vid[:, :n]))
        loss = nn.functional.cross_entropy(
            logits.transpose(1, 2), batch.units[:, :n], ignore_index=-100, reduction="sum"
        )
        return StepOutput(loss=loss, sample_size=int((batch.units[:, :n] != -100).sum()))


def make_loader(
    data: ToyData, *, rank: int = 0, world: int = 1, workers: int = 0, max_frames: int = 40
) -> torch.utils.data.DataLoader:
    sampler = LengthBatchSampler(
        data.lengths, max_frames_per_batch=max_frames, seed=7, rank=rank, world_size=world
    )
    return torch.utils.data.DataLoader(
        data, batch_sampler=sampler, collate_fn=collate, num_workers=workers
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--max-updates", type=int, default=5)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--distributed", default="ddp")
    p.add_argument("--freeze", default="")
    p.add_argument("--freeze-updates", type=int, default=None)
    p.add_argument("--av-data", default="", help="folder from avsr.data.make_synthetic_av_data")
    args = p.parse_args(argv)
    from avsr.train import cleanup_distributed, init_distributed

    dist = init_distributed("cpu")
    torch.set_num_threads(1)
    model: nn.Module
    if args.av_data:
        from avsr.data import AVDataset, DataConfig, make_dataloader

        root = Path(args.av_data)
        dcfg = DataConfig(
            max_crop_seconds=0.6,
            crop_size=44,
            image_size=48,
            max_frames_per_batch=40,
            noise_dir=str(root / "noise"),
            noise_prob=0.5,
            noise_snr_range=(0.0, 10.0),
        )
        ds = AVDataset(root / "train.tsv", dcfg, train=True, labels=root / "train.km")
        loader = make_dataloader(
            ds,
            rank=dist.rank,
            world_size=dist.world_size,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )
        model = ToyAVModel()
    else:
        loader = make_loader(ToyData(), rank=dist.rank, world=dist.world_size, workers=args.workers)
        model = ToyModel(args.dropout)
    cfg = TrainConfig(
        max_updates=args.max_updates,
        grad_accum=args.grad_accum,
        save_every=args.save_every,
        keep_last=2,
        log_every=1,
        seed=3,
        tensorboard=False,
        distributed=args.distributed,
        clip_norm=1.0,
        freeze=[args.freeze] if args.freeze else [],
        freeze_updates=args.freeze_updates,
    )
    optim = OptimConfig(lr=0.05, warmup_updates=2)
    Trainer(model, loader, cfg=cfg, optim=optim, out_dir=args.out, dist=dist).fit()
    cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
