"""PNG plots of an evaluation: metric against SNR, one panel per noise type,
one line per input modality (matplotlib, Agg backend: no display needed).

The clean condition is drawn at the right end of the x axis, on a tick named
``clean``; video-only lines are flat because the video does not hear the noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from avsr.evaluation.results import CLEAN, EvalResults
from avsr.io import atomic_path
from avsr.metrics import ALL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODALITY_NAMES = {"a": "audio (A)", "v": "video (V)", "av": "audio-visual (AV)"}
MODALITY_STYLE = {"a": ("tab:blue", "o"), "v": ("tab:green", "s"), "av": ("tab:red", "^")}
METRIC_NAMES = {"wer": "WER (%)", "cer": "CER (%)", "bleu": "BLEU"}


def plot_metric_vs_snr(
    results: EvalResults, *, metric: str | None = None, lang: str = ALL
) -> Figure:
    """Figure with one panel (Axes) per noise type, titled by the type; one line per modality.

    Returns the figure (not shown, not saved): see :func:`save_figure`.
    """
    from matplotlib.figure import Figure

    metric = metric or results.metric
    noisy = sorted(s for s in results.snrs if s is not None)
    has_clean = any(s is None for s in results.snrs)
    noises = results.noises or [CLEAN]
    step = (noisy[-1] - noisy[0]) / max(len(noisy) - 1, 1) if len(noisy) > 1 else 5.0
    x_clean = (noisy[-1] + step) if noisy else 0.0
    fig = Figure(figsize=(3.2 * len(noises) + 0.8, 3.4), layout="constrained")
    axes = fig.subplots(1, len(noises), sharey=True, squeeze=False)[0]
    for ax, noise in zip(axes, noises):
        for mod in results.modalities:
            xs: list[float] = []
            ys: list[float] = []
            if noise != CLEAN:
                for s in noisy:
                    xs.append(s)
                    ys.append(results.value(noise, s, mod, lang, metric))
            if has_clean:
                xs.append(x_clean)
                ys.append(results.value(CLEAN, None, mod, lang, metric))
            color, marker = MODALITY_STYLE.get(mod, (None, "o"))
            style = "--" if mod == "v" else "-"  # video does not hear the noise: flat
            ax.plot(xs, ys, style, marker=marker, color=color, label=MODALITY_NAMES.get(mod, mod))
        ticks = list(noisy) + ([x_clean] if has_clean else [])
        ax.set_xticks(ticks, [f"{s:g}" for s in noisy] + ([CLEAN] if has_clean else []))
        ax.set_title(noise)
        ax.set_xlabel("SNR (dB)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(METRIC_NAMES.get(metric, metric))
    axes[0].legend(fontsize="small")
    who = "all languages" if lang == ALL else lang
    fig.suptitle(f"{METRIC_NAMES.get(metric, metric)} vs SNR ({who})")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write the figure as PNG (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    return path


def write_plots(results: EvalResults, out_dir: str | Path) -> list[Path]:
    """``{metric}_vs_snr.png`` over all languages, plus one per language when several.

    Recognition plots WER; translation plots BLEU.
    """
    out_dir = Path(out_dir)
    metric = results.metric
    paths = [
        save_figure(plot_metric_vs_snr(results, metric=metric), out_dir / f"{metric}_vs_snr.png")
    ]
    langs = [x for x in results.languages if x != ALL]
    if len(langs) > 1:
        for lang in langs:
            fig = plot_metric_vs_snr(results, metric=metric, lang=lang)
            paths.append(save_figure(fig, out_dir / f"{metric}_vs_snr_{lang}.png"))
    return paths
