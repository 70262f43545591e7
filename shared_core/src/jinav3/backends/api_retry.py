"""When the API client retries, and how long it waits: a time budget per request, jittered waits.

Two kinds of retried failure:

- *busy* answers (409, 429, 503): the server is fine but loaded. They are retried until the request's
  ``retry_budget`` (seconds since its first attempt) is spent, however many there are, so a busy server slows a
  caller down instead of failing it.
- *errors* (500, 502, 504, connection errors, timeouts, malformed bodies): retried at most ``max_retries``
  times, and also within the budget.

A ``Retry-After`` is honoured with random extra delay (up to half of it), so clients told the same wait do not
return together; a ``Retry-After`` longer than what is left of the budget fails the request at once with a
message naming ``retry_budget`` (no pointless sleeping). Without one, waits grow exponentially from
``backoff`` up to ``max_backoff``, jittered.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

#: Statuses worth retrying: busy (409), rate limited (429), server-side failures (500, 502, 503, 504).
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
BUSY_STATUSES = frozenset({409, 429, 503})


class Transient(Exception):
    """A failure worth retrying, with the server's ``Retry-After`` (seconds) when it sent one."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after

    @property
    def busy(self) -> bool:
        return self.status in BUSY_STATUSES


class GiveUp(Exception):
    """Retrying is over: ``reason`` says which limit ended it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if seconds == seconds and seconds != float("inf") and seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """The client's retry settings (see the module docstring)."""

    max_retries: int = 5
    retry_budget: float = 300.0
    backoff: float = 0.5
    max_backoff: float = 30.0


class RetryState:
    """One request's retries so far: call :meth:`delay` after each failure."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.attempts = 0  # attempts made (set by the caller's loop)
        self.errors = 0  # failures that count against max_retries

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def delay(self, failure: Transient) -> float:
        """Seconds to wait before the next attempt, or :class:`GiveUp`."""
        policy = self.policy
        if not failure.busy:
            self.errors += 1
            if self.errors > policy.max_retries:
                raise GiveUp(f"max_retries={policy.max_retries} exhausted")
        left = policy.retry_budget - self.elapsed
        if failure.retry_after is not None:
            if failure.retry_after > left:
                raise GiveUp(
                    f"the server asked to retry after {failure.retry_after:g} s, more than the {max(left, 0):.1f} s "
                    f"left of retry_budget={policy.retry_budget:g} s; raise retry_budget to wait longer"
                )
            jitter = random.uniform(0, max(failure.retry_after, policy.backoff) / 2)
            return min(failure.retry_after + jitter, left)
        cap = min(policy.max_backoff, policy.backoff * 2 ** max(0, self.attempts - 1))
        wait = cap / 2 + random.uniform(0, cap / 2)
        if wait > left:
            raise GiveUp(f"retry_budget={policy.retry_budget:g} s spent")
        return wait
