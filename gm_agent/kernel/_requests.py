"""Asking the model for a move: the request as a job, its fallbacks, what it is sized for.

A model request is an idempotent job whose response is journaled as
``model.response`` (a request cut off by a crash is asked again under the same
key); an outage moves the run to its next fallback model (``model.fallback``).
Before a request, the conversation is compacted (``context.compacted``) when it
nears the model's context window.
"""

from __future__ import annotations

from dataclasses import replace

import anyio

from gm_agent.events import ModelFallback, ModelResponse
from gm_agent.faults import crash_point
from gm_agent.jobs import JobOutcome, JobSpec
from gm_agent.kernel._compaction import DEFAULT_WINDOW_TOKENS, plan_compaction
from gm_agent.kernel._core import KernelCore, spec_of
from gm_agent.kernel._decide import model_attempts, model_job_key
from gm_agent.kernel.context import build_request
from gm_agent.llm import Move, ToolSpec
from gm_agent.llm.prices import context_window_of, price_of


class ModelRequests(KernelCore):
    """The kernel's part that asks the model for its next move."""

    # -- what the model sees ----------------------------------------------------

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec() for t in self._tools.values())

    async def _window_tokens(self) -> int:
        """The current model's context window in tokens: ``[context] window_tokens``,
        else the model's own figure, else genai-prices' table, else a default."""
        configured = self._settings.context.window_tokens or self._model.context_window
        if configured is not None:
            return configured
        name = self._model.name
        if name not in self._windows:  # looked up once a model: the table is fixed
            listed = await anyio.to_thread.run_sync(
                context_window_of, self._model.pricing, name.partition(":")[2]
            )
            self._windows[name] = listed or DEFAULT_WINDOW_TOKENS
        return self._windows[name]

    async def _compact(self) -> None:
        """Journal a ``context.compacted`` when the next request nears the window."""
        compacted = plan_compaction(
            self._state,
            self._tool_specs(),
            await self._window_tokens(),
            self._settings.context.compact_at,
            self._messages,
        )
        if compacted is not None:
            await self._emit([compacted])

    # -- the request -------------------------------------------------------------

    async def _request_move(self) -> ModelResponse | None:
        """Run the model request as an idempotent job; its response, or None on failure."""
        step = self._state.step + 1
        open_model = [j for j in self._folder.open_jobs() if j.job_kind == "model"]
        spec = (
            replace(spec_of(open_model[-1]), timeout_s=self._settings.model_timeout_s)
            if open_model  # cut off by a crash: same job, same key
            else JobSpec(
                job_id=self._clock.new_id(),
                key=model_job_key(
                    self._state.run_id, step, self._model.name, model_attempts(self._state, step)
                ),
                kind="model",
                args={"model": self._model.name, "step": step},
                idempotent=True,
                timeout_s=self._settings.model_timeout_s,
            )
        )
        request = build_request(
            self._state, self._tool_specs(), idempotency_key=spec.key, messages=self._messages
        )
        window = await self._window_tokens()

        async def effect() -> JobOutcome:
            started = self._clock.monotonic()
            watched = self._notify  # streamed pieces: to the observer and the live file
            move: Move = await self._model.request(request, watched)
            asked = self._model.name.partition(":")[2]
            price = await anyio.to_thread.run_sync(
                price_of, self._model.pricing, (move.model, asked), move.usage
            )
            response = ModelResponse(
                job_id=spec.job_id,
                model=move.model or self._model.name,
                text=move.text,
                tool_calls=move.tool_calls,
                usage=move.usage,
                finish_reason=move.finish_reason,
                duration_ms=round((self._clock.monotonic() - started) * 1000),
                provider_data=move.provider_data,
                cost_usd=price.cost_usd,
                window_tokens=window,
            )
            return JobOutcome(ok=True, extra=(response,))

        runner = self._runner(None)
        if not open_model:  # a decision: only if no one steered the run meanwhile
            await self._emit([runner.intent(spec)], fenced=True)
            crash_point("job.after_intent")
        outcome = await runner.run(spec, effect, intent_committed=True)
        if not outcome.ok:
            following = self._fallback_model()
            if outcome.outage and following is not None and self._models is not None:
                fallback = ModelFallback(
                    from_model=self._model.name, to_model=following, reason=outcome.error or ""
                )
                await self._emit([fallback])
                self._model = self._models.get(following)
                return await self._request_move()  # the list is finite: this ends
            await self._finish("failed", error=f"model request failed: {outcome.error}")
            return None
        (response,) = outcome.extra
        assert isinstance(response, ModelResponse)
        return response

    def _fallback_model(self) -> str | None:
        """The model after the current one in the run's fallbacks, if any."""
        chain = self._state.fallbacks
        current = self._model.name
        rest = chain[chain.index(current) + 1 :] if current in chain else chain
        return next((m for m in rest if m != current), None)
