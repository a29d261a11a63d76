"""The body of ``avsr finetune`` (see :mod:`tasks.finetune` for the steps)."""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from avsr import metrics
from avsr.config import to_dict
from avsr.data import AVDataset, make_batch_sampler, make_dataloader
from avsr.errors import UserError
from avsr.io import ManifestError, atomic_write_json, atomic_write_text, read_labels
from avsr.logging_utils import get_logger
from avsr.models.av.config import AVModelConfig
from avsr.models.av.io import is_av_dir, load_av_encoder, with_encoder_overrides
from avsr.models.distill import CTCTeacher
from avsr.models.finetuned import (
    FinetunedConfig,
    FinetunedModel,
    is_finetuned_dir,
    load_finetuned,
    model_config_of,
    save_finetuned,
)
from avsr.text import Tokenizer, normalize_target, train_tokenizer
from avsr.train import (
    DistInfo,
    TrainResult,
    barrier,
    cleanup_distributed,
    init_distributed,
    seed_everything,
)
from avsr.train.distributed import is_dist
from tasks.finetune_config import FinetuneConfig, Mode, dropout_summary, valid_modalities
from tasks.finetune_data import SplitFiles, subset_rows, target_files
from tasks.training_run import fit, write_run_config

log = get_logger("avsr.finetune")

SUMMARY = "finetune.json"

T = TypeVar("T")


def _main_first(make: Callable[[], T], main: bool) -> T:
    """``make()`` on rank 0 first (it writes files), then on the other ranks (they read them)."""
    if main:
        made = make()
        barrier()
        return made
    barrier()
    return make()


def _split_files(cfg: FinetuneConfig, data: Path, split: str, out: Path, main: bool) -> SplitFiles:
    """Target files of ``split`` (see :func:`target_files`); rank 0 writes any it derives."""
    return _main_first(
        lambda: target_files(
            data, split, task=cfg.task, lang=cfg.lang, pair=cfg.pair, run_dir=out
        ),
        main,
    )


def _data_files(
    cfg: FinetuneConfig, data: Path, out: Path, main: bool
) -> tuple[SplitFiles, SplitFiles | None]:
    """Training and validation files (None: no validation split; a subset with
    ``valid.max_clips``)."""
    train_files = _split_files(cfg, data, cfg.train_split, out, main)
    valid_files: SplitFiles | None
    try:
        valid_files = _split_files(cfg, data, cfg.valid.split, out, main)
    except UserError as exc:
        valid_files = None
        if main:
            log.warning("no validation (%s): the last checkpoint becomes the model", exc)
    if valid_files is not None and cfg.valid.max_clips is not None:
        files, n = valid_files, cfg.valid.max_clips
        valid_files = _main_first(lambda: subset_rows(files, n, out, cfg.valid.split), main)
    return train_files, valid_files


def _tokenizer(cfg: FinetuneConfig, files: SplitFiles, out: Path, main: bool) -> Tokenizer:
    """The run's SentencePiece model: trained on the normalised train targets (rank 0),
    or reused from ``out/tokenizer.model``."""
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
    """The AV encoder from ``init`` + a head (the fine-tuned ``init``'s when
    :func:`reusable_head` allows, else fresh) -> FinetunedModel (train mode)."""
    if not init.exists():
        raise UserError(f"--init {init}: not found")
    source = None
    if is_finetuned_dir(init):
        # a fine-tuned model's encoder (e.g. AVSR before AVST: ASR encoder pretraining for
        # speech translation); its head only when it fits this run (:func:`reusable_head`)
        source = load_finetuned(init)
        encoder = with_encoder_overrides(source.encoder, cfg.model.encoder_overrides)
    else:
        encoder = load_av_encoder(
            init, None if is_av_dir(init) else cfg.av, encoder_overrides=cfg.model.encoder_overrides
        )
    if cfg.model.masking is not None:
        encoder.cfg.masking = dataclasses.replace(cfg.model.masking)
    # the run's own modality dropout replaces the init's (p 0 unless training on av)
    encoder.cfg.modality_dropout = dataclasses.replace(cfg.model.dropout)
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
    model = FinetunedModel(encoder, tokenizer, ft, data_config=data_geometry)
    if source is not None:
        why_not = reusable_head(cfg, source, model)
        if why_not is None:
            model.head.load_state_dict(source.head.state_dict())
            if model.ctc_aux is not None and source.ctc_aux is not None:
                model.ctc_aux.load_state_dict(source.ctc_aux.state_dict())
        log.info("encoder from the fine-tuned model %s; %s", init,
                 "its head too (model.init_head)" if why_not is None else f"a fresh head ({why_not})")
    return model.train()


