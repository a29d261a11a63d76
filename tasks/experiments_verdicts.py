"""What the measured numbers of ``avsr experiments`` say: verdict sentences and JSON.

A difference is called consistent only when it has the same sign in every seed.
"""

from __future__ import annotations

from typing import Any

from avsr.evaluation.compare import Comparison, Stat
from avsr.metrics import ALL


def _better(metric: str) -> int:
    """-1 where lower is better (WER), +1 where higher is (BLEU)."""
    return 1 if metric == "bleu" else -1


def describe_difference(d: Stat, a: str, b: str, metric: str) -> tuple[str, dict[str, Any]]:
    """Sentence and JSON for ``a`` minus ``b`` per seed: who is better, in how many seeds."""
    if d.n == 0:
        return f"{a} vs {b}: no data", {"winner": None}
    sign = _better(metric)
    wins_a = sum(1 for v in d.valid if v * sign > 0)
    wins_b = sum(1 for v in d.valid if v * sign < 0)
    if d.mean * sign > 0:
        winner, k = a, wins_a
    elif d.mean * sign < 0:
        winner, k = b, wins_b
    else:
        winner, k = None, 0
    per_seed = ", ".join(f"{v:+.1f} (seed {s})" for s, v in zip(d.seeds, d.values))
    consistent = winner is not None and k == d.n
    if winner is None:
        verdict = "no difference on average"
    elif consistent and d.n >= 2:
        verdict = f"**{winner}** is better in all {d.n} seeds"
    elif consistent:
        verdict = f"**{winner}** is better (one seed only: no spread to judge by)"
    else:
        verdict = f"**{winner}** is better on average but only in {k} of {d.n} seeds: not consistent, within the spread"
    text = f"{a} minus {b}: {d.fmt()} ({per_seed}); {verdict}"
    return text, {
        "a": a,
        "b": b,
        "difference": d.to_dict(),
        "winner": winner,
        "seeds_won": k,
        "consistent": consistent,
    }


def _snr_text(comp: Comparison) -> str:
    """The noisy SNRs, e.g. ``-5, 0, 5 dB``."""
    return ", ".join(f"{s:g}" for s in comp.noisy_snrs) + " dB"


def frontend_verdict(comp: Comparison) -> tuple[list[str], dict[str, Any]]:
    """Which of the two front ends wins, per input modality, under noise and clean."""
    lines: list[str] = []
    data: dict[str, Any] = {}
    arms = list(comp.arms)
    if len(arms) != 2:
        return [f"(a verdict needs two front ends; got {arms})"], {}
    a, b = arms
    m = comp.metric.upper()
    for mod in [x for x in comp.modalities(a) if x in comp.modalities(b)]:
        entry: dict[str, Any] = {}
        if comp.noisy_snrs:
            d = comp.paired_difference((a, mod), (b, mod))
            sa, sb = comp.noisy_mean(a, mod), comp.noisy_mean(b, mod)
            text, js = describe_difference(d, a, b, comp.metric)
            winner = js["winner"] or "neither"
            lines.append(
                f"- **Under noise, {mod.upper()} input: {winner} wins.** Mean {m} over "
                f"{', '.join(comp.noises)} at {_snr_text(comp)}: {a} {sa.fmt()}, {b} {sb.fmt()} "
                f"(mean ± std over seeds). {text}."
            )
            entry["noisy"] = js | {a: sa.to_dict(), b: sb.to_dict()}
        if comp.has_clean:
            d = comp.clean_difference((a, mod), (b, mod))
            text, js = describe_difference(d, a, b, comp.metric)
            lines.append(f"- Clean, {mod.upper()} input: {text}.")
            entry["clean"] = js
        data[mod] = entry
    return lines, data


