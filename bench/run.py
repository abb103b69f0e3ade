"""gm_agent against DBOS and LangGraph, side by side in one run (issue 12).

Run: ``python bench/run.py [--quick] [--install-peers] [--only WORKLOAD,...]``.

``--install-peers`` creates ``bench/.venv-peers`` with ``python -m venv`` and
pip-installs ``dbos``, ``langgraph`` and ``langgraph-checkpoint-sqlite`` there;
the peers' workloads run as subprocesses of that interpreter, gm_agent's in this
one. Without the peers' environment only gm_agent's figures are taken.

Workloads (see docs/bench.md for what each measures and how to read it):

1. ``steps``: durable step overhead, ms per step over 500 steps, each system
   alternating, median of several runs;
2. ``growth``: bytes on disk after 200 steps of 1 KB and 100 steps of 10 KB;
3. ``crash``: SIGKILL at a random point of a 20-step run, then resume: time to the
   first new step, and side effects repeated (a fsynced ledger);
4. ``replay``: events per second folded for 100,000 events (gm_agent);
5. ``startup``: ``gm --help`` and ``gm run`` to the first model request.

The disk's raw fsync latency is measured before and after. The page goes to
``bench/results/DATE.md`` (``DATE-quick.md`` with ``--quick``), the raw figures
to the ``.json`` beside it, and the page is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _crash import STEPS as CRASH_STEPS  # noqa: E402
from _crash import WORK_S, Contender, crash_trials, gm_contender  # noqa: E402
from _gm_work import job_steps, kernel_turns  # noqa: E402
from _machine import fsync_latency, machine_facts  # noqa: E402
from _peer_env import install_peers, peer_python, peer_versions, run_peer  # noqa: E402
from _report import (  # noqa: E402
    DBOS_DEFAULT,
    DBOS_WAL,
    GM_JOB,
    GM_TURN,
    LANGGRAPH,
    STEP_SYSTEMS,
    render,
)
from _startup import gm_command, gm_environ, startup  # noqa: E402

WORKLOADS = ("steps", "growth", "crash", "replay", "startup")
RESULTS = BENCH / "results"
SMALL_RESULT_BYTES = 64
"""Bytes of each step's result in the step-overhead workload."""


@dataclass(frozen=True)
class Plan:
    """How much of each workload to run (``--quick`` or the full run)."""

    quick: bool
    repeats: int
    steps: int
    kills: int
    replay_events: int
    replay_repeats: int
    startup_repeats: int
    fsync_samples: int
    growth: tuple[tuple[int, int], ...] = ((1024, 200), (10 * 1024, 100))

    @classmethod
    def make(cls, quick: bool) -> Plan:
        """The quick plan (under 5 minutes on a 2-core machine) or the full one."""
        if quick:
            return cls(True, 3, 500, 3, 100_000, 1, 3, 300)
        return cls(False, 7, 500, 10, 100_000, 3, 10, 2000)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _step_trial(
    name: str, workdir: Path, steps: int, size: int, peers: Path | None
) -> dict[str, Any]:
    """One run of ``name`` doing ``steps`` steps of ``size``-byte results."""
    workdir.mkdir(parents=True)
    match name:
        case "gm_agent job":
            return anyio.run(job_steps, workdir, steps, size)
        case "gm_agent kernel turn":
            return anyio.run(kernel_turns, workdir, steps, size)
        case _:
            assert peers is not None
            script, extra = {
                DBOS_DEFAULT: ("dbos_work.py", ["--journal-mode", "default"]),
                DBOS_WAL: ("dbos_work.py", ["--journal-mode", "wal"]),
                LANGGRAPH: ("langgraph_work.py", []),
            }[name]
            args = ["steps", "--dir", str(workdir), "--steps", str(steps), "--bytes", str(size)]
            return run_peer(peers, script, [*args, *extra])


