"""The effects ``avsr demo`` exists to show, as data: one :class:`Check` per measured cell.

Every number is read from a finished demo folder: ``eval/finetune_a/results.json`` (the
audio-only CTC model, A and AV input), ``eval/finetune_av/results.json`` (the audio-visual
CTC model), ``eval/finetune_avst_<src>/results.json`` (the X->En translation model) and
``timings.json`` (wall time). WER and BLEU are over all test clips (language ``all``).

The goals (:class:`DemoGoals`), numbered as in ``checks.json``:

1. the audio-only model on clean audio: WER at most 20;
2. zero-shot: the audio-only model given the video too lowers its babble WER by at least
   10 points at 0 dB and at -5 dB, and costs at most 3 points on clean audio;
3. the AV model with audio + video: on clean audio no worse than the audio-only model; at
   babble 0 dB at most half the audio-only model's WER there; at babble -5 dB at least
   30 points below it;
4. the AV model on clean audio alone: at most 1.25x the audio-only model's clean WER;
5. translation with audio + video on clean audio: BLEU at least 20;
6. the whole demo in at most 20 minutes of wall time.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from avsr.errors import UserError
from avsr.evaluation.results import EvalResults

BABBLE = "babble"
Condition = tuple[str, float | None]
"""(noise, SNR dB); ``SNR None``: clean audio."""
CLEAN: Condition = ("clean", None)


@dataclass(frozen=True, kw_only=True)
class DemoGoals:
    """Thresholds of the demo's effect checks."""

    a_clean_wer: float = 20.0
    """Goal 1: highest clean WER (%) of the audio-only model on audio."""
    zeroshot_gain: float = 10.0
    """Goal 2: fewest WER points that adding video to the audio-only model saves under babble
    at 0 and -5 dB."""
    zeroshot_clean_cost: float = 3.0
    """Goal 2: most WER points that adding video to the audio-only model may cost on clean audio."""
    av_clean_excess: float = 0.0
    """Goal 3: most WER points that the AV model (audio + video) may lie above the audio-only
    model (audio) on clean audio."""
    av_babble0_ratio: float = 0.5
    """Goal 3: highest ratio of the AV model's babble 0 dB WER (audio + video) to the
    audio-only model's (audio)."""
    av_babble_m5_gain: float = 30.0
    """Goal 3: fewest WER points that the AV model (audio + video) lies below the audio-only
    model (audio) at babble -5 dB."""
    av_audio_ratio: float = 1.25
    """Goal 4: highest ratio of the AV model's clean WER on audio alone to the audio-only
    model's."""
    avst_bleu: float = 20.0
    """Goal 5: lowest BLEU of the translation model on clean audio + video."""
    wall_seconds: float = 1200.0
    """Goal 6: most wall-clock seconds of the whole demo (``timings.json`` ``total_wall``)."""


GOALS = DemoGoals()
"""The goals the full demo is held to."""


@dataclass(kw_only=True)
class Check:
    """One cell of one goal: the numbers read, the quantity compared, and the verdict."""

    goal: int
    """Number of the goal (1-6, see the module docstring)."""
    name: str
    """Short name of the cell, e.g. ``zero-shot AV, babble 0 dB``."""
    measured: dict[str, float]
    """The numbers read from the results, by what they are (e.g. ``A-only model, A``)."""
    value: float
    """The quantity compared with the threshold (a WER, a gain in points, a ratio, BLEU, s)."""
    unit: str
    """Unit of ``value`` and ``threshold``: ``WER``, ``points``, ``x``, ``BLEU`` or ``s``."""
    comparison: Literal["<=", ">="]
    """How ``value`` must compare with ``threshold`` to pass."""
    threshold: float
    """The goal's bound."""
    sentence: str
    """The check in plain words, with the margin and the goal."""
    passed: bool = field(init=False)
    """Whether ``value`` meets the threshold (NaN never does)."""

    def __post_init__(self) -> None:
        ok = self.value <= self.threshold if self.comparison == "<=" else self.value >= self.threshold
        self.passed = bool(ok) and not math.isnan(self.value)

    def to_dict(self) -> dict[str, object]:
        """The JSON form written to ``checks.json``."""
        return asdict(self)


