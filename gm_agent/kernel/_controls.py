"""How a live run takes in the control events other processes append to steer it.

``gm send``, ``gm interrupt`` and ``gm cancel`` (:mod:`gm_agent.kernel._steer`)
append ``user.message``, ``run.interrupt`` and ``run.cancel``. :class:`Steerable`
is the kernel's side: a background watch stops what is in flight when one of them
asks for it, an action that may be stopped runs under ``_stoppable``, and between
actions ``_catch_up`` folds in everything other processes appended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import anyio

from gm_agent.errors import JournalError
from gm_agent.events import RunCancel, RunInterrupt, UserMessage
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel._core import KernelCore, log

CONTROL_KINDS = ("run.cancel", "run.interrupt", "user.message")
"""Events other processes append to steer a run."""

CONTROL_POLL_S = 0.05
"""How often a running kernel looks for ``run.cancel``, ``run.interrupt`` and
preempting messages while a model request or a command is in flight, in seconds
(ARCHITECTURE.md: control events are taken within 100 ms)."""

T = TypeVar("T")


class Steerable(KernelCore):
    """The kernel's side of steering: watch for stops, run stoppable actions, catch up."""

    async def _watch_controls(self, run_id: str) -> None:
        """Stop what is in flight when a control event asks for it: ``run.cancel``
        stops anything; ``run.interrupt`` and a preempting message stop a model
        request (asked again later) and let a command finish. The loop then acts
        on the event at its next safe point."""
        after = await self._journal.last_seq()
        while True:
            await self._clock.sleep(CONTROL_POLL_S)
            try:
                events = await self._journal.read(run_id, after_seq=after, kinds=CONTROL_KINDS)
            except JournalError as exc:  # busy for a moment: the loop still catches up
                log.debug("could not look for control events of run %s: %s", run_id, exc)
                continue
            for event in events:
                after = max(after, event.seq or 0)
                data = event.data
                stops: Literal["any", "model"] | None = (
                    "any"
                    if isinstance(data, RunCancel)
                    else "model"
                    if isinstance(data, RunInterrupt)
                    or (isinstance(data, UserMessage) and data.preempt and event.source == "user")
                    else None
                )
                if stops is None or (event.seq or 0) <= self._seen_seq:
                    continue  # not a stop, or the loop has taken it in already
                if self._in_flight is not None and (
                    stops == "any" or self._in_flight[0] == "model"
                ):
                    self._in_flight[1].cancel()
                elif self._stop_pending is None or stops == "any":
                    self._stop_pending = (event.seq or 0, stops)

    async def _stoppable(
        self, kind: Literal["model", "tool"], action: Callable[[], Awaitable[T]]
    ) -> T | None:
        """``action``'s result, or ``None`` when a control event stopped it
        (:meth:`_watch_controls`); what it had started is journaled as cancelled."""
        pending = self._stop_pending
        if pending is not None and pending[0] > self._seen_seq:
            if pending[1] == "any" or kind == "model":
                return None  # stopped before it started: the loop takes the event in next
        with anyio.CancelScope() as scope:
            self._in_flight = (kind, scope)
            try:
                return await action()
            finally:
                self._in_flight = None
        return None

    async def _catch_up(self) -> None:
        """Take in the events other processes appended to this run (messages,
        interrupts, cancels, answers).

        When there are any, the state is folded again from the journal (latest
        checkpoint and tail), so it is the fold of the events in journal order even
        though this kernel applied its own events before theirs.
        """
        events = await self._journal.read(self._state.run_id, after_seq=self._seen_seq)
        foreign = [e for e in events if e.id not in self._own_ids]
        self._seen_seq = max([self._seen_seq, *(e.seq or 0 for e in events)])
        self._own_ids.clear()
        if self._stop_pending is not None and self._stop_pending[0] <= self._seen_seq:
            self._stop_pending = None  # folded in: the decisions account for it now
        if foreign:
            self._state, self._stored_nodes = await load_state(self._journal, self._state.run_id)
            for event in foreign:
                self._notify(event)
