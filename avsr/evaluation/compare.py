"""Several systems, several seeds: mean and spread of every evaluation cell, tables, plots.

An *arm* is one compared system (e.g. the CNN front end, or the audio-only
fine-tuned model); each arm has one ``results.json`` (see
:mod:`avsr.evaluation.results`) per seed, all on the same grid. Every cell of
the grid gets a :class:`Stat` over the seeds (mean, sample standard deviation,
min, max). "Under noise" summaries average a seed's noisy cells first (every
noise type and SNR), then take the spread of those per-seed averages over
seeds, so a seed's result counts once.

:func:`comparison_json` writes the aggregate (with the per-seed values, so
nothing is lost); :func:`condition_tables`, :func:`language_table`,
:func:`noisy_table` give Markdown; :func:`plot_comparison` draws mean lines
with a min-max band over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsr.errors import UserError
from avsr.evaluation.plots import METRIC_NAMES, MODALITY_NAMES, save_figure
from avsr.evaluation.results import CLEAN, EvalResults, snr_label
from avsr.metrics import ALL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT = "xlavsr-comparison"
VERSION = 1
ARM_COLORS = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
MODALITY_LINES = {"a": "--", "v": ":", "av": "-"}


@dataclass(kw_only=True)
class Stat:
    """One number measured over several seeds (``nan`` values are left out)."""

    values: list[float]
    seeds: list[int] = field(default_factory=list)

    @property
    def valid(self) -> list[float]:
        return [v for v in self.values if not math.isnan(v)]

    @property
    def n(self) -> int:
        return len(self.valid)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.valid) if self.valid else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (0 for one value, ``nan`` for none)."""
        v = self.valid
        return statistics.stdev(v) if len(v) > 1 else (0.0 if v else math.nan)

    @property
    def min(self) -> float:
        return min(self.valid) if self.valid else math.nan

    @property
    def max(self) -> float:
        return max(self.valid) if self.valid else math.nan

    def fmt(self, digits: int = 1) -> str:
        """``12.3 ± 1.2`` (mean ± std over seeds), ``12.3`` for one seed, ``-`` for none."""
        return self._fmt(digits, lambda d: f" ± {self.std:.{d}f}")

    def fmt_range(self, digits: int = 1) -> str:
        """``12.3 [10.1, 14.5]`` (mean [min, max]), ``12.3`` for one seed, ``-`` for none."""
        return self._fmt(digits, lambda d: f" [{self.min:.{d}f}, {self.max:.{d}f}]")

    def _fmt(self, digits: int, spread: Callable[[int], str]) -> str:
        """The mean with ``digits`` decimals, followed by ``spread(digits)`` from two seeds on."""
        if self.n == 0:
            return "-"
        mean = f"{self.mean:.{digits}f}"
        return mean if self.n == 1 else mean + spread(digits)

    def to_dict(self) -> dict[str, Any]:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 4)

        return {
            "mean": r(self.mean),
            "std": r(self.std),
            "min": r(self.min),
            "max": r(self.max),
            "n": self.n,
            "values": [r(v) for v in self.values],
            "seeds": list(self.seeds),
        }


def _grid(res: EvalResults) -> tuple[Any, ...]:
    return (
        res.task,
        tuple(res.noises),
        tuple(res.snrs),
        tuple(sorted(res.languages)),
        res.seed,
    )