def reusable_head(cfg: FinetuneConfig, source: Any, model: Any) -> str | None:
    """Why the head of the fine-tuned ``source`` cannot start ``model`` (None: it can): off by
    ``model.init_head``, another task or head type, another tokenizer or head shape."""
    if not cfg.model.init_head:
        return "model.init_head is false"
    src = source.config
    if (src.task, src.head) != (cfg.task, cfg.head):
        return f"it was trained for {src.task} with a {src.head} head, this run is {cfg.task} with {cfg.head}"
    if source.tokenizer.model_proto != model.tokenizer.model_proto:
        return "its tokenizer differs from this run's"
    own = model.head.state_dict()
    theirs = source.head.state_dict()
    if own.keys() != theirs.keys() or any(v.shape != own[k].shape for k, v in theirs.items()):
        return "its head's layers differ from this run's"
    return None


AUDIO_CNN = "encoder.xlsr.frontend.feature_extractor.*"
"""Parameter names of the audio CNN of a fine-tuned model."""

FUSION = "encoder.fusion.*"
"""Parameter names of the AV encoder's fusion layer in a fine-tuned model."""

FROZEN_PARTS: dict[str, tuple[str, str]] = {
    "freeze_audio_cnn": (AUDIO_CNN, "audio CNN (filterbank front end)"),
    "freeze_fusion": (FUSION, "fusion layer (audio-only encoder)"),
}
"""``model.<flag>`` -> (parameter-name glob added to ``train.frozen``, what a model may lack)."""


def _freeze_parts(cfg: FinetuneConfig, model: nn.Module) -> None:
    """``model.freeze_audio_cnn`` / ``model.freeze_fusion``: add the part to ``train.frozen``
    when the model has it (logged and skipped when it does not)."""
    names = [n for n, _ in model.named_parameters()]
    for flag, (pattern, missing) in FROZEN_PARTS.items():
        if not getattr(cfg.model, flag) or pattern in cfg.train.frozen:
            continue
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            cfg.train.frozen.append(pattern)
        else:
            log.info("model.%s: this model has no %s; nothing to freeze", flag, missing)


def valid_media(modes: list[Mode]) -> Mode:
    """The media (``data.modalities``) the validation input modes ``modes`` need."""
    audio = any(m in ("av", "a") for m in modes)
    video = any(m in ("av", "v") for m in modes)
    return "av" if audio and video else ("a" if audio else "v")


def record_model_settings(cfg: FinetuneConfig, model: Any, init: Path, *, log_it: bool) -> None:
    """Put what ``model`` uses into ``cfg`` (the run's ``config.yaml``): its encoder's AV
    settings as ``av`` (for an AV or fine-tuned ``--init``: the init's own, not the config's
    block) and the validation input modes as ``valid.modalities``."""
    enc = model.encoder
    if isinstance(getattr(enc, "cfg", None), AVModelConfig):
        used = enc.cfg
        if log_it and (is_av_dir(init) or is_finetuned_dir(init)):
            log.info(
                "AV settings of --init %s: modalities %s, fusion %s (%s norm); the config's "
                "av: section is not used", init, used.modalities, used.fusion.kind, used.fusion.norm,
            )
        cfg.av = copy.deepcopy(used)
    has_video = getattr(enc, "visual", None) is not None
    cfg.valid.modalities = valid_modalities(cfg, has_video)


def make_validate_fn(
    cfg: FinetuneConfig, dataset: AVDataset, dist: DistInfo, out: Path
) -> Callable[[nn.Module], dict[str, float]]:
    """Decode the validation split (sharded over ranks) in each input mode of
    :func:`valid_modalities`, score WER (avsr) or BLEU (avst): ``wer`` / ``bleu`` in the
    selection mode (also per language), ``wer_av``, ``wer_a``, ``wer_v`` per mode; the loss
    once, in the selection mode. ``dataset`` must load the media of every mode."""
    sampler = make_batch_sampler(dataset, rank=dist.rank, world_size=dist.world_size, shuffle=False)
    loader = make_dataloader(dataset, sampler, num_workers=0)
    beam = cfg.valid.beam

    def validate(model: nn.Module) -> dict[str, float]:
        # validation must not move the training RNG (exact resume, same curve with or without it)
        with torch.random.fork_rng(devices=[]):
            return _validate(model)

    def _validate(model: nn.Module) -> dict[str, float]:
        has_video = getattr(getattr(model, "encoder", None), "visual", None) is not None
        modes = valid_modalities(cfg, has_video)
        dec = _gather_ranks(_decode(model, loader, modes, beam), dist)
        result = _score(cfg, dec, modes)
        if dist.is_main:
            hyps = dec.hyps[modes[0]]
            order = sorted(range(len(dec.ids)), key=lambda i: dec.ids[i])
            atomic_write_text(
                out / "valid_hyps.txt",
                "".join(f"{dec.ids[i]}\t{hyps[i]}\t{dec.refs[i]}\n" for i in order),
            )
        return result

    return validate


