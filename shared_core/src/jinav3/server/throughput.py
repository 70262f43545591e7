"""How long queued work will take: a sub-round of ``n`` tokens costs ``overhead + n / rate`` seconds.

Admission (503 when too much work waits) and ``Retry-After`` need the server's speed from its first request on, for
the engine and dtype it runs. One rate (tokens per second) measured on small sub-rounds is mostly their fixed cost
and was 15 times too pessimistic for heavy work; no rate at all admitted everything. So the model has two terms,
fitted by least squares over the latest sub-rounds, and is seeded at start by a calibration of two known sizes
(:func:`calibration_rows`) that stay in the fit.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

#: The calibration's two sub-rounds: one short row, and rows of this length up to the calibration's size.
CALIBRATION_ROW_TOKENS = 128


class ThroughputModel:
    """Seconds per sub-round as ``overhead + tokens * per_token``, from the calibration and the last ``window``
    sub-rounds."""

    def __init__(self, window: int = 64) -> None:
        self.anchors: list[tuple[int, float]] = []  # the calibration's points: always in the fit
        self.recent: deque[tuple[int, float]] = deque(maxlen=window)
        self.overhead = 0.0  # seconds per sub-round whatever its size
        self.per_token: float | None = None  # seconds per token; None until something was measured

    def add(self, tokens: int, seconds: float, *, anchor: bool = False) -> None:
        """Record a sub-round of ``tokens`` that took ``seconds`` and refit."""
        if tokens <= 0 or seconds <= 0:
            return
        (self.anchors if anchor else self.recent).append((tokens, seconds))
        self._fit()

    def _fit(self) -> None:
        points = np.array([*self.anchors, *self.recent], dtype=np.float64)
        tokens, seconds = points[:, 0], points[:, 1]
        if len(np.unique(tokens)) >= 2:
            slope, intercept = np.polyfit(tokens, seconds, 1)
            if slope > 0:
                self.per_token, self.overhead = float(slope), max(0.0, float(intercept))
                return
        self.per_token, self.overhead = float(seconds.sum() / tokens.sum()), 0.0  # one size seen: a plain rate

    @property
    def tokens_per_second(self) -> float | None:
        """The marginal rate (tokens per second of a large sub-round); None before any measurement."""
        return None if self.per_token is None else 1.0 / self.per_token

    def seconds(self, tokens: int, budget: int) -> float | None:
        """Estimated seconds to compute ``tokens`` in sub-rounds of at most ``budget`` tokens; None before any
        measurement."""
        if self.per_token is None:
            return None
        if tokens <= 0:
            return 0.0
        return math.ceil(tokens / max(1, budget)) * self.overhead + tokens * self.per_token


def calibration_rows(ids: np.ndarray, total_tokens: int, max_length: int) -> tuple[list[np.ndarray],
                                                                                    list[np.ndarray]]:
    """The calibration's two batches from the token ids of a real text (repeated as needed): one row of 16 tokens,
    and rows of :data:`CALIBRATION_ROW_TOKENS` tokens (at most ``max_length``) adding up to ``total_tokens``."""
    length = min(CALIBRATION_ROW_TOKENS, max_length)
    repeated = np.resize(ids, max(length, len(ids)))
    count = max(1, total_tokens // length)
    return [repeated[:min(16, length)].copy()], [repeated[:length].copy() for _ in range(count)]
