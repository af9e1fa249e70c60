"""The preference task's reward: VADER sentiment (compound score in [-1, 1]) of a continuation.

A deterministic word lexicon (vaderSentiment, MIT; the lexicon ships inside its wheel), so it needs
no model download and costs ~0.1 ms per text. A character model moves it only by spelling words. It
can be gamed by repeating positive words; the KL cap of the score is what limits that. Runs on the
trusted side only: a candidate never sees the reward.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .corpus import decode


@functools.cache
def _analyzer() -> Any:  # vaderSentiment has no type hints
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def reward(text: str) -> float:
    return float(_analyzer().polarity_scores(text)["compound"])


def rewards(continuations: torch.Tensor) -> torch.Tensor:
    """The reward of each continuation [N, C] (character ids): [N] float64."""
    return torch.tensor([reward(decode(row)) for row in continuations], dtype=torch.float64)