@dataclass(kw_only=True)
class Comparison:
    """Arms -> seed -> evaluation, all on one grid (same noises, SNRs, languages, noise seed)."""

    arms: dict[str, dict[int, EvalResults]]
    metric: str = ""

    def __post_init__(self) -> None:
        runs = [r for by_seed in self.arms.values() for r in by_seed.values()]
        if not runs:
            raise UserError("nothing to compare: no evaluation results")
        first = runs[0]
        for arm, by_seed in self.arms.items():
            for seed, r in by_seed.items():
                if _grid(r) != _grid(first):
                    raise UserError(
                        f"{arm} (seed {seed}): evaluated on another grid than {first.model} "
                        "(noise types, SNRs, languages and noise seed must match)"
                    )
        self.metric = self.metric or first.metric
        self.reference = first

    @classmethod
    def load(cls, paths: Mapping[str, Mapping[int, str | Path]], metric: str = "") -> Comparison:
        """``{arm: {seed: path/to/results.json}}`` -> :class:`Comparison`."""
        arms = {
            arm: {int(s): EvalResults.load(p) for s, p in sorted(by_seed.items())}
            for arm, by_seed in paths.items()
        }
        return cls(arms=arms, metric=metric)

    @property
    def noises(self) -> list[str]:
        return list(self.reference.noises)

    @property
    def noisy_snrs(self) -> list[float]:
        return [s for s in self.reference.snrs if s is not None]

    @property
    def has_clean(self) -> bool:
        return any(s is None for s in self.reference.snrs)

    @property
    def languages(self) -> list[str]:
        return [x for x in self.reference.languages if x != ALL]

    def modalities(self, arm: str) -> list[str]:
        """Modalities present in every seed of ``arm``."""
        runs = list(self.arms[arm].values())
        return [m for m in runs[0].modalities if all(m in r.modalities for r in runs)]

    def seeds(self, arm: str) -> list[int]:
        return sorted(self.arms[arm])

    def rows(self) -> list[tuple[str, str]]:
        """(arm, modality) in arm order, then modality order."""
        return [(arm, mod) for arm in self.arms for mod in self.modalities(arm)]

    def noisy_cells(self, noises: Sequence[str] | None = None) -> list[tuple[str, float]]:
        return [(n, s) for n in (noises or self.noises) for s in self.noisy_snrs]

    def per_seed(self, arm: str, fn) -> Stat:  # noqa: ANN001 (EvalResults -> float)
        seeds = self.seeds(arm)
        return Stat(values=[fn(self.arms[arm][s]) for s in seeds], seeds=seeds)

    def stat(self, arm: str, noise: str, snr: float | None, modality: str, lang: str = ALL) -> Stat:
        """One cell over the seeds of ``arm``."""
        return self.per_seed(arm, lambda r: _value(r, noise, snr, modality, lang, self.metric))

    def noisy_mean(
        self,
        arm: str,
        modality: str,
        lang: str = ALL,
        noises: Sequence[str] | None = None,
        snrs: Sequence[float] | None = None,
    ) -> Stat:
        """Per seed, the mean over the noisy cells (``noises`` x ``snrs``); spread over seeds."""
        cells = [(n, s) for n in (noises or self.noises) for s in (snrs or self.noisy_snrs)]

        def f(r: EvalResults) -> float:
            vals = [_value(r, n, s, modality, lang, self.metric) for n, s in cells]
            vals = [v for v in vals if not math.isnan(v)]
            return statistics.fmean(vals) if vals else math.nan

        return self.per_seed(arm, f)

    def paired_difference(
        self,
        a: tuple[str, str],
        b: tuple[str, str],
        lang: str = ALL,
        noises: Sequence[str] | None = None,
        snrs: Sequence[float] | None = None,
    ) -> Stat:
        """Per seed (seeds both arms have), noisy mean of ``a`` minus that of ``b``;
        ``a`` and ``b`` are (arm, modality)."""
        seeds = [s for s in self.seeds(a[0]) if s in self.arms[b[0]]]
        sa = self.noisy_mean(a[0], a[1], lang, noises, snrs)
        sb = self.noisy_mean(b[0], b[1], lang, noises, snrs)
        va = dict(zip(sa.seeds, sa.values))
        vb = dict(zip(sb.seeds, sb.values))
        return Stat(values=[va[s] - vb[s] for s in seeds], seeds=seeds)

    def clean_difference(self, a: tuple[str, str], b: tuple[str, str], lang: str = ALL) -> Stat:
        seeds = [s for s in self.seeds(a[0]) if s in self.arms[b[0]]]
        return Stat(
            values=[
                _value(self.arms[a[0]][s], CLEAN, None, a[1], lang, self.metric)
                - _value(self.arms[b[0]][s], CLEAN, None, b[1], lang, self.metric)
                for s in seeds
            ],
            seeds=seeds,
        )


def _value(r: EvalResults, noise: str, snr: float | None, mod: str, lang: str, metric: str) -> float:
    try:
        return r.value(noise, snr, mod, lang, metric)
    except KeyError:
        return math.nan


def _row_name(arm: str, mod: str) -> str:
    return f"{arm} | {mod.upper()}"