def frontend_language_table(comp: Comparison) -> str:
    """Markdown: the first arm minus the second per language and modality, clean and noisy."""
    a, b = list(comp.arms)[:2]
    mods = [x for x in comp.modalities(a) if x in comp.modalities(b)]
    cols = [f"{mod.upper()} clean" for mod in mods] if comp.has_clean else []
    cols += [f"{mod.upper()} noisy" for mod in mods] if comp.noisy_snrs else []
    lines = [
        f"{comp.metric.upper()} of {a} minus {b} per language (mean ± std over seeds; "
        f"{'negative' if _better(comp.metric) < 0 else 'positive'}: {a} better)",
        "",
        "| lang | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for lang in [*comp.languages, ALL]:
        vals = [comp.clean_difference((a, m), (b, m), lang).fmt() for m in mods] if comp.has_clean else []
        if comp.noisy_snrs:
            vals += [comp.paired_difference((a, m), (b, m), lang).fmt() for m in mods]
        lines.append(f"| {lang} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def zeroshot_verdict(comp: Comparison) -> tuple[list[str], dict[str, Any]]:
    """Whether the audio-only fine-tuned model gains from video (AV vs A input), and how
    it compares with AV fine-tuning."""
    lines: list[str] = []
    data: dict[str, Any] = {}
    zs, av = "A-finetuned", "AV-finetuned"
    if zs not in comp.arms or not comp.noisy_snrs:
        return ["(the zero-shot verdict needs the A-finetuned arm and a noisy grid)"], {}
    lowest = min(comp.noisy_snrs)
    d = comp.paired_difference((zs, "av"), (zs, "a"))
    text, js = describe_difference(d, "AV input", "A input", comp.metric)
    lines.append(
        f"- **Zero-shot AV** (audio-only fine-tuned model, all noisy cells): "
        f"A {comp.noisy_mean(zs, 'a').fmt()}, AV {comp.noisy_mean(zs, 'av').fmt()}; {text}."
    )
    data["zero_shot_noisy"] = js
    d = comp.paired_difference((zs, "av"), (zs, "a"), snrs=[lowest])
    text, js = describe_difference(d, "AV input", "A input", comp.metric)
    lines.append(f"- Zero-shot AV at {lowest:g} dB (mean over noise types): {text}.")
    data["zero_shot_lowest_snr"] = js | {"snr": lowest}
    if comp.has_clean:
        d = comp.clean_difference((zs, "av"), (zs, "a"))
        text, js = describe_difference(d, "AV input", "A input", comp.metric)
        lines.append(f"- Zero-shot AV, clean: {text}.")
        data["zero_shot_clean"] = js
    if av in comp.arms:
        d = comp.paired_difference((zs, "av"), (av, "av"))
        text, js = describe_difference(d, "A-finetuned", "AV-finetuned", comp.metric)
        lines.append(f"- AV input under noise, audio-only vs AV fine-tuning: {text}.")
        data["a_vs_av_finetuning_noisy"] = js
    return lines, data


def noise_types_verdict(comp: Comparison) -> tuple[list[str], dict[str, Any]]:
    """Table and verdict of AV minus A input per noise type."""
    arm = next(iter(comp.arms))
    if not comp.noisy_snrs or "a" not in comp.modalities(arm) or "av" not in comp.modalities(arm):
        return ["(the noise-type verdict needs A and AV input and a noisy grid)"], {}
    lowest = min(comp.noisy_snrs)
    m = comp.metric.upper()
    lines = [
        f"{m} of {arm} per noise type, mean over {_snr_text(comp)} (mean ± std over seeds), and AV minus A:",
        "",
        f"| noise | A | AV | AV - A | AV - A at {lowest:g} dB | AV better in |",
        "|---|---:|---:|---:|---:|---|",
    ]
    data: dict[str, Any] = {}
    for n in comp.noises:
        d = comp.paired_difference((arm, "av"), (arm, "a"), noises=[n])
        d_low = comp.paired_difference((arm, "av"), (arm, "a"), noises=[n], snrs=[lowest])
        _, js = describe_difference(d, "AV", "A", comp.metric)
        wins = sum(1 for v in d.valid if v * _better(comp.metric) > 0)
        lines.append(
            f"| {n} | {comp.noisy_mean(arm, 'a', noises=[n]).fmt()} | "
            f"{comp.noisy_mean(arm, 'av', noises=[n]).fmt()} | {d.fmt()} | {d_low.fmt()} | "
            f"{wins} of {d.n} seeds |"
        )
        data[n] = js | {"lowest_snr": d_low.to_dict()}
    helped = [n for n, js in data.items() if js.get("winner") == "AV" and js.get("consistent")]
    lines += [
        "",
        f"- AV input is better than A in every seed (mean over SNRs) for: "
        f"{', '.join(helped) if helped else 'none of the noise types'}.",
    ]
    return lines, data


VERDICTS = {"frontend": frontend_verdict, "zeroshot": zeroshot_verdict, "noise-types": noise_types_verdict}
