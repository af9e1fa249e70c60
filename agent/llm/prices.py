"""What a call to a model costs, for the openai backend (litellm brings its own price map).

Prices are USD per million tokens (input, output), from https://openai.com/api/pricing as listed in
2025 (standard tier, no cached-input discount). An unknown model costs None, never 0: a local vLLM
or Ollama server is free, but a provider we have no price for is not, and "unknown" must not read
as "free" in a budget. Add a model here, or use the litellm backend, to get its cost tracked.
"""

from __future__ import annotations

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def cost_usd(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """Cost of one call, or None when `model` is not in the table.

    Dated snapshots ("gpt-4o-mini-2024-07-18") are priced as their family: the longest table
    entry that the name starts with, followed by "-".
    """
    price = PRICES_PER_MTOK.get(model)
    if price is None:
        families = [m for m in PRICES_PER_MTOK if model.startswith(m + "-")]
        if not families:
            return None
        price = PRICES_PER_MTOK[max(families, key=len)]
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
