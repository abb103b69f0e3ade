"""Child runs: ``spawn_agent`` starts one, ``wait_agents`` joins a group of them.

A child is an ordinary run (``run.created`` with ``parent_run``, then its task as
``user.message``), so it is listed, logged, approved, resumed and undone like
any run. The parent creates it as a job (kind ``agent``, key
``RUN/agent/CALL_ID``, idempotent): a crash between the intent and the child's
creation creates it on resume, and never twice. The parent's process executes
its children beside its own loop, in the task group of
:meth:`~gm_agent.kernel.loop.Kernel.execute`, at most ``[agents]
max_concurrent`` at once, each with its own kernel, journal connection and
lease. File changes still go one at a time through the workspace's writer lock.

Guardrails only narrow: a child's tools are a subset of the parent's (``read_only``
keeps the reading tools), its policy is the workspace's, its token and cost caps
are the parent's, and its steps are taken from the parent's ``max_steps``.

Stops reach every descendant: a parent that is cancelled, or ends, cancels the
children still going (their commands are killed, as ``gm cancel`` does); one
that pauses or stops (an interrupt, Ctrl-C, waiting for a person) takes its
children down with it, paused, and its resume resumes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from gm_agent.clock import Clock, parse_timestamp
from gm_agent.errors import GmAgentError, RunLeased, ToolError, UserError
from gm_agent.events import (
    AgentsJoined,
    AnyEventData,
    ChildOutcome,
    Event,
    RunCreated,
    RunStatusChanged,
    TerminalStatus,
    ToolCallData,
    ToolCalled,
    UserMessage,
    new_event,
)
from gm_agent.jobs import JobOutcome, JobSpec
from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._controls import Steerable
from gm_agent.kernel._core import ChildTask, EventObserver, KernelCore, log, spec_of
from gm_agent.kernel._join import JoinVerdict, judge
from gm_agent.kernel.state import TERMINAL, JobView, RunState
from gm_agent.tools import SpawnAgent, WaitAgents

if TYPE_CHECKING:
    from gm_agent.kernel.loop import Kernel

__all__ = [
    "JOIN_POLL_S",
    "READ_ONLY_TOOLS",
    "AgentCalls",
    "agent_job_key",
    "child_kernel",
    "child_run_events",
]

JOIN_POLL_S = 0.05
"""How often a waiting parent looks at its children's statuses, in seconds."""

READ_ONLY_TOOLS = ("read_file", "list_dir", "search", "load_skill", "finish")
"""The tools a ``read_only`` child keeps: it reads and reports, never writes or runs."""


def child_kernel(
    parent: KernelCore, journal: Journal, model: str, observer: EventObserver | None = None
) -> Kernel:
    """A kernel for a child run of ``parent``'s: over ``journal`` (the child's own
    connection), with ``model`` (from the parent's pool, else the parent's model)
    and the parent's tools, settings, clock, environment and approval mode."""
    from gm_agent.kernel.loop import Kernel  # the loop is built from this module

    return Kernel(
        journal,
        parent._models.get(model) if parent._models else parent._model,  # pyright: ignore[reportPrivateUsage]
        parent._registry,  # pyright: ignore[reportPrivateUsage]
        parent._settings,  # pyright: ignore[reportPrivateUsage]
        clock=parent._clock,  # pyright: ignore[reportPrivateUsage]
        environ=parent._environ,  # pyright: ignore[reportPrivateUsage]
        observer=observer,
        heartbeat=parent._heartbeat_on,  # pyright: ignore[reportPrivateUsage]
        approvals=parent._approvals,  # pyright: ignore[reportPrivateUsage]
        models=parent._models,  # pyright: ignore[reportPrivateUsage]
    )


def child_run_events(clock: Clock, parent: RunState, spec: JobSpec) -> list[Event]:
    """The first events of the child run an ``agent`` job (``spec``) creates:
    ``run.created`` with ``parent_run`` and what it inherits from ``parent`` (its
    workspace, the task's policy rules, budget caps, network setting and fallback
    models: a child only narrows), then its task as ``user.message``."""
    args = spec.args
    tools = args.get("tools")
    created = RunCreated(
        task=str(args["task"]),
        model=str(args["model"]),
        max_steps=int(str(args["max_steps"])),
        tools=tuple(str(t) for t in tools) if isinstance(tools, list) else None,
        workspace=parent.workspace,
        rules=parent.rules,
        budget=dict(parent.budget),
        network=parent.network,
        fallbacks=parent.fallbacks,
        parent_run=parent.run_id,
    )
    child = str(args["child_run"])
    return [
        new_event(clock, child, "kernel", created),
        new_event(clock, child, "user", UserMessage(text=str(args["task"]))),
    ]