@dataclass(kw_only=True)
class DemoResults:
    """The three evaluations and the wall time of a finished demo."""

    a: EvalResults
    """The audio-only CTC model (modalities ``a`` and ``av``)."""
    av: EvalResults
    """The audio-visual CTC model (modalities ``a``, ``v``, ``av``)."""
    avst: EvalResults
    """The translation model (BLEU, clean and babble 0 dB, ``a`` and ``av``)."""
    avst_name: str
    """Folder name of the translation evaluation, e.g. ``finetune_avst_es``."""
    wall_seconds: float
    """``total_wall`` of ``timings.json``: the demo's wall-clock seconds."""
    cpus: int | None
    """CPUs the stages ran on (``timings.json`` ``cpus``; None in folders written before it)."""


def load_demo_results(out: Path) -> DemoResults:
    """Read a finished demo folder ``out``; UserError naming the missing file otherwise."""
    ev = out / "eval"
    avst_dirs = sorted(p for p in ev.glob("finetune_avst_*") if (p / "results.json").is_file())
    if not avst_dirs:
        raise UserError(f"{ev}: no finetune_avst_*/results.json (has the demo's evaluate stage finished?)")
    for name in ("finetune_a", "finetune_av"):
        if not (ev / name / "results.json").is_file():
            raise UserError(f"{ev / name / 'results.json'}: missing (has the demo's evaluate stage finished?)")
    timings_path = out / "timings.json"
    try:
        timings = json.loads(timings_path.read_text(encoding="utf-8"))
        wall = float(timings["total_wall"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{timings_path}: cannot read total_wall: {exc}") from exc
    cpus = timings.get("cpus")
    return DemoResults(
        a=EvalResults.load(ev / "finetune_a" / "results.json"),
        av=EvalResults.load(ev / "finetune_av" / "results.json"),
        avst=EvalResults.load(avst_dirs[0] / "results.json"),
        avst_name=avst_dirs[0].name, wall_seconds=wall, cpus=None if cpus is None else int(cpus),
    )


def cell_value(res: EvalResults, cond: Condition, modality: str) -> float:
    """The headline metric (WER or BLEU, all languages) of one cell; UserError naming the
    model and the cell when the evaluation grid lacks it."""
    try:
        return res.value(cond[0], cond[1], modality)
    except KeyError as exc:
        raise UserError(f"evaluation of {res.model} has no cell {cond_label(cond)} / {modality} "
                        f"(grid: noises {res.noises}, SNRs {res.snrs}, modalities {res.modalities})") from exc


def cond_label(cond: Condition) -> str:
    """``clean`` or ``babble 0 dB``."""
    return "clean" if cond[1] is None else f"{cond[0]} {cond[1]:g} dB"


def ratio(num: float, den: float) -> float:
    """``num / den`` with 0/0 = 1 and x/0 = inf (a WER of 0 as the reference)."""
    if den == 0:
        return 1.0 if num == 0 else math.inf
    return num / den


def _goal(comparison: str, threshold: float, unit: str) -> str:
    """``goal <= 20`` / ``goal <= 0.5x``."""
    return f"goal {comparison} {threshold:g}{'x' if unit == 'x' else ''}"


def _change(delta: float, what: str) -> str:
    """``lowers WHAT by 3.0 points`` / ``raises WHAT by 3.0 points`` (delta: the decrease)."""
    return f"{'lowers' if delta >= 0 else 'raises'} {what} by {abs(delta):.1f} points"


def accuracy_checks(d: DemoResults, g: DemoGoals = GOALS) -> list[Check]:
    """Goals 1 and 2: the audio-only model on clean audio, and with video added (zero-shot)."""
    a_clean = cell_value(d.a, CLEAN, "a")
    checks = [Check(goal=1, name="A-only model, clean", measured={"A-only model, A, clean": a_clean}, value=a_clean,
                    unit="WER", comparison="<=", threshold=g.a_clean_wer,
                    sentence=f"A-only model on clean audio: WER {a_clean:.1f} ({_goal('<=', g.a_clean_wer, 'WER')})")]
    for snr in (0.0, -5.0):
        cond = (BABBLE, snr)
        wa, wav = cell_value(d.a, cond, "a"), cell_value(d.a, cond, "av")
        gain = wa - wav
        checks.append(Check(
            goal=2, name=f"zero-shot AV, {cond_label(cond)}",
            measured={f"A-only model, A, {cond_label(cond)}": wa, f"A-only model, AV, {cond_label(cond)}": wav},
            value=gain, unit="points", comparison=">=", threshold=g.zeroshot_gain,
            sentence=(f"Zero-shot AV: adding video to the audio-only model {_change(gain, f'{cond_label(cond)} WER')} "
                      f"({wa:.1f} -> {wav:.1f}; goal: lowers it by >= {g.zeroshot_gain:g})")))
    av_clean = cell_value(d.a, CLEAN, "av")
    cost = av_clean - a_clean
    checks.append(Check(
        goal=2, name="zero-shot AV, clean", measured={"A-only model, A, clean": a_clean, "A-only model, AV, clean": av_clean},
        value=cost, unit="points", comparison="<=", threshold=g.zeroshot_clean_cost,
        sentence=(f"Zero-shot AV: adding video to the audio-only model {_change(-cost, 'clean WER')} "
                  f"({a_clean:.1f} -> {av_clean:.1f}; goal: at most {g.zeroshot_clean_cost:g} points higher)")))
    return checks


def av_model_checks(d: DemoResults, g: DemoGoals = GOALS) -> list[Check]:
    """Goals 3 and 4: the AV model against the audio-only model's audio WER."""
    a_ref = {cond: cell_value(d.a, cond, "a") for cond in (CLEAN, (BABBLE, 0.0), (BABBLE, -5.0))}
    av = {cond: cell_value(d.av, cond, "av") for cond in a_ref}
    ref_key = {cond: f"A-only model, A, {cond_label(cond)}" for cond in a_ref}
    av_key = {cond: f"AV model, AV, {cond_label(cond)}" for cond in a_ref}

    def measured(cond: Condition) -> dict[str, float]:
        return {ref_key[cond]: a_ref[cond], av_key[cond]: av[cond]}

    excess = av[CLEAN] - a_ref[CLEAN]
    r0 = ratio(av[(BABBLE, 0.0)], a_ref[(BABBLE, 0.0)])
    gain5 = a_ref[(BABBLE, -5.0)] - av[(BABBLE, -5.0)]
    a_only = cell_value(d.av, CLEAN, "a")
    r_audio = ratio(a_only, a_ref[CLEAN])
    return [
        Check(goal=3, name="AV model, clean", measured=measured(CLEAN), value=excess, unit="points", comparison="<=",
              threshold=g.av_clean_excess,
              sentence=(f"AV model with audio + video on clean audio: WER {av[CLEAN]:.1f}, {abs(excess):.1f} points "
                        f"{'above' if excess > 0 else 'below'} the A-only model's {a_ref[CLEAN]:.1f} "
                        f"(goal: {'no higher' if g.av_clean_excess == 0 else f'at most {g.av_clean_excess:g} points above'})")),
        Check(goal=3, name="AV model, babble 0 dB", measured=measured((BABBLE, 0.0)), value=r0, unit="x", comparison="<=",
              threshold=g.av_babble0_ratio,
              sentence=(f"AV model with audio + video at babble 0 dB: WER {av[(BABBLE, 0.0)]:.1f}, {r0:.2f}x the A-only "
                        f"model's {a_ref[(BABBLE, 0.0)]:.1f} ({_goal('<=', g.av_babble0_ratio, 'x')})")),
        Check(goal=3, name="AV model, babble -5 dB", measured=measured((BABBLE, -5.0)), value=gain5, unit="points",
              comparison=">=", threshold=g.av_babble_m5_gain,
              sentence=(f"AV model with audio + video at babble -5 dB: WER {av[(BABBLE, -5.0)]:.1f}, {abs(gain5):.1f} points "
                        f"{'below' if gain5 >= 0 else 'above'} the A-only model's {a_ref[(BABBLE, -5.0)]:.1f} "
                        f"(goal: at least {g.av_babble_m5_gain:g} points below)")),
        Check(goal=4, name="AV model, audio alone, clean", measured={ref_key[CLEAN]: a_ref[CLEAN], "AV model, A, clean": a_only},
              value=r_audio, unit="x", comparison="<=", threshold=g.av_audio_ratio,
              sentence=(f"AV model on clean audio alone: WER {a_only:.1f}, {r_audio:.2f}x the A-only model's "
                        f"{a_ref[CLEAN]:.1f} ({_goal('<=', g.av_audio_ratio, 'x')})")),
    ]


def avst_pair(d: DemoResults) -> str:
    """``es->en`` from the translation evaluation's folder name (``finetune_avst_es``)."""
    return d.avst_name.removeprefix("finetune_avst_") + "->en"


def avst_bleu_table(d: DemoResults) -> dict[str, dict[str, float]]:
    """BLEU of the translation model by input (``A``, ``AV``) and condition (``clean``,
    ``babble 0 dB``)."""
    conds = (CLEAN, (BABBLE, 0.0))
    return {mod.upper(): {cond_label(c): cell_value(d.avst, c, mod) for c in conds} for mod in ("a", "av")}


def other_checks(d: DemoResults, g: DemoGoals = GOALS) -> list[Check]:
    """Goals 5 and 6: translation BLEU and the demo's wall time."""
    bleu = cell_value(d.avst, CLEAN, "av")
    wall = d.wall_seconds
    cpus = f" on {d.cpus} CPU(s)" if d.cpus else ""
    return [
        Check(goal=5, name=f"AVST {avst_pair(d)}, AV, clean", measured={f"AVST {avst_pair(d)}, AV, clean": bleu}, value=bleu,
              unit="BLEU", comparison=">=", threshold=g.avst_bleu,
              sentence=f"Translation {avst_pair(d)} with audio + video on clean audio: BLEU {bleu:.1f} ({_goal('>=', g.avst_bleu, 'BLEU')})"),
        Check(goal=6, name="wall time", measured={"demo wall time (s)": wall}, value=wall, unit="s", comparison="<=",
              threshold=g.wall_seconds,
              sentence=f"The whole demo took {minutes(wall)} of wall time{cpus} (goal <= {minutes(g.wall_seconds)})"),
    ]


def minutes(seconds: float) -> str:
    """``1795`` -> ``29m55s``."""
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s"


def demo_checks(d: DemoResults, goals: DemoGoals = GOALS) -> list[Check]:
    """Every check of a demo's results, in goal order."""
    return accuracy_checks(d, goals) + av_model_checks(d, goals) + other_checks(d, goals)


def effect_checks(out: Path, goals: DemoGoals = GOALS) -> list[Check]:
    """Every check of a finished demo folder ``out``, in goal order."""
    return demo_checks(load_demo_results(out), goals)


def checks_markdown(checks: list[Check], bleu: dict[str, dict[str, float]], pair: str) -> str:
    """The "Effect checks" section body: one PASS/FAIL line per cell in plain words, then
    the translation BLEU table (rows A and AV input, columns clean and babble 0 dB)."""
    lines = [f"- {'PASS' if c.passed else 'FAIL'} ({c.goal}) {c.sentence}" for c in checks]
    n_ok = sum(c.passed for c in checks)
    lines += ["", f"{n_ok} of {len(checks)} checks pass.", "", f"Translation {pair} (BLEU):", ""]
    cols = list(next(iter(bleu.values())))
    lines.append("| input | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for mod, row in bleu.items():
        lines.append(f"| {mod} | " + " | ".join(f"{row[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)
