"""The body of ``avsr finetune`` (see :mod:`tasks.finetune` for the steps)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avsr.config import save_config, to_dict
from avsr.errors import UserError
from avsr.io import (
    ManifestError,
    atomic_write_json,
    atomic_write_text,
    read_labels,
    read_manifest,
    write_labels,
    write_manifest,
)
from avsr.logging_utils import get_logger
from tasks.finetune_config import FinetuneConfig
from tasks.finetune_data import SplitFiles, target_files

log = get_logger("avsr.finetune")

SUMMARY = "finetune.json"


def _split_files(cfg: FinetuneConfig, data: Path, split: str, out: Path, main: bool) -> SplitFiles:
    from avsr.train import barrier

    files = None
    if main:
        files = target_files(data, split, task=cfg.task, lang=cfg.lang, pair=cfg.pair, run_dir=out)
    barrier()
    if files is None:
        files = target_files(data, split, task=cfg.task, lang=cfg.lang, pair=cfg.pair, run_dir=out)
    return files


def _subset(files: SplitFiles, n: int, out: Path, split: str) -> SplitFiles:
    """Evenly spaced ``n`` rows of a split (for cheaper validation), written under ``out/data``."""
    try:
        m = read_manifest(files.manifest)
        labels = read_labels(files.labels, expected=len(m.rows))
        langs = read_labels(files.langs, expected=len(m.rows)) if files.langs else None
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    if n >= len(m.rows):
        return files
    idx = sorted({int(i * len(m.rows) / n) for i in range(n)})
    d = out / "data"
    write_manifest(d / f"{split}.sub.tsv", m.root, [m.rows[i] for i in idx])
    write_labels(d / f"{split}.sub.txt", [labels[i] for i in idx])
    lang_path = None
    if langs is not None:
        lang_path = d / f"{split}.sub.lang"
        write_labels(lang_path, [langs[i] for i in idx])
    return SplitFiles(d / f"{split}.sub.tsv", d / f"{split}.sub.txt", lang_path)


def _tokenizer(cfg: FinetuneConfig, files: SplitFiles, out: Path, main: bool) -> Any:
    from avsr.text import Tokenizer, normalize_target, train_tokenizer
    from avsr.train import barrier

    path = out / "tokenizer.model"
    if main and not path.is_file():
        try:
            texts = read_labels(files.labels)
        except ManifestError as exc:
            raise UserError(str(exc)) from exc
        mode = cfg.model.normalize or ("asr" if cfg.task == "avsr" else "st")
        train_tokenizer(
            [normalize_target(t, mode) for t in texts],
            vocab_size=cfg.tokenizer.vocab_size,
            character_coverage=cfg.tokenizer.character_coverage,
            out=path,
        )
    elif main:
        log.info("tokenizer: reusing %s", path)
    barrier()
    return Tokenizer.load(path)


def build_model(cfg: FinetuneConfig, init: Path, tokenizer: Any) -> Any:
    """The AV encoder from ``init`` + a fresh head -> FinetunedModel (train mode)."""
    from avsr.models.av.io import is_av_dir, load_av_encoder, with_encoder_overrides
    from avsr.models.finetuned import (
        FinetunedConfig,
        FinetunedModel,
        is_finetuned_dir,
        load_finetuned,
    )

    if not init.exists():
        raise UserError(f"--init {init}: not found")
    if is_finetuned_dir(init):
        # a fine-tuned model's encoder (e.g. AVSR before AVST: ASR encoder pretraining
        # for speech translation); its head and tokenizer are not used
        encoder = with_encoder_overrides(load_finetuned(init).encoder, cfg.model.encoder_overrides)
        log.info("encoder from the fine-tuned model %s (its head is dropped)", init)
    else:
        encoder = load_av_encoder(
            init, None if is_av_dir(init) else cfg.av, encoder_overrides=cfg.model.encoder_overrides
        )
    if cfg.model.masking is not None:
        encoder.cfg.masking = dataclasses.replace(cfg.model.masking)
    if cfg.model.modality_dropout is not None:
        encoder.cfg.modality_dropout.p = float(cfg.model.modality_dropout)
    if cfg.modality in ("av", "v") and encoder.visual is None:
        raise UserError(f"--init {init}: an audio-only model cannot be fine-tuned with --modality {cfg.modality}")
    ft = FinetunedConfig(
        task=cfg.task,
        head=cfg.head,
        modality=cfg.modality,
        normalize=cfg.model.normalize,
        lang=cfg.pair or cfg.lang,
        apply_mask=cfg.model.apply_mask,
        ctc=cfg.model.ctc,
        decoder=cfg.model.decoder,
        ctc_weight=cfg.model.ctc_weight,
    )
    data_geometry = {"crop_size": cfg.data.crop_size, "image_size": cfg.data.image_size}
    return FinetunedModel(encoder, tokenizer, ft, data_config=data_geometry).train()


def make_validate_fn(
    cfg: FinetuneConfig, dataset: Any, dist: Any, out: Path
) -> Callable[[nn.Module], dict[str, float]]:
    """Decode the validation split (sharded over ranks), score WER (avsr) or BLEU (avst)."""
    from avsr import metrics
    from avsr.data import make_batch_sampler, make_dataloader
    from avsr.train.distributed import is_dist

    sampler = make_batch_sampler(dataset, rank=dist.rank, world_size=dist.world_size, shuffle=False)
    loader = make_dataloader(dataset, sampler, num_workers=0)
    modality = cfg.valid.modality or cfg.modality
    beam = cfg.valid.beam

    def validate(model: nn.Module) -> dict[str, float]:
        # validation must not move the training RNG (exact resume, same curve with or without it)
        with torch.random.fork_rng(devices=[]):
            return _validate(model)

    def _validate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        ids: list[str] = []
        hyps: list[str] = []
        refs: list[str] = []
        langs: list[str] = []
        loss_sum, size_sum = 0.0, 0.0
        for batch in loader:
            batch = batch.to(device)
            loss, size, _ = model.compute_loss(batch)  # type: ignore[operator]
            loss_sum += float(loss)
            size_sum += float(size)
            hyps.extend(model.decode(batch, modality=modality, beam=beam))  # type: ignore[operator]
            refs.extend(batch.texts or [])
            ids.extend(batch.ids)
            langs.extend(batch.langs or [""] * len(batch.ids))
        if is_dist():
            gathered: list[Any] = [None] * dist.world_size
            torch.distributed.all_gather_object(gathered, (ids, hyps, refs, langs, loss_sum, size_sum))
            ids = [i for g in gathered for i in g[0]]
            hyps = [h for g in gathered for h in g[1]]
            refs = [r for g in gathered for r in g[2]]
            langs = [x for g in gathered for x in g[3]]
            loss_sum = sum(g[4] for g in gathered)
            size_sum = sum(g[5] for g in gathered)
        result = {"loss": loss_sum / max(size_sum, 1.0), "n_clips": float(len(hyps))}
        name = "wer" if cfg.task == "avsr" else "bleu"
        result[name] = metrics.wer(refs, hyps) if name == "wer" else metrics.bleu(refs, hyps)
        if len({x for x in langs if x}) > 1:  # per source language as well
            for lang, sc in metrics.score_by_language(refs, hyps, langs, with_bleu=name == "bleu").items():
                if lang not in (metrics.ALL, ""):
                    value = sc.counts.wer if name == "wer" else sc.bleu.score  # type: ignore[union-attr]
                    result[f"{name}_{lang}"] = float(value)
        if dist.is_main:
            order = sorted(range(len(ids)), key=lambda i: ids[i])
            atomic_write_text(out / "valid_hyps.txt", "".join(f"{ids[i]}\t{hyps[i]}\t{refs[i]}\n" for i in order))
        return result

    return validate


def run_finetune(cfg: FinetuneConfig, *, data: Path, init: Path, out: Path) -> dict[str, Any]:
    """Fine-tune; returns the run summary (also written to ``RUN/finetune.json``)."""
    from avsr.data import AVDataset, make_batch_sampler, make_dataloader
    from avsr.models.finetuned import load_finetuned, model_config_of, save_finetuned
    from avsr.train import Trainer, barrier, cleanup_distributed, init_distributed, seed_everything

    data, init, out = Path(data), Path(init), Path(out)
    summary_path = out / SUMMARY
    if summary_path.is_file() and (out / "model").is_dir():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if int(summary.get("updates", -1)) >= cfg.train.max_updates:
            log.info("%s: already fine-tuned for %d updates (model in %s); nothing to do", out, summary["updates"], out / "model")
            return summary
    dist = init_distributed(cfg.train.device)
    try:
        main = dist.is_main
        if main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        train_files = _split_files(cfg, data, cfg.train_split, out, main)
        valid_files: SplitFiles | None
        try:
            valid_files = _split_files(cfg, data, cfg.valid.split, out, main)
        except UserError as exc:
            valid_files = None
            if main:
                log.warning("no validation (%s): the last checkpoint becomes the model", exc)
        if valid_files is not None and cfg.valid.max_clips is not None:
            if main:
                valid_files = _subset(valid_files, cfg.valid.max_clips, out, cfg.valid.split)
            barrier()
            if not main:
                valid_files = _subset(valid_files, cfg.valid.max_clips, out, cfg.valid.split)
        tokenizer = _tokenizer(cfg, train_files, out, main)
        seed_everything(cfg.train.seed)  # the fresh head (and lip encoder) are the same on every run / rank
        model = build_model(cfg, init, tokenizer)
        if main:
            n_enc = sum(p.numel() for p in model.encoder.parameters())
            n_head = sum(p.numel() for p in model.head.parameters())
            log.info(
                "fine-tuning %s/%s on %s input: encoder %.2fM + head %.2fM parameters, %d pieces",
                cfg.task, cfg.head, cfg.modality, n_enc / 1e6, n_head / 1e6, tokenizer.vocab_size,
            )
        train_ds = AVDataset(train_files.manifest, cfg.data, train=True, labels=train_files.labels)
        sampler = make_batch_sampler(train_ds, rank=dist.rank, world_size=dist.world_size)
        loader = make_dataloader(
            train_ds, sampler, num_workers=cfg.train.num_workers, pin_memory=dist.device.type == "cuda"
        )
        validate_fn = None
        if valid_files is not None:
            valid_ds = AVDataset(valid_files.manifest, cfg.data, train=False, labels=valid_files.labels)
            validate_fn = make_validate_fn(cfg, valid_ds, dist, out)
        if validate_fn is None:
            cfg.train.best_metric = None
        trainer = Trainer(
            model,
            loader,
            cfg=cfg.train,
            optim=cfg.optim,
            out_dir=out,
            validate_fn=validate_fn,
            dist=dist,
            model_config=model_config_of(model),
            model_kind="finetuned",
        )
        result = trainer.fit()
        summary: dict[str, Any] = {}
        if main:
            best_dir = out / "checkpoints" / "best"
            src = best_dir if best_dir.is_dir() else result.last_checkpoint
            if src is None:
                raise UserError(f"{out}: training wrote no checkpoint")
            final = load_finetuned(src)
            save_finetuned(final, out / "model")
            summary = {
                "updates": result.updates,
                "task": cfg.task,
                "head": cfg.head,
                "modality": cfg.modality,
                "target": cfg.pair or cfg.lang or "all",
                "best": result.best,
                "model_from": str(src),
                "model": str(out / "model"),
                "nan_skips": result.nan_skips,
                "config": to_dict(cfg),
            }
            atomic_write_json(summary_path, summary)
            log.info("fine-tuned model: %s (from %s; best %s)", out / "model", src, result.best)
        barrier()
        return summary
    finally:
        cleanup_distributed()