def agent_job_key(run_id: str, call_id: str) -> str:
    """The idempotency key of the job that creates ``spawn_agent`` call ``call_id``'s child."""
    return f"{run_id}/agent/{call_id}"


@dataclass(frozen=True)
class _Child:
    run_id: str
    group: str


class AgentCalls(Steerable):
    """The kernel's part that starts, executes, joins and stops child runs."""

    # -- spawn_agent -------------------------------------------------------------

    async def _spawn(
        self, spawn: SpawnAgent, call: ToolCallData, cause: str | None
    ) -> tuple[bool, str]:
        """Create the child run of ``call`` (once, as a job) and start executing it;
        ``(ok, text for the model)``.

        Raises:
            ToolError: it asks for more than the parent has (tools, steps) or for
                a model that does not exist; nothing is journaled.
        """
        job = self._state.job_for_call(call.call_id)
        if job is not None and job.status == "succeeded":  # created before a stop
            assert job.result is not None
            self._start_child(str(job.args["child_run"]))
            return True, job.result.output
        if job is not None and job.status != "started":
            return False, job.result.error or "not started" if job.result else "not started"
        spec = spec_of(job) if job is not None else self._spawn_spec(spawn, call)
        outcome = await self._runner(cause).run(
            spec, lambda: self._create_child(spec), intent_committed=job is not None
        )
        if outcome.ok:
            self._start_child(str(spec.args["child_run"]))
        return outcome.ok, outcome.output if outcome.ok else outcome.error or "not started"

    def _spawn_spec(self, spawn: SpawnAgent, call: ToolCallData) -> JobSpec:
        """The job creating ``spawn``'s child, its arguments checked against what
        the parent has.

        Raises:
            ToolError: see :meth:`_spawn`.
        """
        mine = [name for name in self._tools if name != "finish"]
        tools = list(spawn.tools) if spawn.tools is not None else mine
        foreign = [name for name in tools if name not in mine and name != "finish"]
        if foreign:
            raise ToolError(
                f"a child can only use tools you have; not {', '.join(foreign)} "
                f"(yours: {', '.join(mine)})"
            )
        if spawn.read_only:
            tools = [name for name in tools if name in READ_ONLY_TOOLS]
        state = self._state
        left = state.max_steps - state.step - state.given_steps - 2  # to wait and finish
        if left < 1:
            raise ToolError(
                "no steps left to give a child: you need your last two to wait and finish; "
                "wait for the children you have, or finish"
            )
        steps = spawn.max_steps or min(self._settings.agents.default_steps, left)
        if steps > left:
            raise ToolError(f"max_steps={steps} is more than the {left} steps you can give")
        model = spawn.model or state.model
        script = model.removeprefix("scripted:")
        if model.startswith("scripted:") and not Path(script).is_absolute():
            model = f"scripted:{Path(state.workspace) / script}"  # found again on resume
        if self._models is not None:
            try:
                self._models.get(model)
            except GmAgentError as exc:
                raise ToolError(f"model {model!r}: {exc}") from exc
        args: dict[str, JsonValue] = {
            "child_run": self._clock.new_id(),
            "group": spawn.group,
            "task": spawn.task,
            "tools": list(tools),
            "model": model,
            "max_steps": steps,
            "read_only": spawn.read_only,
        }
        return JobSpec(
            job_id=self._clock.new_id(),
            key=agent_job_key(state.run_id, call.call_id),
            kind="agent",
            args=args,
            idempotent=True,
            call_id=call.call_id,
        )

    async def _create_child(self, spec: JobSpec) -> JobOutcome:
        """The job's effect: the child run's first events, unless a crashed attempt
        made them already."""
        args = spec.args
        child = str(args["child_run"])
        if not await self._journal.has_run(child):
            await self._journal.append(child_run_events(self._clock, self._state, spec))
        tools = args.get("tools")
        listed = ", ".join(str(t) for t in tools) if isinstance(tools, list) else "yours"
        return JobOutcome(
            ok=True,
            output=(
                f"started child run {child} in group {args['group']!r} "
                f"(at most {args['max_steps']} steps; tools: {listed}); "
                f"collect it with wait_agents(group={args['group']!r})"
            ),
        )

    # -- executing children ----------------------------------------------------

    def _spawned(self) -> list[_Child]:
        """The children this run created, oldest first."""
        return [
            _Child(str(j.args["child_run"]), str(j.args["group"])) for j in self._spawned_jobs()
        ]

    def _spawned_jobs(self) -> list[JobView]:
        return [j for j in self._state.spawned() if j.status == "succeeded"]

    def _start_children(self) -> None:
        """Execute every child that has not ended (after a resume, they go on)."""
        for child in self._spawned():
            self._start_child(child.run_id)

    def _start_child(self, child: str) -> None:
        """Execute ``child`` in the background, unless this process does already."""
        if self._task_group is None or self._children.get(child) == "running":
            return
        self._children[child] = "running"
        self._task_group.start_soon(self._execute_child, child)

    async def _execute_child(self, child: str) -> None:
        """Drive ``child`` with a kernel of its own until it ends or stops. Another
        process executing it is left to it (the parent watches the journal)."""
        where: ChildTask = "stopped"
        try:
            async with self._child_slots:
                async with await Journal.open(
                    self._journal.path,
                    durability=self._settings.journal.durability,
                    clock=self._clock,
                ) as journal:
                    row = await journal.get_run(child)
                    if row.status in TERMINAL:
                        return
                    kernel = child_kernel(self, journal, row.model)
                    await kernel.execute(child)
        except RunLeased:
            where = "elsewhere"
        except UserError as exc:  # ended meanwhile
            log.debug("child run %s: %s", child, exc)
        except GmAgentError as exc:  # an error in gm: the child is left paused to resume
            log.warning("child run %s stopped: %s", child, exc)
        finally:
            self._children[child] = where

    async def _settle_spawn(self, job: JobView) -> None:
        """Finish a spawn a stop cut off (its job started, its child maybe not
        created): creating a run is idempotent, so it is done now, and the child
        can then be cancelled with the others."""
        spec = spec_of(job)
        await self._runner(None).run(spec, lambda: self._create_child(spec), intent_committed=True)

    async def _end_children(self, reason: str) -> None:
        """Cancel every child not ended (a parent leaves none behind), and wait for
        them to finish."""
        for child in self._spawned():
            if (await self._journal.get_run(child.run_id)).status not in TERMINAL:
                await self._cancel_child_run(child.run_id, reason)

    async def _cancel_child_run(self, child: str, reason: str) -> None:
        """``gm cancel`` ``child`` and wait (a while) for it to end."""
        from gm_agent.kernel._steer import cancel_run  # steering resumes runs: the loop

        try:
            await cancel_run(
                Path(self._state.workspace), child, self._environ, reason=reason, clock=self._clock
            )
        except UserError as exc:  # it ended meanwhile
            log.debug("child run %s: %s", child, exc)

    async def _pause_children(self, reason: str) -> None:
        """Before the run pauses (``gm interrupt``): pause the children this process
        executes, as ``gm interrupt`` does (a running command is let finish)."""
        from gm_agent.kernel._steer import interrupt_run

        for child, where in list(self._children.items()):
            if where != "running" or (await self._journal.get_run(child)).status in TERMINAL:
                continue
            try:
                await interrupt_run(
                    Path(self._state.workspace),
                    child,
                    self._environ,
                    reason=f"parent: {reason}",
                    clock=self._clock,
                )
            except UserError as exc:  # it stopped meanwhile
                log.debug("child run %s: %s", child, exc)

    async def _finish(
        self,
        status: TerminalStatus,
        *,
        summary: str | None = None,
        error: str | None = None,
        first: Sequence[AnyEventData] = (),
        cause: str | None = None,
        fenced: bool = False,
    ) -> None:
        """End the run (see :meth:`KernelCore._finish`), cancelling its children first."""
        if any(self._spawned_jobs()):
            await self._end_children(f"its parent run {self._state.run_id} {status}")
        await super()._finish(
            status, summary=summary, error=error, first=first, cause=cause, fenced=fenced
        )

    # -- wait_agents -------------------------------------------------------------

    async def _wait(
        self, wait: WaitAgents, call: ToolCallData, cause: str | None
    ) -> tuple[bool, str] | None:
        """Wait for the children of ``wait.group`` by its policy; ``(ok, text for the
        model)``, or ``None`` when the run stopped waiting (cancelled, interrupted,
        or a child waits for a person that no one here will answer).

        The run is ``waiting`` (reason ``children: GROUP``) meanwhile. The timeout
        counts from the call's ``tool.called``, so a resumed wait keeps its deadline.
        """
        done = await self._journaled_join(call.call_id)
        if done is not None:
            return done.outcome == "satisfied", _joined_text(done)
        collected = await self._joined_children()
        group = [
            c.run_id for c in self._spawned() if c.group == wait.group and c.run_id not in collected
        ]
        if not group:
            groups = sorted({c.group for c in self._spawned() if c.run_id not in collected})
            return False, (
                f"no child runs to wait for in group {wait.group!r} (a child is joined "
                f"once; groups with children: {', '.join(groups) or 'none'}); "
                "start some with spawn_agent first"
            )
        for child in group:
            self._start_child(child)
        deadline = await self._called_at(call) + wait.timeout_s
        if self._state.status == "running":
            await self._set_status("waiting", f"children: {wait.group}")
        while True:
            statuses = {c: (await self._journal.get_run(c)).status for c in group}
            verdict = judge(statuses, wait.policy, wait.on_failure)
            if not verdict.done and self._clock.now().timestamp() >= deadline:
                live = tuple(c for c, status in statuses.items() if status not in TERMINAL)
                verdict = JoinVerdict(True, None, live, f"timed out after {wait.timeout_s:g} s")
            if verdict.done:
                break
            if self._state.cancel_requested or self._state.interrupt_requested:
                await self._set_status("running", "stopped while waiting for children")
                return None  # the loop ends or pauses the run, and settles this call
            stuck = [c for c, s in statuses.items() if s not in TERMINAL]
            if stuck and all(self._children.get(c) == "stopped" for c in stuck):
                return None  # each waits for a person (gm approve), then gm resume
            await self._clock.sleep(JOIN_POLL_S)
            await self._catch_up()
        return await self._join(wait, call, group, verdict)

    async def _join(
        self, wait: WaitAgents, call: ToolCallData, group: list[str], verdict: JoinVerdict
    ) -> tuple[bool, str]:
        """Cancel the children no longer waited for, then journal ``agents.joined``."""
        for child in verdict.cancel:
            await self._cancel_child_run(child, f"not waited for: {verdict.reason}")
        joined = AgentsJoined(
            call_id=call.call_id,
            group=wait.group,
            policy=str(wait.policy),
            on_failure=wait.on_failure,
            outcome=verdict.outcome or "timed_out",
            reason=verdict.reason,
            children=tuple([await self._outcome_of(child) for child in group]),
        )
        back = [RunStatusChanged.between("waiting", "running", "joined")]
        await self._emit([joined, *(back if self._state.status == "waiting" else [])])
        return joined.outcome == "satisfied", _joined_text(joined)

    async def _outcome_of(self, child: str) -> ChildOutcome:
        """``child`` as it is now: status, summary or error, and changed files."""
        row = await self._journal.get_run(child)
        state, _ = await load_state(self._journal, child)
        return ChildOutcome(
            run_id=child,
            status=row.status,
            summary=row.summary,
            error=row.error,
            files=state.changed_files,
        )

    async def _joined_children(self) -> set[str]:
        """The children an earlier ``wait_agents`` of this run collected already."""
        return {
            child.run_id
            for event in await self._journal.read(self._state.run_id, kinds=["agents.joined"])
            if isinstance(event.data, AgentsJoined)
            for child in event.data.children
        }

    async def _journaled_join(self, call_id: str) -> AgentsJoined | None:
        """The ``agents.joined`` of ``call_id``, if a stop cut the call off after it."""
        for event in await self._journal.read(self._state.run_id, kinds=["agents.joined"]):
            if isinstance(event.data, AgentsJoined) and event.data.call_id == call_id:
                return event.data
        return None

    async def _called_at(self, call: ToolCallData) -> float:
        """When ``call`` was announced (its ``tool.called``), in POSIX seconds."""
        for event in await self._journal.read(self._state.run_id, kinds=["tool.called"]):
            if isinstance(event.data, ToolCalled) and event.data.call_id == call.call_id:
                return parse_timestamp(event.at).timestamp()
        return self._clock.now().timestamp()


def _joined_text(joined: AgentsJoined) -> str:
    """What the model reads of a join: the outcome, then one block per child."""
    lines = [f"group {joined.group!r}: {joined.outcome} ({joined.policy}): {joined.reason}"]
    for child in joined.children:
        said = child.summary if child.status == "succeeded" else child.error
        lines.append(f"- {child.run_id}: {child.status}: {said or 'no summary'}")
        if child.files:
            lines.append(f"  changed: {', '.join(child.files)}")
    return "\n".join(lines)
