"""A circuit breaker per model: stop hammering a provider that keeps failing.

The pattern of M. Nygard, "Release It!" (2007): *closed* (requests go through)
until ``threshold`` consecutive outage failures (unreachable, timeouts, 429,
5xx, 529); then *open* for ``cooldown_s`` seconds, when a request fails at once
with :class:`~gm_agent.errors.CircuitOpen` without touching the network; then
*half-open*: one trial request, whose success closes the circuit and whose
failure opens it again.

Breakers live for the process, one per model name (:func:`breaker_for`), so
every run a ``gm serve`` daemon hosts learns from the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from gm_agent.errors import CircuitOpen, GmAgentError
from gm_agent.llm._messages import Model, ModelRequest, Move, OnDelta
from gm_agent.llm.prices import Pricing

__all__ = ["CircuitBreaker", "Guarded", "ModelPool", "breaker_for"]

DEFAULT_THRESHOLD = 3
DEFAULT_COOLDOWN_S = 30.0


class CircuitBreaker:
    """Counts consecutive outage failures of one model.

    Args:
        threshold: consecutive failures that open the circuit.
        cooldown_s: seconds it stays open before one trial request.
        now: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._now = now
        self.failures = 0
        self.last_error = ""
        self._opened_at: float | None = None

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        """``closed``, ``open`` (requests refused), or ``half-open`` (one trial allowed)."""
        if self._opened_at is None:
            return "closed"
        return "open" if self._now() - self._opened_at < self.cooldown_s else "half-open"

    def check(self, name: str) -> None:
        """Let a request through, or refuse it.

        Raises:
            CircuitOpen: the circuit is open; the message says until when.
        """
        if self.state != "open":
            return
        assert self._opened_at is not None
        wait = self.cooldown_s - (self._now() - self._opened_at)
        last = f" (last: {self.last_error})" if self.last_error else ""
        raise CircuitOpen(
            f"{name} failed {self.failures} times in a row{last}; not asking it again "
            f"for {wait:.0f} s (circuit open)"
        )

    def succeeded(self) -> None:
        """A request went through: close the circuit."""
        self.failures = 0
        self._opened_at = None

    def failed(self, error: str = "") -> None:
        """A request failed with an outage (``error`` says how): count it, open at
        the threshold (a failed trial in half-open opens again at once)."""
        self.failures += 1
        self.last_error = error
        if self.failures >= self.threshold or self._opened_at is not None:
            self._opened_at = self._now()


_BREAKERS: dict[str, CircuitBreaker] = {}


def breaker_for(name: str) -> CircuitBreaker:
    """The process's breaker for model ``name`` (made on first use)."""
    return _BREAKERS.setdefault(name, CircuitBreaker())


class Guarded:
    """``model`` behind its breaker; the same :class:`~gm_agent.llm.Model` interface.

    Only outage failures (``GmAgentError.outage``) count; a 400 or 401 says
    nothing about the provider's health.
    """

    def __init__(self, model: Model, breaker: CircuitBreaker | None = None) -> None:
        self.inner = model
        self.name = model.name
        self.pricing: Pricing = model.pricing
        self.context_window: int | None = model.context_window
        self.breaker = breaker or breaker_for(model.name)

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """Ask ``model`` unless its circuit is open. Raises what it raises, or ``CircuitOpen``."""
        self.breaker.check(self.name)
        try:
            move = await self.inner.request(request, on_delta)
        except GmAgentError as exc:
            if exc.outage:
                self.breaker.failed(str(exc))
            raise
        self.breaker.succeeded()
        return move

    async def aclose(self) -> None:
        """Close the model."""
        await self.inner.aclose()


class ModelPool:
    """Models made by name on first use, each behind its breaker, closed together.

    Args:
        make: builds the model called ``name`` (raises ``ConfigError`` for a bad name).
    """

    def __init__(self, make: Callable[[str], Model]) -> None:
        self._make = make
        self._models: dict[str, Guarded] = {}

    def get(self, name: str) -> Guarded:
        """The model called ``name``. Raises what ``make`` raises."""
        if name not in self._models:
            self._models[name] = Guarded(self._make(name))
        return self._models[name]

    async def aclose(self) -> None:
        """Close every model made."""
        for model in self._models.values():
            await model.aclose()
