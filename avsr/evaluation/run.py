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

from avsr.config import save_config, to_dict
from avsr.errors import UserError
from avsr.evaluation.grid import Decoder, GridJob, grid_conditions, parse_modalities
from avsr.evaluation.results import Cell, EvalResults, write_markdown
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
from avsr.metrics import ALL, CER_SIGNATURE, WER_SIGNATURE, bleu_signature, score_by_language
from avsr.noise import parse_categories, parse_snrs

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
    lang: str | None = None
    """One language (``DATA/muavic/{lang}``), or the language of a manifest without ``.lang``."""
    pair: str | None = None
    """Translation pair ``xx-en`` (``DATA/muavic/xx/en``)."""
    labels: str | None = None
    """Reference file overriding the automatic choice."""
    noise_dir: str | None = None
    noise_split: str | None = None
    """Noise list ``{category}/{noise_split}.tsv`` (default: ``split``; all wavs if absent)."""
    snr: str = "clean,-10,-5,0,5,10"
    noise: str = "babble,music,noise,speech"
    modality: str = "a,v,av"
    seed: int = 0
    beam: int = 5
    max_frames_per_batch: int = 1000
    """Bound on batch size x longest clip, in video frames (25 fps)."""
    max_batch_size: int = 16
    num_workers: int = 2
    """Worker processes decoding the test media (0: none)."""
    max_clips: int | None = None
    """Score only the first N scored rows (quick looks)."""
    crop_size: int | None = None
    """Centre crop of the ROI; None: the model's training crop (``data.crop_size`` in its config) or 88."""
    image_size: int | None = None
    device: str = "auto"
    plots: bool = True


@dataclass(kw_only=True)
class EvalData:
    manifest: Path
    labels: Path
    langs: Path | None
    lang: str | None
    rows: int


def _fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_data(cfg: EvalConfig, task: str, out: Path) -> EvalData:
    """The manifest, reference and language files to score, filtered into ``out/data``
    when rows must be dropped (no reference, ``max_clips``)."""
    if (cfg.manifest is None) == (cfg.data is None):
        raise UserError("give exactly one of --manifest FILE.tsv or --data DATA (with --split)")
    lang = cfg.lang
    if cfg.data is not None:
        from tasks.finetune_data import target_files

        files = target_files(
            cfg.data, cfg.split, task=task, lang=cfg.lang, pair=cfg.pair, run_dir=out
        )
        manifest, labels, langs = files.manifest, files.labels, files.langs
        if cfg.labels:
            labels = Path(cfg.labels)
        if langs is None and lang is None and cfg.pair:
            lang = cfg.pair.split("-")[0]
    else:
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
        langs = auto if auto.is_file() else None
    if not manifest.is_file():
        raise UserError(f"{manifest}: manifest not found")
    if not labels.is_file():
        raise UserError(f"{labels}: reference file not found (give --labels)")
    try:
        m = read_manifest(manifest)
        refs = read_labels(labels, expected=len(m.rows))
        lang_list = read_labels(langs, expected=len(m.rows)) if langs is not None else None
    except ManifestError as exc:
        raise UserError(str(exc)) from exc
    if not m.rows:
        raise UserError(f"{manifest}: empty manifest (no clips to evaluate)")
    keep = [i for i, r in enumerate(refs) if r.strip()]
    if cfg.max_clips is not None:
        keep = keep[: cfg.max_clips]
    if not keep:
        raise UserError(f"{labels}: no row has a reference")
    if len(keep) < len(m.rows):
        d = out / "data"
        write_manifest(d / manifest.name, m.root, [m.rows[i] for i in keep])
        write_labels(d / labels.name, [refs[i] for i in keep])
        if lang_list is not None:
            write_labels(d / "scored.lang", [lang_list[i] for i in keep])
        log.info("%s: scoring %d of %d rows", manifest, len(keep), len(m.rows))
        return EvalData(
            manifest=d / manifest.name,
            labels=d / labels.name,
            langs=d / "scored.lang" if lang_list is not None else None,
            lang=lang,
            rows=len(keep),
        )
    return EvalData(manifest=manifest, labels=labels, langs=langs, lang=lang, rows=len(keep))


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device visible")
    return name


