"""What a model request costs in US dollars, from genai-prices' price table.

genai-prices (Pydantic's package, MIT) keeps per-provider, per-model prices
for input, cached input, cache writes and output tokens, each provider with the
pages they come from (``pricing_urls``). gm prices each response when it
arrives and journals the figure (``model.response.cost_usd``), so a later price
change never rewrites a past run's cost.

A model's :data:`Pricing` says which table applies:

- ``openai``, ``anthropic``, ``google``: that provider's table, looked up by
  the model name the provider reports (``gpt-4o-mini-2024-07-18``) or, failing
  that, the one gm asked for;
- ``free``: nothing per token (the local model, Ollama, scripted models);
- ``unknown``: an OpenAI-compatible server gm cannot price (it may be a local
  server or a paid one). Its responses carry no cost.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from gm_agent.events import TokenUsage

__all__ = ["Price", "Pricing", "context_window_of", "price_of"]

Pricing = Literal["free", "unknown", "openai", "anthropic", "google"]

FREE_SOURCE = "no charge per token (runs on this machine, or a test double)"


@dataclass(frozen=True)
class Price:
    """A request's cost.

    Attributes:
        cost_usd: US dollars, ``None`` when unknown.
        source: where the price comes from (the provider's pricing page, as
            genai-prices records it), or why there is none.
    """

    cost_usd: float | None
    source: str


@functools.cache
def _genai_prices_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


def price_of(pricing: Pricing, models: tuple[str | None, ...], usage: TokenUsage) -> Price:
    """The cost of one request that used ``usage``.

    Args:
        pricing: which table applies (see the module's docstring).
        models: candidate model names, most specific first (the reported one,
            then the configured one); ``None`` entries are skipped.
        usage: the tokens, ``input_tokens`` including the cached ones.

    Never raises: a model the table lacks is priced ``None`` with the reason.
    """
    if pricing == "free":
        return Price(0.0, FREE_SOURCE)
    if pricing == "unknown":
        return Price(None, "an OpenAI-compatible server: gm knows no price for it")
    # Imported on first use: the table is large (~150 ms to import).
    from genai_prices import Usage, calc_price

    tokens = Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    names = [m for m in models if m]
    for name in names:
        try:
            priced = calc_price(tokens, model_ref=name, provider_id=pricing)
        except LookupError:
            continue
        urls = priced.provider.pricing_urls or []
        source = urls[0] if urls else f"genai-prices {_genai_prices_version()}"
        return Price(float(priced.total_price), source)
    return Price(
        None, f"{pricing} model {names[0] if names else '?'!r} is not in genai-prices' table"
    )


_PROVIDER_IDS: dict[Pricing, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
}


@functools.cache
def context_window_of(pricing: Pricing, model: str) -> int | None:
    """The context window of ``model`` in tokens, from genai-prices' model table
    (``context_window``), or ``None`` when the table lacks it or the provider is
    not one of the big three. Never raises."""
    provider = _PROVIDER_IDS.get(pricing)
    if provider is None:
        return None
    from genai_prices import data_snapshot

    try:
        _, found = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    return found.context_window
