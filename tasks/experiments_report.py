"""The report of ``avsr experiments``: aggregated results.json, report.md, plots, commands, configs.

Every statement in the report is computed from the measured numbers (see
:mod:`tasks.experiments_verdicts`).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from avsr.corpus.encoder import SHIPPED_ENCODER
from avsr.evaluation.compare import (
    Comparison,
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
from tasks.experiments_verdicts import VERDICTS, frontend_language_table

TITLES = {
    "frontend": "Learnable CNN vs filterbank audio front end",
    "zeroshot": "Zero-shot audio-visual recognition after audio-only fine-tuning",
    "noise-types": "Noise robustness over noise types",
}
QUESTIONS = {
    "frontend": (
        "Does the learnable XLS-R CNN on the raw waveform beat AV-HuBERT's fixed log-mel "
        "filterbank (26 x 4 stacked, 25 Hz) as the audio front end of the AV encoder? Both arms "
        "use the same data, the same audio encoder initialisation ({encoder}), units, pretraining "
        "and fine-tuning budget; only `model.audio_frontend` differs."
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
"""The question of each experiment (``{encoder}``: :func:`encoder_origin`)."""


def encoder_origin(plan: Plan) -> str:
    """In words (Markdown), the audio encoder the plan's AV pretraining starts from, or the
    given models when the plan trains no AV pretraining."""
    if plan.inputs.models:
        return "given fine-tuned models, trained outside this experiment"
    if plan.inputs.pretrained is not None:
        return f"given AV-pretrained model `{plan.inputs.pretrained.resolve()}`"
    if plan.inputs.encoder is None:
        return f"stage 0, pretrained here on MFCC units: `{plan.encoder}`"
    if plan.encoder == SHIPPED_ENCODER:
        return f"the stand-in encoder shipped in the package, `{plan.encoder}`"
    return f"`{plan.encoder}`"


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


def _write_commands(experiment: str, plan: Plan, command: str) -> None:
    """``commands.txt``: the command that made the report, then every stage's commands."""
    commands = [
        "# " + TITLES[experiment],
        "# the command that made this report:",
        command,
        "# every stage it ran, in order ('avsr' = python -m avsr.cli):",
    ]
    for name, cmds in _stage_commands(plan):
        commands.append(f"# stage {name}")
        commands += cmds
    atomic_write_text(plan.report / "commands.txt", "\n".join(commands) + "\n")


def _result_lines(experiment: str, plan: Plan, comp: Comparison, verdict_lines: list[str]) -> list[str]:
    """Title, question, verdicts, summary and per-language tables of ``report.md``."""
    lines = [
        f"# {TITLES[experiment]}",
        "",
        QUESTIONS[experiment].format(encoder=encoder_origin(plan)),
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
    ]
    return lines


def _plot_and_system_lines(plan: Plan, comp: Comparison, plots: list[Path]) -> list[str]:
    """The plots (the first one shown) and the compared systems with their models."""
    lines = ["## Plots", ""]
    for p in plots:
        lines.append(f"![{p.stem}]({p.name})" if p == plots[0] else f"- [{p.stem}]({p.name})")
    lines += ["", "## Systems", ""]
    for arm, a in plan.arms.items():
        models = ", ".join(f"seed {s}: `{r.model}`" for s, r in sorted(comp.arms[arm].items()))
        lines.append(f"- **{arm}**: {a.description}. Models: {models}.")
    return lines


def _setup_lines(
    plan: Plan, comp: Comparison, *, command: str, timings: dict[str, float], config_names: list[str]
) -> list[str]:
    """Data, grid, folders, configs, the command and stage times."""
    g = plan.cfg.evaluate
    n_clips = _n_test_clips(comp)
    return [
        "",
        "## Setup",
        "",
        f"- Data: `{comp.reference.manifest}` ({n_clips} test clips; split `{g.split}`), "
        f"languages {', '.join(comp.languages)}",
        f"- Grid: noise {', '.join(comp.noises) or 'none'}; SNR {g.snr}; input {g.modality}; "
        f"noise seed {g.seed}" + (f"; first {g.max_clips} clips" if g.max_clips else ""),
        f"- Audio encoder: {encoder_origin(plan)}",
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


def write_report(
    experiment: str, plan: Plan, *, command: str, timings: dict[str, float]
) -> Path:
    """Aggregate the evaluations of ``plan`` into ``REPORT/``: ``results.json``, ``report.md``,
    plots, ``commands.txt`` and ``configs/``; returns the path of ``report.md``."""
    report = plan.report
    sources = {arm: {s: str(p / "results.json") for s, p in a.evals.items()} for arm, a in plan.arms.items()}
    comp = Comparison.load(sources)
    verdict_lines, verdict = VERDICTS[experiment](comp)
    plots = write_comparison_plots(comp, report)
    config_names = _copy_configs(plan)
    _write_commands(experiment, plan, command)

    js = comparison_json(comp, sources) | {
        "experiment": experiment,
        "title": TITLES[experiment],
        "seeds": plan.seeds,
        "encoder": None if plan.inputs.models or plan.inputs.pretrained else str(plan.encoder),
        "command": command,
        "verdict": verdict,
        "arms_description": {arm: a.description for arm, a in plan.arms.items()},
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "work": str(plan.work),
    }
    atomic_write_json(report / "results.json", js)

    lines = _result_lines(experiment, plan, comp, verdict_lines)
    lines += _plot_and_system_lines(plan, comp, plots)
    lines += _setup_lines(plan, comp, command=command, timings=timings, config_names=config_names)
    atomic_write_text(report / "report.md", "\n".join(lines))
    return report / "report.md"


def _n_test_clips(comp: Comparison) -> str:
    try:
        return str(comp.reference.cell(CLEAN, None, comp.reference.modalities[0], ALL).score.counts.sentences)
    except (KeyError, IndexError):
        return "?"