@dataclass(kw_only=True)
class Evaluation:
    """A parsed, checked evaluation request."""

    cfg: EvalConfig
    out: Path
    snrs: list[float | None]
    noises: list[str]
    modalities: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


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
    from avsr.checkpoint import read_model_config

    if model_config is None:
        from avsr.inference import resolve_model_dir

        cfg.model = str(resolve_model_dir(cfg.model))
        model_config = read_model_config(cfg.model)
    task = str((model_config.get("finetune") or {}).get("task", "avsr"))
    data = resolve_data(cfg, task, out)

    from avsr.data import AVDataset, DataConfig
    from avsr.inference import input_geometry
    from avsr.noise import NoiseBank

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
    bank = (
        NoiseBank(cfg.noise_dir, split=cfg.noise_split or cfg.split, categories=ev.noises)
        if ev.noises
        else None
    )
    noise_files: dict[str, list[str]] = {}
    if bank is not None:
        for c in ev.noises:
            noise_files[c] = [_rel(p, bank.root) for p in bank.files(c)]  # UserError if none

    conditions = grid_conditions(ev.noises, ev.snrs)
    job = GridJob(
        conditions=conditions,
        modalities=ev.modalities,
        seed=cfg.seed,
        beam=cfg.beam,
        max_frames_per_batch=cfg.max_frames_per_batch,
        max_batch_size=cfg.max_batch_size,
        num_workers=cfg.num_workers,
    )
    cfg_record = {
        k: v for k, v in to_dict(cfg).items() if k not in ("device", "plots", "num_workers")
    }
    model_path = Path(cfg.model)
    weights = model_path / "model.safetensors"
    fingerprint = _fingerprint(
        {
            "config": cfg_record,
            "model_config": model_config,
            "weights": _file_digest(weights) if weights.is_file() else None,
            "manifest": _file_digest(data.manifest),
            "labels": _file_digest(data.labels),
            "noise": noise_files,
            "crop": [crop, image_size],
        }
    )
    hyp_dir = out / "hyps"
    cached = _cached(hyp_dir, fingerprint, conditions, ev.modalities, [r.id for r in dataset.rows])
    if model is None:
        from avsr.models.finetuned import load_finetuned

        device = pick_device(cfg.device)
        model = load_finetuned(cfg.model, device=device)
    else:
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = str(first.device) if first is not None else pick_device(cfg.device)
    from avsr.evaluation.grid import decode_grid
    from avsr.logging_utils import progress

    todo = len(conditions) * len(ev.modalities) - len(cached)
    log.info(
        "evaluating %d clips x %d conditions x %d modalities (%d cached)",
        len(dataset),
        len(conditions),
        len(ev.modalities),
        len(cached),
    )
    hyps: dict[tuple[str, str], list[str]] = dict(cached)
    if todo:
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
            _write_hyps(hyp_dir / f"{ckey}.{mod}.tsv", dataset, refs, langs, h)
            hyps[(ckey, mod)] = h

    with_bleu = task == "avst"
    cells: list[Cell] = []
    lang_names = sorted(set(langs))
    for cond in conditions:
        for mod in ev.modalities:
            scores = score_by_language(refs, hyps[(cond.key, mod)], langs, with_bleu=with_bleu)
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
    signatures = {"wer": WER_SIGNATURE, "cer": CER_SIGNATURE}
    if with_bleu:
        signatures["bleu"] = bleu_signature()
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
        languages=lang_names,
        signatures=signatures,
        config=cfg_record,
        noise_files=noise_files,
        cells=cells,
    )
    results.save(out / "results.json")
    write_markdown(results, out / "results.md")
    save_config(cfg, out / "eval.yaml")
    if cfg.plots:
        from avsr.evaluation.plots import write_plots

        write_plots(results, out)
    return results


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