def condition_tables(comp: Comparison, lang: str = ALL) -> str:
    """One Markdown table per noise type: rows arm x modality, columns clean and each SNR,
    cells ``mean ± std`` over seeds."""
    name = METRIC_NAMES.get(comp.metric, comp.metric)
    snrs = comp.noisy_snrs
    lines: list[str] = []
    noises = comp.noises if snrs else [CLEAN]
    for noise in noises:
        cols = ([CLEAN] if comp.has_clean else []) + ([f"{s:g} dB" for s in snrs] if noise != CLEAN else [])
        lines += [f"### {name}, {noise} ({'all languages' if lang == ALL else lang})", ""]
        lines.append("| system | input | seeds | " + " | ".join(cols) + " |")
        lines.append("|---|---|---|" + "---:|" * len(cols))
        for arm, mod in comp.rows():
            vals = [comp.stat(arm, CLEAN, None, mod, lang)] if comp.has_clean else []
            if noise != CLEAN:
                vals += [comp.stat(arm, noise, s, mod, lang) for s in snrs]
            seeds = ",".join(str(s) for s in comp.seeds(arm))
            lines.append(f"| {arm} | {mod.upper()} | {seeds} | " + " | ".join(v.fmt() for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def noisy_table(comp: Comparison, lang: str = ALL) -> str:
    """Markdown: per arm x modality, clean and the noisy mean (every noise type x SNR) and
    the mean per noise type, as ``mean ± std`` and ``[min, max]`` over seeds."""
    per_noise = len(comp.noises) > 1
    cols = (["clean"] if comp.has_clean else []) + ["under noise (mean of all noisy cells)"]
    if per_noise:
        cols += [f"{n} (mean over SNRs)" for n in comp.noises]
    lines = ["| system | input | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for arm, mod in comp.rows():
        vals = [comp.stat(arm, CLEAN, None, mod, lang).fmt_range()] if comp.has_clean else []
        vals.append(comp.noisy_mean(arm, mod, lang).fmt_range() if comp.noisy_snrs else "-")
        if per_noise:
            vals += [comp.noisy_mean(arm, mod, lang, noises=[n]).fmt() for n in comp.noises]
        lines.append(f"| {arm} | {mod.upper()} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def language_table(comp: Comparison) -> str:
    """Markdown: one row per language x arm x modality; clean, the noisy mean, and the
    mean per noise type (over SNRs), ``mean ± std`` over seeds."""
    cols = (["clean"] if comp.has_clean else []) + (["noisy mean"] if comp.noisy_snrs else [])
    if comp.noisy_snrs and len(comp.noises) > 1:
        cols += list(comp.noises)
    lines = ["| lang | system | input | " + " | ".join(cols) + " |", "|---|---|---|" + "---:|" * len(cols)]
    for lang in [*comp.languages, ALL]:
        for arm, mod in comp.rows():
            vals = [comp.stat(arm, CLEAN, None, mod, lang).fmt()] if comp.has_clean else []
            if comp.noisy_snrs:
                vals.append(comp.noisy_mean(arm, mod, lang).fmt())
                if len(comp.noises) > 1:
                    vals += [comp.noisy_mean(arm, mod, lang, noises=[n]).fmt() for n in comp.noises]
            lines.append(f"| {lang} | {arm} | {mod.upper()} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def comparison_json(comp: Comparison, sources: Mapping[str, Mapping[int, str]] | None = None) -> dict[str, Any]:
    """The aggregate as JSON: grid, per arm the seeds and source files, then one entry per
    cell (arm, modality, noise, snr, lang) with its :class:`Stat`, and the noisy means."""
    cells: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    conds: list[tuple[str, float | None]] = ([(CLEAN, None)] if comp.has_clean else []) + comp.noisy_cells()
    for arm, mod in comp.rows():
        for lang in [ALL, *comp.languages]:
            for noise, snr in conds:
                cells.append(
                    {"arm": arm, "modality": mod, "noise": noise, "snr": snr, "lang": lang}
                    | comp.stat(arm, noise, snr, mod, lang).to_dict()
                )
            if comp.noisy_snrs:
                summary.append(
                    {"arm": arm, "modality": mod, "lang": lang, "noise": "all", "snr": "noisy mean"}
                    | comp.noisy_mean(arm, mod, lang).to_dict()
                )
                for n in comp.noises:
                    summary.append(
                        {"arm": arm, "modality": mod, "lang": lang, "noise": n, "snr": "mean"}
                        | comp.noisy_mean(arm, mod, lang, noises=[n]).to_dict()
                    )
    ref = comp.reference
    return {
        "format": FORMAT,
        "version": VERSION,
        "metric": comp.metric,
        "grid": {
            "noise": comp.noises,
            "snr": list(ref.snrs),
            "languages": comp.languages,
            "noise_seed": ref.seed,
        },
        "arms": {
            arm: {
                "seeds": comp.seeds(arm),
                "modalities": comp.modalities(arm),
                "results": {str(s): str(p) for s, p in (sources or {}).get(arm, {}).items()},
                "models": {str(s): r.model for s, r in comp.arms[arm].items()},
            }
            for arm in comp.arms
        },
        "cells": cells,
        "noisy_means": summary,
    }


def plot_comparison(comp: Comparison, *, lang: str = ALL, noises: Sequence[str] | None = None) -> Figure:
    """One panel per noise type; per arm x modality the mean over seeds against SNR (clean
    at the right end), with a shaded min-max band over seeds. Colour = arm, line = input."""
    from matplotlib.figure import Figure

    noises = list(noises or comp.noises or [CLEAN])
    snrs = sorted(comp.noisy_snrs)
    step = (snrs[-1] - snrs[0]) / max(len(snrs) - 1, 1) if len(snrs) > 1 else 5.0
    x_clean = (snrs[-1] + step) if snrs else 0.0
    fig = Figure(figsize=(max(5.5, 3.4 * len(noises) + 1.0), 3.9), layout="constrained")
    axes = fig.subplots(1, len(noises), sharey=True, squeeze=False)[0]
    for ax, noise in zip(axes, noises):
        for i, arm in enumerate(comp.arms):
            color = ARM_COLORS[i % len(ARM_COLORS)]
            for mod in comp.modalities(arm):
                pts: list[tuple[float, Stat]] = []
                if noise != CLEAN:
                    pts += [(s, comp.stat(arm, noise, s, mod, lang)) for s in snrs]
                if comp.has_clean:
                    pts.append((x_clean, comp.stat(arm, CLEAN, None, mod, lang)))
                xs = [x for x, _ in pts]
                label = f"{arm}, {MODALITY_NAMES.get(mod, mod)}"
                ax.plot(xs, [st.mean for _, st in pts], MODALITY_LINES.get(mod, "-"), marker="o",
                        markersize=3, color=color, label=label)
                if any(st.n > 1 for _, st in pts):
                    ax.fill_between(xs, [st.min for _, st in pts], [st.max for _, st in pts],
                                    color=color, alpha=0.12, linewidth=0)
        ticks = list(snrs) + ([x_clean] if comp.has_clean else [])
        ax.set_xticks(ticks, [snr_label(s) for s in snrs] + ([CLEAN] if comp.has_clean else []))
        ax.set_title(noise)
        ax.set_xlabel("SNR (dB)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(METRIC_NAMES.get(comp.metric, comp.metric))
    axes[-1].legend(fontsize="x-small")
    n_seeds = sorted({len(b) for b in comp.arms.values()})
    who = "all languages" if lang == ALL else lang
    fig.suptitle(
        f"{METRIC_NAMES.get(comp.metric, comp.metric)} vs SNR ({who})\nmean over "
        f"{'/'.join(map(str, n_seeds))} seed(s), band = min-max over seeds",
        fontsize="medium",
    )
    return fig


def write_comparison_plots(comp: Comparison, out_dir: str | Path, *, per_language: bool = True) -> list[Path]:
    """``{metric}_vs_snr.png`` (all languages) and ``{metric}_vs_snr_{lang}.png`` per language."""
    out_dir = Path(out_dir)
    paths = [save_figure(plot_comparison(comp), out_dir / f"{comp.metric}_vs_snr.png")]
    if per_language and len(comp.languages) > 1:
        for lang in comp.languages:
            paths.append(
                save_figure(plot_comparison(comp, lang=lang), out_dir / f"{comp.metric}_vs_snr_{lang}.png")
            )
    return paths
