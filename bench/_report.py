"""Turn the raw results of ``bench/run.py`` into the Markdown page and the goal verdicts.

Every figure here is computed from the raw JSON the same run wrote beside the
page (medians with ``statistics.median``); nothing is typed in by hand.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["GM_JOB", "GM_TURN", "STEP_SYSTEMS", "goals", "render"]

GM_JOB = "gm_agent job"
GM_TURN = "gm_agent kernel turn"
DBOS_DEFAULT = "DBOS, SQLite default"
DBOS_WAL = "DBOS, SQLite WAL"
LANGGRAPH = "LangGraph, SqliteSaver"
STEP_SYSTEMS = (GM_JOB, GM_TURN, DBOS_DEFAULT, DBOS_WAL, LANGGRAPH)
PEER_STEP_SYSTEMS = (DBOS_DEFAULT, DBOS_WAL, LANGGRAPH)

WHAT_A_STEP_IS = {
    GM_JOB: "a job: `job.intent` commit, effect, `job.result` commit (WAL, synchronous=FULL)",
    GM_TURN: "a kernel turn: model job (intent; response + result) + `read_file` call "
    "(called; returned) + checks, checkpoint every 10: ~4 commits",
    DBOS_DEFAULT: "a `@DBOS.step` whose output DBOS records (rollback journal, synchronous=FULL)",
    DBOS_WAL: "the same, database file in WAL mode (synchronous=FULL)",
    LANGGRAPH: "a super-step: `put_writes` + `put` of the checkpoint (WAL, synchronous=FULL), "
    'durability="sync"',
}

GROWTH_WHAT = {
    GM_JOB: "job output (over 4 KB: cut in the event + whole as a blob)",
    GM_TURN: "`read_file` result in the run's conversation; checkpoints store new nodes only",
    DBOS_DEFAULT: "the step's output row",
    "LangGraph, appended state": "list channel with a reducer (how message history is kept): "
    "each checkpoint holds the whole list",
    "LangGraph, replaced state": "one value overwritten each step (earlier ones stay in old "
    "checkpoints)",
}

LINEAR_RATIO = 1.25
"""Storage counts as linear when the bytes per step late in the run are at most this
multiple of those early in the run (a quadratic store gives about 2)."""


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def _spread(values: Sequence[float]) -> str:
    return f"{_fmt_ms(min(values))}–{_fmt_ms(max(values))}"


def step_medians(steps: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Median ms per step of each system that ran."""
    return {name: _median(t["ms_per_step"] for t in trials) for name, trials in steps.items()}


def _best_peer(medians: dict[str, float]) -> tuple[str, float] | None:
    peers = [(name, medians[name]) for name in PEER_STEP_SYSTEMS if name in medians]
    return min(peers, key=lambda p: p[1]) if peers else None


def _steps_section(results: dict[str, Any]) -> list[str]:
    steps: dict[str, list[dict[str, float]]] = results["steps"]
    medians = step_medians(steps)
    best = _best_peer(medians)
    n = results["plan"]["steps"]
    out = [
        f"## 1. Durable step overhead ({n} steps, each recording a small result; "
        f"median of {results['plan']['repeats']} runs, systems alternating)",
        "",
        "| system | one step is | ms per step | min–max | ÷ best peer step |",
        "|---|---|---:|---:|---:|",
    ]
    for name in STEP_SYSTEMS:
        if name not in steps:
            continue
        values = [t["ms_per_step"] for t in steps[name]]
        ratio = f"{medians[name] / best[1]:.2f}" if best else "n/a"
        out.append(
            f"| {name} | {WHAT_A_STEP_IS[name]} | {_fmt_ms(medians[name])} | "
            f"{_spread(values)} | {ratio} |"
        )
    if GM_TURN in steps:
        first = _median(t["ms_first_tenth"] for t in steps[GM_TURN])
        last = _median(t["ms_last_tenth"] for t in steps[GM_TURN])
        trend = (  # the bound the storage goal calls linear
            "the per-turn cost grows with the conversation"
            if last > LINEAR_RATIO * first
            else "the per-turn cost does not grow with the conversation"
        )
        out += [
            "",
            f"gm_agent kernel turn over the run: {_fmt_ms(first)} ms per turn in the first "
            f"tenth of the turns, {_fmt_ms(last)} ms in the last tenth ({trend}: last "
            f"÷ first {last / first:.2f}).",
        ]
    return out


