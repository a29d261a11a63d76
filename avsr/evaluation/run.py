"""One evaluation run: model + test data + noise folder -> hypotheses, results.json,
Markdown table and PNG plots in one output folder.

Output folder ``EVAL/``::

    results.json          every cell with its counts (no timestamps: same run, same bytes)
    results.md            Markdown tables (WER/CER for recognition, BLEU for translation)
    wer_vs_snr*.png       (or bleu_vs_snr*.png) one panel per noise type, a line per modality
    hyps/{cond}.{mod}.tsv id, language, reference, hypothesis per clip
    hyps/fingerprint.json what the cached hypotheses were made from (a rerun reuses them)
    eval.yaml             the resolved config
    data/                 the scored rows, when the manifest had to be filtered
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsr.checkpoint import read_model_config
from avsr.config import save_config, to_dict
from avsr.data import AVDataset, DataConfig
from avsr.data.targets import SplitFiles, read_split, target_files, write_rows
from avsr.decoding.ctc_lm import CTCBeamConfig, install_ctc_decoder
from avsr.errors import UserError
from avsr.evaluation.grid import (
    Condition,
    Decoder,
    GridJob,
    decode_grid,
    grid_conditions,
    parse_modalities,
)
from avsr.evaluation.plots import write_plots
from avsr.evaluation.results import Cell, EvalResults, write_markdown
from avsr.io import atomic_write_json, atomic_write_text
from avsr.logging_utils import get_logger, progress
from avsr.metrics import ALL, CER_SIGNATURE, WER_SIGNATURE, bleu_signature, score_by_language
from avsr.models.finetuned import check_joint_decoding, load_finetuned
from avsr.noise import NoiseBank, parse_categories, parse_snrs
from avsr.runtime import input_geometry, pick_device, resolve_model_dir

log = get_logger(__name__)


@dataclass(kw_only=True)
class EvalConfig:
    """Options of ``avsr evaluate`` (``--config FILE`` / ``--set key=value``)."""

    model: str = ""
    """Fine-tuned model directory (``avsr finetune`` output)."""
    manifest: str | None = None
    """A MuAViC ``{split}.tsv``; references beside it (``.wrd`` / ``.{lang}`` / ``.en``)."""
    data: str | None = None
    """Or a preprocessed DATA folder (with ``split``, and ``lang`` / ``pair`` to pick one)."""
    split: str = "test"
    """Split of the DATA folder (and default noise list)."""
    lang: str | None = None
    """One language (``DATA/muavic/{lang}``), or the language of a manifest without ``.lang``."""
    pair: str | None = None
    """Translation pair ``xx-en`` (``DATA/muavic/xx/en``)."""
    labels: str | None = None
    """Reference file overriding the automatic choice."""
    noise_dir: str | None = None
    """Noise folder (``{category}/*.wav``); needed for noisy SNRs."""
    noise_split: str | None = None
    """Noise list ``{category}/{noise_split}.tsv`` (default: ``split``; all wavs if absent)."""
    snr: str = "clean,-10,-5,0,5,10"
    """Comma-separated SNRs in dB; ``clean`` for no noise."""
    noise: str = "babble,music,noise,speech"
    """Comma-separated noise categories."""
    modality: str = "a,v,av"
    """Comma-separated input modes: ``a`` audio only, ``v`` video only, ``av`` both."""
    seed: int = 0
    """Seed of the per-clip choice and offset of the noise."""
    beam: int = 5
    """Beam width of seq2seq decoding."""
    ctc_weight: float = 0.0
    """Joint CTC/attention decoding of a seq2seq model with a CTC branch: score =
    (1 - w) * attention + w * CTC prefix score (0: attention only)."""
    decoder: str = "greedy"
    """CTC models: ``greedy`` (best path) or ``beam`` (prefix beam search, optional LM)."""
    ctc: CTCBeamConfig = field(default_factory=CTCBeamConfig)
    """CTC prefix beam search options (``decoder: beam``): beam size, LM, lexicon, weights."""
    max_frames_per_batch: int = 1000
    """Bound on batch size x longest clip, in video frames (25 fps)."""
    max_batch_size: int = 16
    """Most clips in one batch."""
    num_workers: int = 2
    """Worker processes decoding the test media (0: none)."""
    max_clips: int | None = None
    """Score only the first N scored rows (quick looks)."""
    crop_size: int | None = None
    """Centre crop of the ROI; None: the model's training crop (``data.crop_size`` in its config) or 88."""
    image_size: int | None = None
    """Resize the ROI frames to this size first; None: the model's training size (if any)."""
    device: str = "auto"
    """``auto`` (CUDA when visible), ``cpu``, ``cuda``, ``cuda:N``."""
    plots: bool = True
    """Write the metric-vs-SNR plots."""


@dataclass(kw_only=True)
class EvalData:
    """The files scored by one evaluation."""

    manifest: Path
    """Manifest of the scored rows."""
    labels: Path
    """One reference per scored row."""
    langs: Path | None
    """One language per scored row (None: every row is ``lang``)."""
    lang: str | None
    """Language of all rows when ``langs`` is None (None: unknown)."""
    rows: int
    """Number of scored rows."""


def _fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_folder_files(cfg: EvalConfig, task: str, out: Path) -> tuple[SplitFiles, str | None]:
    """The split's files in a DATA folder, and the language of all rows when known."""
    files = target_files(
        cfg.data or "", cfg.split, task=task, lang=cfg.lang, pair=cfg.pair, run_dir=out
    )
    if cfg.labels:
        files = SplitFiles(files.manifest, Path(cfg.labels), files.langs)
    lang = cfg.lang
    if files.langs is None and lang is None and cfg.pair:
        lang = cfg.pair.split("-")[0]
    return files, lang


def _manifest_files(cfg: EvalConfig, task: str) -> tuple[SplitFiles, str | None]:
    """A manifest's reference and language files beside it, and the language of all rows."""
    lang = cfg.lang
    manifest = Path(cfg.manifest or "")
    stem = manifest.with_suffix("")
    folder = manifest.parent.name
    if cfg.labels:
        labels = Path(cfg.labels)
    elif task == "avst":
        labels = stem.with_suffix(".en")
        if lang is None and folder == "en" and manifest.parent.parent.name:
            lang = manifest.parent.parent.name  # muavic/{src}/en/{split}.tsv
    elif stem.with_suffix(".wrd").is_file():
        labels = stem.with_suffix(".wrd")
    else:
        labels = stem.with_suffix(f".{lang or folder}")  # muavic/{lang}/{split}.{lang}
        if lang is None and labels.is_file():
            lang = folder
    auto = stem.with_suffix(".lang")
    return SplitFiles(manifest, labels, auto if auto.is_file() else None), lang


def resolve_data(cfg: EvalConfig, task: str, out: Path) -> EvalData:
    """The manifest, reference and language files to score, filtered into ``out/data``
    when rows must be dropped (no reference, ``max_clips``)."""
    if (cfg.manifest is None) == (cfg.data is None):
        raise UserError("give exactly one of --manifest FILE.tsv or --data DATA (with --split)")
    if cfg.data is not None:
        files, lang = _data_folder_files(cfg, task, out)
    else:
        files, lang = _manifest_files(cfg, task)
    if not files.manifest.is_file():
        raise UserError(f"{files.manifest}: manifest not found")
    if not files.labels.is_file():
        raise UserError(f"{files.labels}: reference file not found (give --labels)")
    m, refs, lang_list = read_split(files)
    if not m.rows:
        raise UserError(f"{files.manifest}: empty manifest (no clips to evaluate)")
    keep = [i for i, r in enumerate(refs) if r.strip()]
    if cfg.max_clips is not None:
        keep = keep[: cfg.max_clips]
    if not keep:
        raise UserError(f"{files.labels}: no row has a reference")
    if len(keep) < len(m.rows):
        d = out / "data"
        dest = SplitFiles(d / files.manifest.name, d / files.labels.name, d / "scored.lang")
        kept = write_rows(dest, m, refs, lang_list, keep)
        log.info("%s: scoring %d of %d rows", files.manifest, len(keep), len(m.rows))
        files = kept
    return EvalData(
        manifest=files.manifest, labels=files.labels, langs=files.langs, lang=lang, rows=len(keep)
    )


@dataclass(kw_only=True)
class Evaluation:
    """A parsed, checked evaluation request."""

    cfg: EvalConfig
    """The options."""
    out: Path
    """Output folder."""
    snrs: list[float | None]
    """SNRs in dB (None: clean)."""
    noises: list[str]
    """Noise categories (empty when every SNR is clean)."""
    modalities: list[str]
    """Input modes."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Caller-specific additions."""


def plan(cfg: EvalConfig, out: str | Path) -> Evaluation:
    """Parse the lists (errors name the bad item) before anything heavy runs."""
    snrs = parse_snrs(cfg.snr)
    noises = parse_categories(cfg.noise) if any(s is not None for s in snrs) else []
    modalities = parse_modalities(cfg.modality)
    if noises and not cfg.noise_dir:
        raise UserError("--noise-dir is needed for noisy SNRs (or use --snr clean)")
    if not cfg.model:
        raise UserError("--model is required (a fine-tuned model directory)")
    return Evaluation(cfg=cfg, out=Path(out), snrs=snrs, noises=noises, modalities=modalities)


@dataclass(kw_only=True)
class _Scored:
    """The test set as loaded: the dataset, its references and languages, the ROI geometry."""

    dataset: AVDataset
    refs: list[str]
    langs: list[str]
    crop: int
    image_size: int | None


def run_evaluation(
    cfg: EvalConfig,
    out: str | Path,
    *,
    model: Decoder | None = None,
    model_config: dict[str, Any] | None = None,
) -> EvalResults:
    """Run the grid and write every output into ``out`` (see the module docstring).

    ``model`` (with ``model_config``, its config.yaml content) skips loading
    ``cfg.model`` -- for callers that already hold the model (zeroshot, tests).
    """
    ev = plan(cfg, out)
    out = ev.out
    out.mkdir(parents=True, exist_ok=True)
    if model_config is None:
        cfg.model = str(resolve_model_dir(cfg.model))
        model_config = read_model_config(cfg.model)
    task = str((model_config.get("finetune") or {}).get("task", "avsr"))
    check_joint_decoding(model_config, cfg.ctc_weight, cfg.model)
    data = resolve_data(cfg, task, out)
    scored = _load_test_set(cfg, ev, data, model_config)
    bank, noise_files = _noise_bank(cfg, ev)
    conditions = grid_conditions(ev.noises, ev.snrs)
    job = _grid_job(cfg, ev, conditions)
    cfg_record = _config_record(cfg)
    fingerprint = _run_fingerprint(cfg, cfg_record, model_config, data, noise_files, scored)
    hyp_dir = out / "hyps"
    ids = [r.id for r in scored.dataset.rows]
    cached = _cached(hyp_dir, fingerprint, conditions, ev.modalities, ids)
    model, device = _model_on_device(cfg, model)
    install_ctc_decoder(model, cfg.decoder, cfg.ctc, where=cfg.model)
    hyps = _decode(model, scored, job, bank, cached, device, hyp_dir)
    results = EvalResults(
        task=task,
        model=str(cfg.model),
        manifest=str(
            cfg.manifest
            or f"{cfg.data} ({', '.join(x for x in (cfg.split, cfg.lang, cfg.pair) if x)})"
        ),
        seed=cfg.seed,
        noises=ev.noises,
        snrs=ev.snrs,
        modalities=ev.modalities,
        languages=sorted(set(scored.langs)),
        signatures=_signatures(task),
        config=cfg_record,
        noise_files=noise_files,
        cells=_score_cells(conditions, ev.modalities, scored, hyps, with_bleu=task == "avst"),
    )
    _write_outputs(cfg, results, out)
    return results


RUN_ONLY = ("device", "plots", "num_workers")
"""EvalConfig fields that do not change the hypotheses (left out of the record)."""
OMITTED_AT_DEFAULT = (
    "ctc_weight",
    "decoder",
    "ctc",
)
"""Decoding options left out of the record at their default value, so that the results of
an evaluation made before the option existed keep their bytes and their fingerprint."""


def _config_record(cfg: EvalConfig) -> dict[str, Any]:
    """The options recorded in results.json and the hypotheses' fingerprint."""
    default = to_dict(EvalConfig())
    return {
        k: v
        for k, v in to_dict(cfg).items()
        if k not in RUN_ONLY and not (k in OMITTED_AT_DEFAULT and v == default[k])
    }


def _load_test_set(
    cfg: EvalConfig, ev: Evaluation, data: EvalData, model_config: dict[str, Any]
) -> _Scored:
    """The scored clips, read with the model's ROI geometry and only the streams needed."""
    crop, image_size = input_geometry(model_config)
    crop = cfg.crop_size or crop
    image_size = cfg.image_size if cfg.image_size is not None else image_size
    needs_audio = any(m in ("a", "av") for m in ev.modalities)
    needs_video = any(m in ("v", "av") for m in ev.modalities)
    load = "av" if needs_audio and needs_video else "a" if needs_audio else "v"
    dcfg = DataConfig(
        crop_size=crop,
        image_size=image_size,
        modalities=load,
        max_keep_seconds=None,
        min_keep_frames=1,
    )  # type: ignore[arg-type]
    dataset = AVDataset(data.manifest, dcfg, train=False, labels=data.labels, langs=data.langs)
    refs = list(dataset.texts or [])
    langs = (
        list(dataset.langs) if dataset.langs is not None else [data.lang or "unk"] * len(dataset)
    )
    if len(dataset) < data.rows:
        log.warning(
            "%s: %d clips too short to score were skipped", data.manifest, data.rows - len(dataset)
        )
    return _Scored(dataset=dataset, refs=refs, langs=langs, crop=crop, image_size=image_size)


def _noise_bank(cfg: EvalConfig, ev: Evaluation) -> tuple[NoiseBank | None, dict[str, list[str]]]:
    """The noise bank of the noisy conditions (None: clean only) and its files per category."""
    bank = (
        NoiseBank(cfg.noise_dir, split=cfg.noise_split or cfg.split, categories=ev.noises)
        if ev.noises
        else None
    )
    noise_files: dict[str, list[str]] = {}
    if bank is not None:
        for c in ev.noises:
            noise_files[c] = [_rel(p, bank.root) for p in bank.files(c)]  # UserError if none
    return bank, noise_files


def _grid_job(cfg: EvalConfig, ev: Evaluation, conditions: list[Condition]) -> GridJob:
    return GridJob(
        conditions=conditions,
        modalities=ev.modalities,
        seed=cfg.seed,
        beam=cfg.beam,
        ctc_weight=cfg.ctc_weight,
        max_frames_per_batch=cfg.max_frames_per_batch,
        max_batch_size=cfg.max_batch_size,
        num_workers=cfg.num_workers,
    )


def _run_fingerprint(
    cfg: EvalConfig,
    cfg_record: dict[str, Any],
    model_config: dict[str, Any],
    data: EvalData,
    noise_files: dict[str, list[str]],
    scored: _Scored,
) -> str:
    """What the hypotheses are made from: config, model, weights, data and noise files."""
    weights = Path(cfg.model) / "model.safetensors"
    parts = {
        "config": cfg_record,
        "model_config": model_config,
        "weights": _file_digest(weights) if weights.is_file() else None,
        "manifest": _file_digest(data.manifest),
        "labels": _file_digest(data.labels),
        "noise": noise_files,
        "crop": [scored.crop, scored.image_size],
    }
    if cfg.decoder != "greedy":  # the LM and lexicon contents (absent at the default)
        for path in (cfg.ctc.lm, cfg.ctc.lexicon):
            if path and Path(path).is_file():
                parts[path] = _file_digest(Path(path))
    return _fingerprint(parts)


def _model_on_device(cfg: EvalConfig, model: Decoder | None) -> tuple[Decoder, str]:
    """The given model and the device of its parameters, or ``cfg.model`` loaded."""
    if model is None:
        device = pick_device(cfg.device)
        return load_finetuned(cfg.model, device=device), device
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return model, str(first.device) if first is not None else pick_device(cfg.device)


def _decode(
    model: Decoder,
    scored: _Scored,
    job: GridJob,
    bank: NoiseBank | None,
    cached: dict[tuple[str, str], list[str]],
    device: str,
    hyp_dir: Path,
) -> dict[tuple[str, str], list[str]]:
    """Hypotheses of every (condition, modality): the cached ones, the others decoded now
    (and written to ``hyp_dir``), with a progress bar over the clips."""
    dataset = scored.dataset
    todo = len(job.conditions) * len(job.modalities) - len(cached)
    log.info(
        "evaluating %d clips x %d conditions x %d modalities (%d cached)",
        len(dataset),
        len(job.conditions),
        len(job.modalities),
        len(cached),
    )
    hyps: dict[tuple[str, str], list[str]] = dict(cached)
    if not todo:
        return hyps
    bar = progress(range(len(dataset)), desc="evaluate", total=len(dataset), unit="clip")
    bar_iter = iter(bar)

    def _advance(k: int) -> None:
        for _ in range(k):
            next(bar_iter, None)

    new = decode_grid(
        model, dataset, job, bank, skip=set(cached), device=device, on_progress=_advance
    )
    for _ in bar_iter:  # finish (and close) the progress bar
        pass
    for (ckey, mod), h in new.items():
        _write_hyps(hyp_dir / f"{ckey}.{mod}.tsv", dataset, scored.refs, scored.langs, h)
        hyps[(ckey, mod)] = h
    return hyps


def _score_cells(
    conditions: Sequence[Condition],
    modalities: Sequence[str],
    scored: _Scored,
    hyps: dict[tuple[str, str], list[str]],
    *,
    with_bleu: bool,
) -> list[Cell]:
    """One cell per condition x modality x language (all languages first)."""
    cells: list[Cell] = []
    lang_names = sorted(set(scored.langs))
    for cond in conditions:
        for mod in modalities:
            scores = score_by_language(
                scored.refs, hyps[(cond.key, mod)], scored.langs, with_bleu=with_bleu
            )
            same = "clean" if (mod == "v" and cond.snr is not None) else None
            for lang in [ALL, *lang_names]:
                cells.append(
                    Cell(
                        noise=cond.noise,
                        snr=cond.snr,
                        modality=mod,
                        lang=lang,
                        score=scores[lang],
                        same_as=same,
                    )
                )
    return cells


def _signatures(task: str) -> dict[str, str]:
    """The metric signatures of the results (BLEU for translation)."""
    signatures = {"wer": WER_SIGNATURE, "cer": CER_SIGNATURE}
    if task == "avst":
        signatures["bleu"] = bleu_signature()
    return signatures


def _write_outputs(cfg: EvalConfig, results: EvalResults, out: Path) -> None:
    """results.json, results.md, eval.yaml and the plots."""
    results.save(out / "results.json")
    write_markdown(results, out / "results.md")
    save_config(cfg, out / "eval.yaml")
    if cfg.plots:
        write_plots(results, out)


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _write_hyps(
    path: Path, dataset: Any, refs: Sequence[str], langs: Sequence[str], hyps: Sequence[str]
) -> None:
    lines = ["id\tlang\tref\thyp"]
    for row, ref, lang, hyp in zip(dataset.rows, refs, langs, hyps):
        lines.append(f"{row.id}\t{lang}\t{_clean(ref)}\t{_clean(hyp)}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _cached(
    hyp_dir: Path,
    fingerprint: str,
    conditions: Sequence[Any],
    modalities: Sequence[str],
    ids: Sequence[str],
) -> dict[tuple[str, str], list[str]]:
    """Hypotheses of an earlier run with the same fingerprint (all clips present)."""
    fp = hyp_dir / "fingerprint.json"
    try:
        same = json.loads(fp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, json.JSONDecodeError):
        same = False
    if not same:
        # hypotheses of other inputs (or of unknown origin) must never be mixed with new ones
        stale = sorted(hyp_dir.glob("*.tsv")) if hyp_dir.is_dir() else []
        if stale:
            log.info("%s: hypotheses made from other inputs; decoding again", hyp_dir)
        for f in stale:
            f.unlink()
        atomic_write_json(fp, {"fingerprint": fingerprint})
        return {}
    out: dict[tuple[str, str], list[str]] = {}
    for cond in conditions:
        for mod in modalities:
            p = hyp_dir / f"{cond.key}.{mod}.tsv"
            if not p.is_file():
                continue
            lines = p.read_text(encoding="utf-8").split("\n")[1:]
            rows = [ln.split("\t") for ln in lines if ln]
            if [r[0] for r in rows] != list(ids) or any(len(r) != 4 for r in rows):
                continue
            out[(cond.key, mod)] = [r[3] for r in rows]
    return out


def headline(results: EvalResults) -> str:
    """A short text summary: the metric per modality for clean and the mean over noisy cells."""
    lines = []
    metric = results.metric
    for mod in results.modalities:
        parts = []
        if any(s is None for s in results.snrs):
            parts.append(f"clean {_f(results.value('clean', None, mod, ALL))}")
        for noise in results.noises:
            vals = [results.value(noise, s, mod, ALL) for s in results.snrs if s is not None]
            parts.append(f"{noise} {' '.join(_f(v) for v in vals)}")
        lines.append(f"{metric.upper()} {mod:>2}: " + " | ".join(parts))
    return "\n".join(lines)


def _f(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"