@dataclasses.dataclass
class _Decoded:
    """Validation hypotheses, references and loss sums (of one rank, or gathered)."""

    ids: list[str] = dataclasses.field(default_factory=list)
    """Clip ids."""
    hyps: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Decoded text per clip, per input mode."""
    refs: list[str] = dataclasses.field(default_factory=list)
    """Reference text per clip."""
    langs: list[str] = dataclasses.field(default_factory=list)
    """Language per clip ("" when unknown)."""
    loss_sum: float = 0.0
    """Summed loss over the clips' targets."""
    size_sum: float = 0.0
    """Number of targets in ``loss_sum``."""


def _decode(model: nn.Module, loader: Any, modes: list[Mode], beam: int) -> _Decoded:
    """Loss (in ``modes[0]``) and hypotheses (in each of ``modes``) of this rank's share
    of the validation split."""
    device = next(model.parameters()).device
    dec = _Decoded(hyps={m: [] for m in modes})
    for batch in loader:
        batch = batch.to(device)
        loss, size, _ = model.compute_loss(batch, modality=modes[0])  # type: ignore[operator]
        dec.loss_sum += float(loss)
        dec.size_sum += float(size)
        for m in modes:
            dec.hyps[m].extend(model.decode(batch, modality=m, beam=beam))  # type: ignore[operator]
        dec.refs.extend(batch.texts or [])
        dec.ids.extend(batch.ids)
        dec.langs.extend(batch.langs or [""] * len(batch.ids))
    return dec


def _gather_ranks(dec: _Decoded, dist: DistInfo) -> _Decoded:
    """Every rank's :class:`_Decoded` joined in rank order (itself in one process)."""
    if not is_dist():
        return dec
    gathered: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(
        gathered, (dec.ids, dec.hyps, dec.refs, dec.langs, dec.loss_sum, dec.size_sum)
    )
    return _Decoded(
        ids=[i for g in gathered for i in g[0]],
        hyps={m: [h for g in gathered for h in g[1][m]] for m in dec.hyps},
        refs=[r for g in gathered for r in g[2]],
        langs=[x for g in gathered for x in g[3]],
        loss_sum=sum(g[4] for g in gathered),
        size_sum=sum(g[5] for g in gathered),
    )


def _score(cfg: FinetuneConfig, dec: _Decoded, modes: list[Mode]) -> dict[str, float]:
    """Loss, clip count, WER (avsr) or BLEU (avst) of the selection mode ``modes[0]`` (also
    per source language when there are several) and of every mode (``wer_av``, ...)."""
    result = {"loss": dec.loss_sum / max(dec.size_sum, 1.0), "n_clips": float(len(dec.refs))}
    refs, langs = dec.refs, dec.langs
    name = "wer" if cfg.task == "avsr" else "bleu"

    def score(hyps: list[str]) -> float:
        return metrics.wer(refs, hyps) if name == "wer" else metrics.bleu(refs, hyps)

    hyps = dec.hyps[modes[0]]
    result[name] = score(hyps)
    if len({x for x in langs if x}) > 1:  # per source language as well
        for lang, sc in metrics.score_by_language(refs, hyps, langs, with_bleu=name == "bleu").items():
            if lang not in (metrics.ALL, ""):
                value = sc.counts.wer if name == "wer" else sc.bleu.score  # type: ignore[union-attr]
                result[f"{name}_{lang}"] = float(value)
    for m in modes:
        result[f"{name}_{m}"] = result[name] if m == modes[0] else score(dec.hyps[m])
    return result


def _finished(cfg: FinetuneConfig, out: Path) -> dict[str, Any] | None:
    """The summary of a run already trained for ``train.max_updates`` (None: train)."""
    summary_path = out / SUMMARY
    if summary_path.is_file() and (out / "model").is_dir():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if int(summary.get("updates", -1)) >= cfg.train.max_updates:
            log.info("%s: already fine-tuned for %d updates (model in %s); nothing to do", out, summary["updates"], out / "model")
            return summary
    return None