def growth_rates(points: dict[str, int]) -> tuple[float, float]:
    """(bytes per step from n/4 to n/2, bytes per step from n/2 to n) of a growth run
    sampled at ``{steps: bytes}`` for n/4, n/2 and n steps."""
    quarter, half, full = sorted(int(k) for k in points)
    early = (points[str(half)] - points[str(quarter)]) / (half - quarter)
    late = (points[str(full)] - points[str(half)]) / (full - half)
    return early, late


def _growth_section(results: dict[str, Any]) -> list[str]:
    growth: dict[str, dict[str, dict[str, int]]] = results["growth"]
    cases = list(next(iter(growth.values())).keys()) if growth else []
    header = "| system | what each step adds | " + " | ".join(
        f"{case}: bytes on disk | bytes/step early → late" for case in cases
    )
    out = [
        "## 2. State growth (bytes on disk after the run, WAL checkpointed; bytes per step "
        "from n/4 to n/2 steps and from n/2 to n)",
        "",
        header + " |",
        "|---|---|" + "---:|---:|" * len(cases),
    ]
    for name, by_case in growth.items():
        cells = []
        for case in cases:
            points = by_case[case]
            early, late = growth_rates(points)
            total = points[str(max(int(k) for k in points))]
            cells.append(f"{total:,} | {early:,.0f} → {late:,.0f} (×{late / early:.2f})")
        out.append(f"| {name} | {GROWTH_WHAT.get(name, '')} | " + " | ".join(cells) + " |")
    return out


