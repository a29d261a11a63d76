"""The demo's effect checks over several seeds: each goal's numbers per seed and their spread.

Runs the full demo (``avsr demo``, ``configs/demo.yaml`` unless ``--config``) once per seed,
seed 0 into ``--out-prefix`` (default ``demo_out``) and seed N into ``<prefix>_seedN``, one
after the other; a demo rerun skips its finished stages, so running this again resumes.
Then it reads every finished folder (:mod:`tasks.demo_checks`) and prints, for every check
of every goal, the compared value and pass/fail per seed, and across seeds the mean ± sample
standard deviation (min..max) and how many seeds pass; then the same for every number the
checks read (WERs, BLEUs, wall time). ``--md`` and ``--json`` write the tables and the data.

Run: ``.venv/bin/python benchmarks/demo_seeds.py [--seeds 0,1,2] [--out-prefix demo_out]
[--config configs/demo.yaml] [--set KEY=VALUE ...] [--report-only] [--md PATH] [--json PATH]``.
Exit status: 0 when every check passes in every seed, 1 otherwise (a seed without results
counts as failing).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avsr.errors import UserError
from avsr.evaluation.compare import Stat
from avsr.io import atomic_write_json, atomic_write_text
from tasks.demo_checks import GOALS, avst_bleu_table, avst_pair, demo_checks, load_demo_results
from tasks.demo_stages import set_args
from tasks.stages import avsr_command


def seed_out(prefix: Path, seed: int) -> Path:
    """Output folder of ``seed``: ``prefix`` for seed 0, ``<prefix>_seedN`` otherwise."""
    return prefix if seed == 0 else prefix.with_name(f"{prefix.name}_seed{seed}")


def demo_command(out: Path, seed: int, config: Path | None, overrides: list[str], *, quick: bool = False) -> list[str]:
    """The ``avsr demo`` command line of one seed: ``--set seed=N``, then the caller's
    overrides and config."""
    cmd = avsr_command("demo", "--out", out, *set_args([f"seed={seed}", *overrides]))
    if config is not None:
        cmd += ["--config", str(config)]
    return cmd + (["--quick"] if quick else [])


@dataclass(kw_only=True)
class SeedReport:
    """The checks and numbers of one seed's demo folder."""

    seed: int
    out: str
    exit_code: int | None = None
    """Exit status of the demo run (None: not run here, ``--report-only``)."""
    error: str | None = None
    """Why there are no results (the folder is unfinished or unreadable)."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """``Check.to_dict()`` of every check, in goal order."""
    numbers: dict[str, float] = field(default_factory=dict)
    """Every number the checks read, and the translation BLEU table, by label."""


def seed_report(seed: int, out: Path, exit_code: int | None = None) -> SeedReport:
    """Read one seed's finished demo folder (``error`` set when it cannot)."""
    rep = SeedReport(seed=seed, out=str(out), exit_code=exit_code)
    try:
        d = load_demo_results(out)
        checks = demo_checks(d)
    except UserError as exc:
        rep.error = str(exc)
        return rep
    rep.checks = [c.to_dict() for c in checks]
    for c in checks:
        rep.numbers.update(c.measured)
    for mod, row in avst_bleu_table(d).items():
        for cond, v in row.items():
            rep.numbers[f"AVST {avst_pair(d)}, {mod}, {cond}"] = v
    return rep


def _digits(unit: str) -> int:
    """Decimals shown for a unit: ratios 2, seconds 0, WER and BLEU 1."""
    return 2 if unit == "x" else 0 if unit == "s" else 1


def spread_text(stat: Stat, digits: int) -> str:
    """``12.3 ± 1.2 (10.1..14.5)``: mean ± sample standard deviation (min..max) over seeds."""
    if stat.n < 2:
        return stat.fmt(digits)
    return f"{stat.fmt(digits)} ({stat.min:.{digits}f}..{stat.max:.{digits}f})"


def summarize(reports: list[SeedReport]) -> dict[str, Any]:
    """Across seeds: per check its bound, values (:class:`Stat`), verdicts and passes; per
    number its values (seeds without results left out)."""
    done = [r for r in reports if r.error is None]
    checks: dict[str, dict[str, Any]] = {}
    for r in done:
        for c in r.checks:
            e = checks.setdefault(c["name"], {k: c[k] for k in ("goal", "unit", "comparison", "threshold")}
                                  | {"stat": Stat(values=[]), "passed": {}})
            e["stat"].values.append(c["value"] if math.isfinite(c["value"]) else math.nan)  # x/0: no spread
            e["stat"].seeds.append(r.seed)
            e["passed"][r.seed] = c["passed"]
    numbers: dict[str, Stat] = {}
    for r in done:
        for k, v in r.numbers.items():
            stat = numbers.setdefault(k, Stat(values=[]))
            stat.values.append(v)
            stat.seeds.append(r.seed)
    for e in checks.values():
        e.update(passes=sum(e["passed"].values()), seeds=len(reports))
    all_passed = bool(checks) and len(done) == len(reports) and all(e["passes"] == len(reports) for e in checks.values())
    return {"checks": checks, "numbers": numbers, "all_passed": all_passed}


def summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    """``summarize``'s result with every :class:`Stat` as its dict."""
    checks = {k: {**e, "stat": e["stat"].to_dict()} for k, e in summary["checks"].items()}
    return {**summary, "checks": checks, "numbers": {k: s.to_dict() for k, s in summary["numbers"].items()}}


def _per_seed(stat: Stat, seeds: list[int], digits: int, passed: dict[int, bool] | None = None) -> list[str]:
    """One cell per seed: the value (with PASS/FAIL when ``passed``), ``-`` without results."""
    by_seed = dict(zip(stat.seeds, stat.values))
    cells = []
    for s in seeds:
        if s not in by_seed:
            cells.append("-")
            continue
        verdict = "" if passed is None else (" PASS" if passed[s] else " FAIL")
        cells.append(f"{by_seed[s]:.{digits}f}{verdict}")
    return cells


def markdown(reports: list[SeedReport], summary: dict[str, Any]) -> str:
    """Two tables (checks with pass/fail, then the numbers read), a column per seed and the
    spread across seeds; then the seeds without results."""
    seeds = [r.seed for r in reports]

    def head(first: str, *last: str) -> list[str]:
        cols = [first, *(f"seed {s}" for s in seeds), "mean ± sd (min..max)", *last]
        return ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]

    lines = ["## Goal checks", "", *head("check (goal, bound)", "passes")]
    for name, e in summary["checks"].items():
        n = _digits(e["unit"])
        bound = f"{e['comparison']} {e['threshold']:g}" + ("x" if e["unit"] == "x" else f" {e['unit']}")
        cells = [f"{name} ({e['goal']}, {bound})", *_per_seed(e["stat"], seeds, n, e["passed"]),
                 spread_text(e["stat"], n), f"{e['passes']}/{e['seeds']}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Numbers read", "", *head("number")]
    for name, stat in summary["numbers"].items():
        n = _digits("s" if name.endswith("(s)") else "")
        lines.append("| " + " | ".join([name, *_per_seed(stat, seeds, n), spread_text(stat, n)]) + " |")
    missing = [r for r in reports if r.error is not None]
    if missing:
        lines += ["", "## Seeds without results", ""]
        lines += [f"- seed {r.seed} ({r.out}, demo exit {r.exit_code}): {r.error}" for r in missing]
    verdict = "every check passes in every seed" if summary["all_passed"] else "some checks fail (or a seed has no results)"
    return "\n".join([*lines, "", f"Verdict: {verdict}."]) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--out-prefix", type=Path, default=Path("demo_out"), help="seed 0's folder; seed N: <prefix>_seedN")
    ap.add_argument("--config", type=Path, default=None, help="DemoConfig YAML passed to avsr demo")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="passed to avsr demo (not seed)")
    ap.add_argument("--quick", action="store_true", help="passed to avsr demo (the reduced demo)")
    ap.add_argument("--report-only", action="store_true", help="only read the finished folders")
    ap.add_argument("--md", type=Path, default=None, help="write the tables here")
    ap.add_argument("--json", type=Path, default=None, help="write per-seed checks and the summary here")
    args = ap.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if any(o.split("=", 1)[0].strip() == "seed" for o in args.overrides):
        ap.error("--set seed=...: the seeds come from --seeds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reports = []
    for seed in args.seeds:
        out = seed_out(args.out_prefix, seed)
        code = None
        if not args.report_only:
            cmd = demo_command(out, seed, args.config, args.overrides, quick=args.quick)
            print(f"== seed {seed}: {' '.join(cmd)}", flush=True)
            code = subprocess.run(cmd, check=False).returncode
        reports.append(seed_report(seed, out, code))
    summary = summarize(reports)
    text = markdown(reports, summary)
    print("\n" + text, flush=True)
    if args.md is not None:
        atomic_write_text(args.md, f"# Demo effect checks over seeds {', '.join(map(str, args.seeds))}\n\n" + text)
    if args.json is not None:
        atomic_write_json(args.json, {"goals": asdict(GOALS), "seeds": [asdict(r) for r in reports], "summary": summary_json(summary)})
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
