"""Evaluation results: every cell of the grid with its counts, as JSON and Markdown.

A cell is (noise type, SNR, modality, language) -> :class:`avsr.metrics.Score`.
The clean condition has ``noise == "clean"`` and ``snr is None``. The language
``"all"`` is the sum of the languages' counts (and corpus BLEU over all of
their sentences). ``results.json`` holds no timestamps or timings, so the same
evaluation gives the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsr.errors import UserError
from avsr.io import atomic_write_json, atomic_write_text
from avsr.metrics import ALL, Score

FORMAT = "xlavsr-eval"
VERSION = 1
CLEAN = "clean"


def snr_label(snr: float | None) -> str:
    """``None`` -> ``clean``; ``-5.0`` -> ``-5``; ``2.5`` -> ``2.5``."""
    return CLEAN if snr is None else f"{snr:g}"


def condition_key(noise: str, snr: float | None) -> str:
    """File-name-safe key of a condition: ``clean`` or ``babble_-5dB``."""
    return CLEAN if snr is None else f"{noise}_{snr:g}dB"


@dataclass(kw_only=True)
class Cell:
    """One cell of the grid. ``same_as`` names the condition whose decoding it reuses
    (video-only cells do not depend on the audio noise, so they are decoded once)."""

    noise: str
    snr: float | None
    modality: str
    lang: str
    score: Score
    same_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "noise": self.noise,
            "snr": self.snr,
            "modality": self.modality,
            "lang": self.lang,
        }
        if self.same_as is not None:
            d["same_as"] = self.same_as
        d.update(self.score.to_dict())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        snr = d["snr"]
        return cls(
            noise=d["noise"],
            snr=None if snr is None else float(snr),
            modality=d["modality"],
            lang=d["lang"],
            score=Score.from_dict(d),
            same_as=d.get("same_as"),
        )


@dataclass(kw_only=True)
class EvalResults:
    """The whole evaluation: metadata (model, data, seed, signatures, config) and cells."""

    task: str  # "avsr" (WER/CER) or "avst" (BLEU)
    model: str
    manifest: str
    seed: int
    noises: list[str]
    snrs: list[float | None]
    modalities: list[str]
    languages: list[str]
    signatures: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    noise_files: dict[str, list[str]] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)

    @property
    def metric(self) -> str:
        """The headline metric: ``bleu`` for translation, ``wer`` otherwise."""
        return "bleu" if self.task == "avst" else "wer"

    def cell(self, noise: str, snr: float | None, modality: str, lang: str = ALL) -> Cell:
        n = CLEAN if snr is None else noise
        for c in self.cells:
            if c.noise == n and c.snr == snr and c.modality == modality and c.lang == lang:
                return c
        raise KeyError((noise, snr, modality, lang))

    def value(
        self,
        noise: str,
        snr: float | None,
        modality: str,
        lang: str = ALL,
        metric: str | None = None,
    ) -> float:
        """WER / CER / BLEU of one cell (``nan`` if undefined)."""
        s = self.cell(noise, snr, modality, lang).score
        metric = metric or self.metric
        if metric == "wer":
            return s.counts.wer
        if metric == "cer":
            return s.counts.cer
        if metric == "bleu":
            return s.bleu.score if s.bleu is not None else math.nan
        raise ValueError(f"unknown metric {metric!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "metric": self.metric,
            "model": self.model,
            "manifest": self.manifest,
            "seed": self.seed,
            "signatures": dict(self.signatures),
            "grid": {
                "noise": list(self.noises),
                "snr": list(self.snrs),
                "modality": list(self.modalities),
                "languages": list(self.languages),
            },
            "noise_files": self.noise_files,
            "config": self.config,
            "cells": [c.to_dict() for c in self.cells],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResults:
        if d.get("format") != FORMAT:
            raise UserError(f"not an xlavsr evaluation result (format {d.get('format')!r})")
        g = d["grid"]
        return cls(
            task=d["task"],
            model=d["model"],
            manifest=d["manifest"],
            seed=int(d["seed"]),
            noises=list(g["noise"]),
            snrs=[None if s is None else float(s) for s in g["snr"]],
            modalities=list(g["modality"]),
            languages=list(g["languages"]),
            signatures=dict(d["signatures"]),
            config=d.get("config", {}),
            noise_files=d.get("noise_files", {}),
            cells=[Cell.from_dict(c) for c in d["cells"]],
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResults:
        path = Path(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: cannot read evaluation results: {exc}") from exc
        return cls.from_dict(data)


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.1f}"


def markdown_table(results: EvalResults, *, metrics: Sequence[str] | None = None) -> str:
    """Markdown report: one table per metric and noise type; rows language x modality,
    columns clean and each SNR. CER (recognition) gets one table of the clean condition
    (every cell of results.json has it)."""
    if metrics is None:
        metrics = ["bleu"] if results.task == "avst" else ["wer", "cer"]
    names = {"wer": "WER (%)", "cer": "CER (%)", "bleu": "BLEU"}
    langs = [ALL] + [x for x in results.languages if x != ALL]
    noisy = [s for s in results.snrs if s is not None]
    has_clean = any(s is None for s in results.snrs)
    lines = [
        f"# Evaluation: {Path(results.model).name or results.model}",
        "",
        f"- model: `{results.model}`",
        f"- data: `{results.manifest}`",
        f"- task: {results.task}; seed: {results.seed}",
    ]
    for k, v in results.signatures.items():
        lines.append(f"- {k} signature: `{v}`")
    noises = results.noises or [CLEAN]
    for metric in metrics:
        if metric == "cer":
            if not has_clean:
                continue
            lines += ["", f"## {names[metric]}: clean", ""]
            lines.append("| lang | " + " | ".join(results.modalities) + " |")
            lines.append("|---|" + "---:|" * len(results.modalities))
            for lang in langs:
                vals = [results.value(CLEAN, None, mod, lang, metric) for mod in results.modalities]
                lines.append(f"| {lang} | " + " | ".join(_fmt(v) for v in vals) + " |")
            continue
        for noise in noises:
            lines += ["", f"## {names[metric]}: {noise}", ""]
            cols = ([CLEAN] if has_clean else []) + [f"{s:g} dB" for s in noisy]
            if noise == CLEAN:
                cols = [CLEAN]
            lines.append("| lang | modality | " + " | ".join(cols) + " |")
            lines.append("|---|---|" + "---:|" * len(cols))
            for lang in langs:
                for mod in results.modalities:
                    vals = []
                    if has_clean or noise == CLEAN:
                        vals.append(results.value(CLEAN, None, mod, lang, metric))
                    if noise != CLEAN:
                        vals += [results.value(noise, s, mod, lang, metric) for s in noisy]
                    lines.append(f"| {lang} | {mod} | " + " | ".join(_fmt(v) for v in vals) + " |")
    if any(c.same_as for c in results.cells):
        lines += [
            "",
            "Video-only cells do not depend on the audio noise: they are decoded once (clean audio).",
        ]
    return "\n".join(lines) + "\n"


def write_markdown(results: EvalResults, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, markdown_table(results))
    return path
