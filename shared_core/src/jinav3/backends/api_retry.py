"""When the API client retries, and how long it waits: a time budget per request, jittered waits.

Two kinds of retried failure:

- *unavailable*: the server is busy or not there for a while (408, 409, 429, 502, 503, 504, a refused or dropped
  connection, a connect timeout), as during a restart behind a proxy or of ``jinav3 serve`` itself. They are
  retried until the request's ``retry_budget`` (seconds since its first attempt) is spent, however many there
  are, so a restart or a loaded server slows a caller down instead of failing it.
- *errors* (500, read timeouts, malformed bodies): the server answered wrongly; retried at most ``max_retries``
  times, and also within the budget.

Any other answer (400, 401, 402, 403, 404, 422, ...) is final. Embedding requests are idempotent, so a request
cut off mid-flight is sent again whole: its caller gets one answer per input, never two.

A ``Retry-After`` is honoured with random extra delay (up to half of it), so clients told the same wait do not
return together; a ``Retry-After`` longer than what is left of the budget fails the request at once with a
message naming ``retry_budget`` (no pointless sleeping). Without one, waits grow exponentially from
``backoff`` up to ``max_backoff``, jittered (half fixed, half random), and the last wait is cut to end with the
budget, so a server back just before it is still reached.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

#: Statuses retried until the budget is spent: request timeout (408), busy (409), rate limited (429), the server
#: or its gateway down or restarting (502, 503, 504).
PATIENT_STATUSES = frozenset({408, 409, 429, 502, 503, 504})
#: Every status worth retrying: the above and server errors (500, at most ``max_retries`` times).
RETRY_STATUSES = PATIENT_STATUSES | {500}


class Transient(Exception):
    """A failure worth retrying, with the server's ``Retry-After`` (seconds) when it sent one; ``unavailable``
    marks a connection failure that sent nothing useful (refused, reset, dropped, connect timeout)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 unavailable: bool = False, kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.unavailable = status, retry_after, unavailable
        self.kind = kind or (f"HTTP {status}" if status is not None else "error")

    @property
    def patient(self) -> bool:
        """Retried until the budget is spent (not counted against ``max_retries``)."""
        return self.unavailable or self.status in PATIENT_STATUSES


def connection_failure(exc: httpx.RequestError) -> bool:
    """True for transport failures a restarting server causes (refused, reset or dropped connections, connect
    timeouts); False for read/write/pool timeouts and protocol misuse, which are errors."""
    if isinstance(exc, httpx.ConnectTimeout):
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, (httpx.TimeoutException, httpx.UnsupportedProtocol, httpx.ProxyError))


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
    max_backoff: float = 10.0


class RetryState:
    """One request's retries so far: call :meth:`delay` after each failure."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.attempts = 0  # attempts made (set by the caller's loop)
        self.errors = 0  # failures that count against max_retries
        self.reasons: dict[str, int] = {}  # what failed, how often (for the final message)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def delay(self, failure: Transient) -> float:
        """Seconds to wait before the next attempt, or :class:`GiveUp`."""
        policy = self.policy
        self.reasons[failure.kind] = self.reasons.get(failure.kind, 0) + 1
        if not failure.patient:
            self.errors += 1
            if self.errors > policy.max_retries:
                raise GiveUp(f"max_retries={policy.max_retries} exhausted")
        left = policy.retry_budget - self.elapsed
        if left <= 0:
            raise GiveUp(f"retry_budget={policy.retry_budget:g} s spent")
        if failure.retry_after is not None:
            if failure.retry_after > left:
                raise GiveUp(
                    f"the server asked to retry after {failure.retry_after:g} s, more than the {max(left, 0):.1f} s "
                    f"left of retry_budget={policy.retry_budget:g} s; raise retry_budget to wait longer"
                )
            jitter = random.uniform(0, max(failure.retry_after, policy.backoff) / 2)
            return min(failure.retry_after + jitter, left)
        cap = min(policy.max_backoff, policy.backoff * 2 ** max(0, self.attempts - 1))
        return min(cap / 2 + random.uniform(0, cap / 2), left)

    def summary(self) -> str:
        """What failed along the way, e.g. ``ConnectError x12, HTTP 503 x3``."""
        return ", ".join(f"{kind} x{count}" for kind, count in self.reasons.items())