def _log_sizes(cfg: FinetuneConfig, model: Any, tokenizer: Tokenizer) -> None:
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_head = sum(p.numel() for p in model.head.parameters())
    log.info(
        "fine-tuning %s/%s on %s input: encoder %.2fM + head %.2fM parameters, %d pieces",
        cfg.task, cfg.head, cfg.modality, n_enc / 1e6, n_head / 1e6, tokenizer.vocab_size,
    )


def attach_teacher(cfg: FinetuneConfig, model: Any, init: Path, device: torch.device) -> None:
    """``distill.teacher``: load the teacher (``init``: the ``--init`` model) onto ``device``
    and hand it to ``model``; a clear error when it is not a CTC model with this run's tokenizer."""
    name = cfg.distill.teacher
    if name is None:
        return
    path = init if name == "init" else Path(name)
    if not is_finetuned_dir(path):
        raise UserError(f"distill.teacher {name}: {path} is not a fine-tuned model directory")
    teacher = CTCTeacher(load_finetuned(path), where=str(path)).to(device)
    d = cfg.distill
    model.set_teacher(teacher, d.weight, d.rows, audio_alone_scale=d.audio_alone_scale)
    log.info(
        "distillation from %s on clean audio (weight %g, rows: %s, audio-alone rows x%g)",
        path, d.weight, d.rows, d.audio_alone_scale,
    )


def _train_loader(cfg: FinetuneConfig, files: SplitFiles, dist: DistInfo) -> Any:
    """Length-bucketed batches of the training split, sharded over ranks."""
    train_ds = AVDataset(
        files.manifest, cfg.data, train=True, labels=files.labels,
        keep_clean_audio=cfg.model.dropout.reads_clean_audio or cfg.distill.teacher is not None,
    )
    sampler = make_batch_sampler(train_ds, rank=dist.rank, world_size=dist.world_size)
    return make_dataloader(
        train_ds, sampler, num_workers=cfg.train.num_workers, pin_memory=dist.device.type == "cuda"
    )


def _export(cfg: FinetuneConfig, result: TrainResult, out: Path) -> dict[str, Any]:
    """Save the best (else last) checkpoint as ``out/model``; write and return the summary."""
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
    atomic_write_json(out / SUMMARY, summary)
    log.info("fine-tuned model: %s (from %s; best %s)", out / "model", src, result.best)
    return summary


def _train(cfg: FinetuneConfig, *, data: Path, init: Path, out: Path, dist: DistInfo) -> dict[str, Any]:
    """Targets, tokenizer, model, training, export (every rank; rank 0 writes)."""
    main = dist.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    train_files, valid_files = _data_files(cfg, data, out, main)
    tokenizer = _tokenizer(cfg, train_files, out, main)
    seed_everything(cfg.train.seed)  # the fresh head (and lip encoder) are the same on every run / rank
    model = build_model(cfg, init, tokenizer)
    _freeze_parts(cfg, model)
    attach_teacher(cfg, model, init, dist.device)
    record_model_settings(cfg, model, init, log_it=main)
    write_run_config(cfg, out, main)
    if main:
        _log_sizes(cfg, model, tokenizer)
        log.info(dropout_summary(cfg))
    loader = _train_loader(cfg, train_files, dist)
    validate_fn = None
    if valid_files is not None:
        assert cfg.valid.modalities is not None
        valid_data = dataclasses.replace(cfg.data, modalities=valid_media(cfg.valid.modalities))
        valid_ds = AVDataset(valid_files.manifest, valid_data, train=False, labels=valid_files.labels)
        validate_fn = make_validate_fn(cfg, valid_ds, dist, out)
    if validate_fn is None:
        cfg.train.best_metric = None
    _, result = fit(model, loader, cfg, out=out, dist=dist, validate_fn=validate_fn,
                    model_config=model_config_of(model), model_kind="finetuned")
    summary = _export(cfg, result, out) if main else {}
    barrier()
    return summary


def run_finetune(cfg: FinetuneConfig, *, data: Path, init: Path, out: Path) -> dict[str, Any]:
    """Fine-tune; returns the run summary (also written to ``RUN/finetune.json``)."""
    data, init, out = Path(data), Path(init), Path(out)
    summary = _finished(cfg, out)
    if summary is not None:
        return summary
    dist = init_distributed(cfg.train.device)
    try:
        return _train(cfg, data=data, init=init, out=out, dist=dist)
    finally:
        cleanup_distributed()