def measure_steps(
    root: Path, systems: Sequence[str], repeats: int, steps: int, peers: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Workload 1: each system's runs of ``steps`` small steps, systems taking turns.

    Args:
        root: an empty scratch directory (each run gets its own below it).
        systems: labels from ``STEP_SYSTEMS``; the peers' need ``peers``.
        repeats: runs per system; the order of systems rotates each round.
        steps: steps per run.
        peers: the peers' interpreter.

    Returns:
        ``{system: [{"ms_per_step": float, ...}, ...]}``; ms are wall milliseconds per
        step timed around the steps alone (see each system's workload).
    """
    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for round_ in range(repeats):
        shift = round_ % len(systems)
        for name in [*systems[shift:], *systems[:shift]]:
            workdir = root / f"steps-{round_}-{_slug(name)}"
            trials[name].append(_step_trial(name, workdir, steps, SMALL_RESULT_BYTES, peers))
    return trials


def _growth_point(name: str, workdir: Path, steps: int, size: int, peers: Path | None) -> int:
    if name in (GM_JOB, GM_TURN):
        return int(_step_trial(name, workdir, steps, size, peers)["bytes_on_disk"])
    assert peers is not None
    workdir.mkdir(parents=True)
    script, extra = {
        DBOS_DEFAULT: ("dbos_work.py", []),
        "LangGraph, appended state": ("langgraph_work.py", ["--state", "append"]),
        "LangGraph, replaced state": ("langgraph_work.py", ["--state", "replace"]),
    }[name]
    args = ["growth", "--dir", str(workdir), "--steps", str(steps), "--bytes", str(size)]
    return int(run_peer(peers, script, [*args, *extra])["bytes_on_disk"])


def measure_growth(
    root: Path, plan: Plan, peers: Path | None
) -> dict[str, dict[str, dict[str, int]]]:
    """Workload 2: bytes on disk after n/4, n/2 and n steps of each size in ``plan.growth``.

    Returns:
        ``{system: {"200 × 1 KB": {"50": bytes, "100": bytes, "200": bytes}, ...}}``.
    """
    systems = [GM_JOB, GM_TURN]
    if peers is not None:
        systems += [DBOS_DEFAULT, "LangGraph, appended state", "LangGraph, replaced state"]
    found: dict[str, dict[str, dict[str, int]]] = {name: {} for name in systems}
    for size, steps in plan.growth:
        case = f"{steps} × {size // 1024} KB"
        for name in systems:
            found[name][case] = {
                str(n): _growth_point(
                    name, root / f"growth-{_slug(name)}-{size}-{n}", n, size, peers
                )
                for n in (steps // 4, steps // 2, steps)
            }
    return found


def _peer_contender(name: str, peers: Path, script: str) -> Contender:
    def command(workdir: Path, resume: bool) -> list[str]:
        argv = [str(peers), str(BENCH / "_peers" / script), "crash", "--dir", str(workdir)]
        argv += ["--steps", str(CRASH_STEPS), "--work-s", str(WORK_S)]
        return [*argv, "--resume"] if resume else argv

    return Contender(name, command)


def measure_crash(root: Path, plan: Plan, peers: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Workload 3: ``plan.kills`` kills and resumes per system (see ``_crash``).

    Returns:
        ``{system: [trial, ...]}``, each trial ``CrashTrial.as_json()`` (times in ms).
    """
    contenders = [gm_contender(gm_command(), gm_environ())]
    if peers is not None:
        contenders += [
            _peer_contender("DBOS", peers, "dbos_work.py"),
            _peer_contender("LangGraph", peers, "langgraph_work.py"),
        ]
    trials = crash_trials(contenders, root, plan.kills, seed=12)
    return {name: [t.as_json() for t in found] for name, found in trials.items()}


def measure_replay(plan: Plan) -> list[dict[str, float]]:
    """Workload 4: ``bench/replay_bench.py``'s replay rates for ``plan.replay_events``
    events, ``plan.replay_repeats`` times (events per second)."""
    import replay_bench

    found: list[dict[str, float]] = []
    for _ in range(plan.replay_repeats):
        read_fold, fold, checked = anyio.run(replay_bench.replay_rates, plan.replay_events)
        found.append({"read_fold": read_fold, "fold": fold, "checked": checked})
    return found


def _write(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = results["date"] + ("-quick" if results["plan"]["quick"] else "")
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    page = out / f"{stem}.md"
    page.write_text(render(results))
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; the exit code (0, or 2 for bad arguments)."""
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    cli.add_argument("--quick", action="store_true", help="fewer repeats (under 5 minutes)")
    cli.add_argument("--install-peers", action="store_true", help="create bench/.venv-peers first")
    cli.add_argument("--no-peers", action="store_true", help="gm_agent's figures only")
    cli.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    cli.add_argument("--out", type=Path, default=RESULTS, help="where the page and JSON go")
    cli.add_argument("--keep", action="store_true", help="keep the scratch workspaces")
    args = cli.parse_args(argv)
    chosen = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        cli.error(f"unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    started = time.perf_counter()
    peers = None
    if not args.no_peers:
        peers = install_peers() if args.install_peers else peer_python()
        if peers is None:
            print("peers not installed: gm_agent only (add --install-peers)", file=sys.stderr)
    plan = Plan.make(args.quick)
    scratch = BENCH / ".work"
    scratch.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "plan": asdict(plan),
        "machine": machine_facts(root, peer_versions(peers) if peers else {}),
        "fsync": {"before": fsync_latency(root, plan.fsync_samples)},
        "load_average": {"before": os.getloadavg()},
    }
    try:
        for workload in chosen:
            print(f"[{time.perf_counter() - started:5.0f} s] {workload} ...", file=sys.stderr)
            match workload:
                case "steps":
                    systems = [s for s in STEP_SYSTEMS if peers is not None or s.startswith("gm")]
                    results["steps"] = measure_steps(root, systems, plan.repeats, plan.steps, peers)
                case "growth":
                    results["growth"] = measure_growth(root, plan, peers)
                case "crash":
                    results["crash"] = measure_crash(root / "crash", plan, peers)
                case "replay":
                    results["replay"] = measure_replay(plan)
                case "startup":
                    results["startup"] = startup(root, plan.startup_repeats)
        results["fsync"]["after"] = fsync_latency(root, plan.fsync_samples)
        results["load_average"]["after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    page = _write(results, args.out)
    print(page.read_text())
    print(f"written: {page} and {page.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