def _crash_section(results: dict[str, Any]) -> list[str]:
    crash: dict[str, list[dict[str, Any]]] = results["crash"]
    out = [
        "## 3. Crash and resume (SIGKILL at a random point of a 20-step run, then the "
        "system's own resume; a fsynced ledger counts side effects)",
        "",
        "| system | kills | resume: process start → first new step, ms (median, min–max) "
        "| fresh start → first step, ms | duplicated side effects | reported "
        '"outcome unknown" | steps never run |',
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, trials in crash.items():
        resumes = [t["resume_ms"] for t in trials if t["resume_ms"] is not None]
        fresh = [t["fresh_ms"] for t in trials]
        shown = f"{_median(resumes):.0f} ({_spread(resumes)})" if resumes else "n/a"
        out.append(
            f"| {name} | {len(trials)} | {shown} | {_median(fresh):.0f} | "
            f"{sum(t['duplicates'] for t in trials)} | {sum(t['ambiguous'] for t in trials)} | "
            f"{sum(t['missing'] for t in trials)} |"
        )
    return out


def _replay_section(results: dict[str, Any]) -> list[str]:
    replay: list[dict[str, float]] = results["replay"]
    return [
        f"## 4. Replay (gm_agent; a synthetic run of {results['plan']['replay_events']:,} "
        f"events; median of {len(replay)})",
        "",
        "| measure | events per second |",
        "|---|---:|",
        f"| read from the journal and folded | {_median(r['read_fold'] for r in replay):,.0f} |",
        f"| folded alone | {_median(r['fold'] for r in replay):,.0f} |",
        f"| `gm replay`'s whole check (digests, fold, checkpoints) | "
        f"{_median(r['checked'] for r in replay):,.0f} |",
    ]


def _startup_section(results: dict[str, Any]) -> list[str]:
    startup: dict[str, list[float]] = results["startup"]
    out = [
        f"## 5. Start-up (ms, median of {len(next(iter(startup.values())))}; a process start each)",
        "",
        "| measure | median ms | min–max |",
        "|---|---:|---:|",
    ]
    for name, values in startup.items():
        out.append(f"| {name} | {_median(values):.0f} | {_spread(values)} |")
    return out


def goals(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The issue's goals as (goal, the figure, ``met`` or ``missed`` or ``not measured``)."""
    verdicts: list[tuple[str, str, str]] = []
    steps = results.get("steps") or {}
    medians = step_medians(steps)
    best = _best_peer(medians)
    if best and GM_JOB in medians:
        job = medians[GM_JOB]
        verdicts.append(
            (
                "per-step overhead ≤ ½ the best peer's (job level)",
                f"{job:.2f} ms vs ½ × {best[1]:.2f} ms ({best[0]}) = {best[1] / 2:.2f} ms",
                "met" if job <= best[1] / 2 else "missed",
            )
        )
    if best and GM_TURN in medians:
        turn = medians[GM_TURN]
        verdicts.append(
            (
                "per-step overhead ≤ ½ the best peer's (kernel turn = 2 peer steps: "
                "LLM call + tool call)",
                f"{turn:.2f} ms vs ½ × 2 × {best[1]:.2f} ms = {best[1]:.2f} ms",
                "met" if turn <= best[1] else "missed",
            )
        )
    crash = (results.get("crash") or {}).get("gm_agent")
    if crash:
        dups = sum(t["duplicates"] for t in crash)
        verdicts.append(
            (
                "zero silent duplicates after a crash",
                f"{dups} duplicated of {len(crash)} kills "
                f"({sum(t['ambiguous'] for t in crash)} reported as outcome unknown)",
                "met" if dups == 0 else "missed",
            )
        )
        resumes = [t["resume_ms"] for t in crash if t["resume_ms"] is not None]
        if resumes:
            med = _median(resumes)
            verdicts.append(
                (
                    "resume under 100 ms",
                    f"{med:.0f} ms median, process start → first new step",
                    "met" if med < 100 else "missed",
                )
            )
    growth = results.get("growth") or {}
    for name in (GM_JOB, GM_TURN):
        if name in growth:
            ratios = {case: growth_rates(p) for case, p in growth[name].items()}
            worst = max(late / early for early, late in ratios.values())
            shown = "; ".join(f"{c}: ×{late / early:.2f}" for c, (early, late) in ratios.items())
            verdicts.append(
                (
                    f"storage linear in the change per step ({name})",
                    f"late/early bytes per step {shown}",
                    "met" if worst <= LINEAR_RATIO else "missed",
                )
            )
    return verdicts


def render(results: dict[str, Any]) -> str:
    """The results page in Markdown."""
    machine = results["machine"]
    fsync = results["fsync"]
    out = [
        f"# gm_agent against DBOS and LangGraph: {results['date']}"
        + (" (quick)" if results["plan"]["quick"] else ""),
        "",
        f"`python bench/run.py{' --quick' if results['plan']['quick'] else ''}`, "
        f"{results['elapsed_s']:.0f} s. How to read this page: docs/bench.md.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if v is not None) + ".",
        "",
        "Raw fsync of this disk (512-byte appends, same directory as the workloads): "
        + "; ".join(
            f"{when}: median {f['median_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms, "
            f"max {f['max_ms']:.2f} ms over {f['samples']:.0f}"
            for when, f in fsync.items()
        )
        + ".",
        "",
        "Load average (1, 5, 15 min; other processes share this machine): "
        + "; ".join(
            f"{when}: {', '.join(f'{x:.2f}' for x in load)}"
            for when, load in results.get("load_average", {}).items()
        )
        + ".",
        "",
    ]
    sections = (
        ("steps", _steps_section),
        ("growth", _growth_section),
        ("crash", _crash_section),
        ("replay", _replay_section),
        ("startup", _startup_section),
    )
    for key, section in sections:
        if results.get(key):
            out += [*section(results), ""]
    verdicts = goals(results)
    if verdicts:
        out += ["## Goals (issue 12)", "", "| goal | figure | verdict |", "|---|---|---|"]
        out += [f"| {goal} | {figure} | **{verdict}** |" for goal, figure, verdict in verdicts]
        out.append("")
    for note in results.get("notes", []):
        out.append(f"- {note}")
    return "\n".join(out).rstrip() + "\n"
