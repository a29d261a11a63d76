"""The report of ``avsr experiments``: aggregated results.json, report.md, plots, commands, configs.

Every statement in the report is computed from the measured numbers: a
difference is called consistent only when it has the same sign in every seed.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

from avsr.evaluation.compare import (
    Comparison,
    Stat,
    comparison_json,
    condition_tables,
    language_table,
    noisy_table,
    write_comparison_plots,
)
from avsr.evaluation.results import CLEAN
from avsr.io import atomic_write_json, atomic_write_text
from avsr.metrics import ALL
from tasks.experiments_plan import Plan

TITLES = {
    "frontend": "Learnable CNN vs filterbank audio front end",
    "zeroshot": "Zero-shot audio-visual recognition after audio-only fine-tuning",
    "noise-types": "Noise robustness over noise types",
}
QUESTIONS = {
    "frontend": (
        "Does the learnable XLS-R CNN on the raw waveform beat AV-HuBERT's fixed log-mel "
        "filterbank (26 x 4 stacked, 25 Hz) as the audio front end of the AV encoder? Both arms "
        "use the same data, the same stage-0 transformer initialisation, units, pretraining and "
        "fine-tuning budget; only `model.audio_frontend` differs."
    ),
    "zeroshot": (
        "Does an AV-pretrained encoder fine-tuned on audio only (video zeroed) use the video "
        "when it is given at test time (zero-shot AV), and how close does it come to AV "
        "fine-tuning?"
    ),
    "noise-types": (
        "Does the audio-visual gain hold for music, noise and speech, not only babble?"
    ),
}


def _pretty(cmd: list[str]) -> str:
    """``python -m avsr.cli X`` -> ``avsr X`` (the same command through the entry point)."""
    if len(cmd) > 2 and cmd[1:3] == ["-m", "avsr.cli"]:
        cmd = ["avsr", *cmd[3:]]
    return shlex.join(cmd)


def _stage_commands(plan: Plan) -> list[tuple[str, list[str]]]:
    out = []
    for stages, folder in ((plan.work_stages, plan.work), (plan.eval_stages, plan.report)):
        for st in stages:
            marker = folder / ".stages" / f"{st.name}.json"
            if marker.is_file():
                cmds = [_pretty(shlex.split(c)) for c in json.loads(marker.read_text())["commands"]]
            else:
                cmds = [_pretty([str(a) for a in c]) for c in st.commands()]
            out.append((st.name, cmds))
    return out


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
    return ", ".join(f"{s:g}" for s in comp.noisy_snrs) + " dB"


def frontend_verdict(comp: Comparison) -> tuple[list[str], dict[str, Any]]:
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


def _copy_configs(plan: Plan) -> list[str]:
    dest = plan.report / "configs"
    dest.mkdir(parents=True, exist_ok=True)
    names = ["configs/experiments.yaml"]
    for key, src in plan.config_files.items():
        shutil.copyfile(src, dest / f"{key}.yaml")
        names.append(f"configs/{key}.yaml")
    for st in plan.work_stages:  # resolved configs of the training runs
        cfg = plan.work / "runs" / st.name / "config.yaml"
        if cfg.is_file():
            (dest / "runs").mkdir(exist_ok=True)
            shutil.copyfile(cfg, dest / "runs" / f"{st.name}.yaml")
            names.append(f"configs/runs/{st.name}.yaml")
    return names


def write_report(
    experiment: str, plan: Plan, *, command: str, timings: dict[str, float]
) -> Path:
    report = plan.report
    sources = {arm: {s: str(p / "results.json") for s, p in a.evals.items()} for arm, a in plan.arms.items()}
    comp = Comparison.load(sources)
    verdict_lines, verdict = VERDICTS[experiment](comp)
    plots = write_comparison_plots(comp, report)
    config_names = _copy_configs(plan)
    stage_cmds = _stage_commands(plan)
    commands = [
        "# " + TITLES[experiment],
        "# the command that made this report:",
        command,
        "# every stage it ran, in order ('avsr' = python -m avsr.cli):",
    ]
    for name, cmds in stage_cmds:
        commands.append(f"# stage {name}")
        commands += cmds
    atomic_write_text(report / "commands.txt", "\n".join(commands) + "\n")

    js = comparison_json(comp, sources) | {
        "experiment": experiment,
        "title": TITLES[experiment],
        "seeds": plan.seeds,
        "command": command,
        "verdict": verdict,
        "arms_description": {arm: a.description for arm, a in plan.arms.items()},
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "work": str(plan.work),
    }
    atomic_write_json(report / "results.json", js)

    g = plan.cfg.evaluate
    lines = [
        f"# {TITLES[experiment]}",
        "",
        QUESTIONS[experiment],
        "",
        "## Result (as measured)",
        "",
        *verdict_lines,
        "",
        f"Seeds: {', '.join(map(str, plan.seeds))} (training: `train.seed`, `data.seed`); test-noise "
        f"seed {comp.reference.seed} for every run, so all arms and seeds see the same noisy clips. "
        "Spread: ± sample standard deviation over seeds, [min, max] in the summary.",
        "",
        f"## Summary ({comp.metric.upper()}, all languages)",
        "",
        noisy_table(comp),
    ]
    if experiment == "frontend" and len(comp.arms) == 2:
        lines += ["## Per language: front-end difference", "", frontend_language_table(comp)]
    lines += [
        "## Per language",
        "",
        "Low-resource languages of the corpus can be read apart here (every language of the "
        "test split, then all).",
        "",
        language_table(comp),
        "## Every condition",
        "",
        condition_tables(comp),
        "## Plots",
        "",
    ]
    for p in plots:
        lines.append(f"![{p.stem}]({p.name})" if p == plots[0] else f"- [{p.stem}]({p.name})")
    lines += ["", "## Systems", ""]
    for arm, a in plan.arms.items():
        models = ", ".join(f"seed {s}: `{r.model}`" for s, r in sorted(comp.arms[arm].items()))
        lines.append(f"- **{arm}**: {a.description}. Models: {models}.")
    n_clips = _n_test_clips(comp)
    lines += [
        "",
        "## Setup",
        "",
        f"- Data: `{comp.reference.manifest}` ({n_clips} test clips; split `{g.split}`), "
        f"languages {', '.join(comp.languages)}",
        f"- Grid: noise {', '.join(comp.noises) or 'none'}; SNR {g.snr}; input {g.modality}; "
        f"noise seed {g.seed}" + (f"; first {g.max_clips} clips" if g.max_clips else ""),
        f"- Prerequisites and training runs: `{plan.work}`",
        "- Configs: " + ", ".join(f"[{n}]({n})" for n in config_names),
        "- Every command, in order: [commands.txt](commands.txt); aggregated numbers: "
        "[results.json](results.json); per-seed evaluations: `eval/`",
        "",
        "```",
        command,
        "```",
        "",
        "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
        "",
        "Small CPU runs are noisy: judge a difference by its sign over seeds, not by one number.",
        "",
    ]
    atomic_write_text(report / "report.md", "\n".join(lines))
    return report / "report.md"


def _n_test_clips(comp: Comparison) -> str:
    try:
        return str(comp.reference.cell(CLEAN, None, comp.reference.modalities[0], ALL).score.counts.sentences)
    except (KeyError, IndexError):
        return "?"
